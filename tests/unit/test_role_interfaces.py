"""Role interfaces (roles/*/meta/argument_specs.yml) are complete, documented and enforced.

- ``ansible-doc -t role`` parses every role and entry point;
- every variable of a role's defaults/main.yml is declared in its main entry point (a new
  default without a spec fails here, named), and every ``tasks_from`` that a playbook or
  scenario calls has an entry point;
- bad input is refused with the variable's name, by Ansible's own role-start validation;
- the specs accept the kit's own inventories (prod, the lab's generated one, every Molecule
  scenario's), with role defaults and inventory layered as Ansible layers them.

The playbooks run on localhost (connection local) against *stub* copies of the roles: the real
defaults/, vars/, meta/ and plugins (symlinked), and tasks/ files that only record that they ran.
So the validation Ansible prepends at role start is the real one, and nothing else runs.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/meta/main.yml"))

# Defaults that cannot be declared: their value is resolved by the role's own tasks, after the
# role-start validation (which templates every declared variable) has run.
UNDECLARABLE = {
    ("java", "java_packages"): "'{{ __java_packages }}' is loaded by tasks/main.yml (include_vars)",
}
# Hosts each role runs on in the playbooks; roles not named here: every host.
ROLE_GROUPS = {"kafka": ["kafka_controller", "kafka_broker"], "zookeeper": ["zookeeper"], "monitoring": ["monitoring"]}
DUMMY = {"int": 1, "float": 1.0, "bool": True, "str": "x", "list": ["x"], "dict": {}, "raw": "x"}
WRONG = {"int": "not-a-number", "float": "not-a-number", "bool": "not-a-bool", "dict": 7}


def task_file(entry: str) -> str:
    return entry if entry.endswith((".yml", ".yaml")) else f"{entry}.yml"


def include(role: str, entry: str) -> dict[str, str]:
    return {"name": role} if entry == "main" else {"name": role, "tasks_from": entry}


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def spec(role: str) -> dict[str, Any]:
    return yaml.load((REPO / f"roles/{role}/meta/argument_specs.yml").read_text(), LOADER)["argument_specs"]


@functools.cache
def defaults(role: str) -> dict[str, Any]:
    return yaml.load((REPO / f"roles/{role}/defaults/main.yml").read_text(), LOADER) or {}


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=kw.pop("env", env()), capture_output=True,
                          text=True, timeout=600, **kw)


# --------------------------------------------------------------------------------------------
# (a) the specs parse, are complete and cover every entry point in use
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_documents_every_entry_point(role: str) -> None:
    proc = run([str(BIN / "ansible-doc"), "-t", "role", "-r", "roles", "--json", role])
    assert proc.returncode == 0, proc.stderr
    entry_points = json.loads(proc.stdout)[role]["entry_points"]
    assert set(entry_points) == set(spec(role)), "ansible-doc and the spec file disagree"
    assert "main" in entry_points
    for name, ep in entry_points.items():
        assert ep.get("short_description"), f"{role}:{name} has no short_description"
        for opt, o in ep.get("options", {}).items():
            assert o.get("type"), f"{role}:{name}: {opt} has no type"
            assert o.get("description"), f"{role}:{name}: {opt} has no description"
            if "choices" in o and "default" in o:
                assert o["default"] in o["choices"]


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_declared_in_main(role: str) -> None:
    main = spec(role)["main"].get("options", {})
    missing = [k for k in defaults(role)
               if not k.startswith("__") and k not in main and (role, k) not in UNDECLARABLE]
    assert not missing, (f"roles/{role}/defaults/main.yml: {', '.join(missing)} not declared in "
                         f"roles/{role}/meta/argument_specs.yml (argument_specs.main.options); "
                         "add each with its type and the description of its comment")
    # ...and no spec entry outlives its default (required inputs have none by design).
    text = (REPO / f"roles/{role}/defaults/main.yml").read_text()
    stale = [k for k, o in main.items() if k not in defaults(role) and not o.get("required")
             and not re.search(rf"^#\s*{k}:", text, re.M)]
    assert not stale, f"roles/{role}: declared but not in defaults/main.yml: {stale}"
    for role_, var in UNDECLARABLE:
        if role_ == role:
            assert var in defaults(role) and "{{" in str(defaults(role)[var]), (
                f"{var} is no longer late-bound: declare it in the spec")


@pytest.mark.parametrize("role", ROLES)
def test_entry_points_agree_with_main(role: str) -> None:
    specs = spec(role)
    main = specs["main"].get("options", {})
    for name, ep in specs.items():
        assert (REPO / f"roles/{role}/tasks/{task_file(name)}").exists(), f"{role}: no tasks/{task_file(name)}"
        for opt, o in ep.get("options", {}).items():
            if opt in main:
                assert o["type"] == main[opt]["type"], f"{role}:{name}: {opt} typed differently"
                assert o.get("choices") == main[opt].get("choices"), f"{role}:{name}: {opt}"


def test_no_jinja_in_specs() -> None:
    # Ansible templates the spec when it validates: a "{{ }}" in a description would be rendered
    # (and fail when undefined) at every role start.
    for role in ROLES:
        text = (REPO / f"roles/{role}/meta/argument_specs.yml").read_text()
        assert "{{" not in text and "{%" not in text, f"roles/{role}: Jinja in argument_specs.yml"


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def tasks_from_calls() -> set[tuple[str, str, str]]:
    calls = set()
    files = [REPO / "site.yml", *REPO.glob("playbooks/**/*.yml"), *REPO.glob("molecule/**/*.yml"),
             *REPO.glob("roles/*/tasks/*.yml")]
    for f in files:
        text, where = f.read_text(), str(f.relative_to(REPO))
        try:
            docs = list(yaml.load_all(text, LOADER))
        except yaml.YAMLError:  # a file being edited: read the calls off its lines
            lines = text.splitlines()
            for i, line in enumerate(lines):
                m = re.search(r"\btasks_from:\s*['\"]?([\w./-]+)", line)
                names = [re.search(r"\bname:\s*['\"]?(\w+)", x) for x in lines[max(0, i - 3):i]]
                if m and any(names):
                    calls.add(([n for n in names if n][-1].group(1), m.group(1), where))
            continue
        for d in (d for doc in docs for d in _walk(doc)):
            if "tasks_from" in d and "name" in d:
                calls.add((str(d["name"]), str(d["tasks_from"]), where))
    return calls


def test_every_tasks_from_has_an_entry_point() -> None:
    # Ansible picks the spec by the literal tasks_from value: `restart` and `restart.yml` are
    # different entry points, and a call without a spec of its exact name is not validated.
    calls = tasks_from_calls()
    assert calls, "found no tasks_from call at all: the scan is broken"
    missing = [f"{where}: {role} tasks_from: {entry}" for role, entry, where in sorted(calls)
               if role in ROLES and entry not in spec(role)]
    assert not missing, "entry points without a spec:\n" + "\n".join(missing)


# --------------------------------------------------------------------------------------------
# stub roles and the playbooks that run the real role-start validation
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("roles")
    for role in ROLES:
        d = root / role
        (d / "tasks").mkdir(parents=True)
        for sub in ("defaults", "vars", "meta", "filter_plugins", "library", "module_utils"):
            if (REPO / "roles" / role / sub).exists():
                (d / sub).symlink_to(REPO / "roles" / role / sub)
        for entry in spec(role):
            (d / "tasks" / task_file(entry)).write_text(yaml.safe_dump([{
                "name": "Record that validation passed",
                "ansible.builtin.set_fact": {
                    "role_interfaces_ran": f"{{{{ role_interfaces_ran | default([]) + ['{role}:{entry}'] }}}}"}}]))
    return root


def playbook(work: Path, roles: Path, plays: list[dict[str, Any]], inventory: Path,
             extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    (work / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    e = dict(env(), ANSIBLE_ROLES_PATH=str(roles))
    python = sys.executable
    return run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(work / "play.yml"),
                "-e", "ansible_connection=local", "-e", "ansible_become=false",
                "-e", f"ansible_python_interpreter={python}", *(extra or [])], env=e)


def required_dummies(options: dict[str, Any], skip: str = "") -> dict[str, Any]:
    return {k: DUMMY[o["type"]] for k, o in options.items() if o.get("required") and k != skip}


# --------------------------------------------------------------------------------------------
# (b) bad input is refused, naming the variable
# --------------------------------------------------------------------------------------------

def bad_input_cases() -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """(role, entry point, vars, words the failure must contain)."""
    cases: list[tuple[str, str, dict[str, Any], list[str]]] = [
        ("kafka", "main", {"kafka_node_id": 1, "kafka_mode": "bogus"}, ["kafka_mode", "kraft, zookeeper", "bogus"]),
        ("kafka", "main", {"kafka_node_id": 1, "kafka_broker_port": "ninety"}, ["kafka_broker_port", "int"]),
        ("kafka", "main", {"kafka_node_id": "one"}, ["kafka_node_id"]),
        ("kafka", "main", {}, ["missing required arguments: kafka_node_id"]),
        ("kafka", "main", {"kafka_node_id": 1, "kafka_server_properties": ["num.partitions=3"]}, ["kafka_server_properties", "dict"]),
        ("kafka", "roll_plan.yml", {"kafka_roll_all": "perhaps"}, ["kafka_roll_all", "bool"]),
        ("kafka", "restart.yml", {"kafka_roll_wait_timeout": "soon"}, ["kafka_roll_wait_timeout"]),
        ("kafka_topics", "main", {"kafka_topics_list": [{"partitions": 3}]}, ["name", "kafka_topics_list"]),
        ("kafka_topics", "main", {"kafka_topics_list": [{"name": "t", "partitons": 3}]}, ["partitons", "kafka_topics_list"]),
        ("zookeeper", "cli.yml", {}, ["zookeeper_cli_commands"]),
    ]
    return cases


def test_every_entry_point_refuses_a_wrong_value_by_name() -> None:
    """Each entry point of every role (new roles included), through Ansible's own validator (the
    one validate_argument_spec runs): a choice it lacks or a value of the wrong type, and each
    required variable left out, fail with the variable's name."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    checked, failures = 0, []
    for role in ROLES:
        for entry, ep in spec(role).items():
            options = ep.get("options", {})
            cases = []
            pick = next(((k, "bogus-choice") for k, o in options.items() if o.get("choices")), None) or next(
                ((k, WRONG[o["type"]]) for k, o in options.items() if o["type"] in WRONG), None)
            if pick:
                cases.append(({**required_dummies(options, pick[0]), pick[0]: pick[1]}, pick[0]))
            cases += [(required_dummies(options, k), k) for k, o in options.items() if o.get("required")]
            valid = ArgumentSpecValidator(copy.deepcopy(options)).validate(required_dummies(options))
            if valid.error_messages:
                failures.append(f"{role}:{entry} refuses its required inputs alone: {valid.error_messages}")
            for variables, name in cases:
                errors = ArgumentSpecValidator(copy.deepcopy(options)).validate(variables).error_messages
                checked += 1
                if not any(name in e for e in errors):
                    failures.append(f"{role}:{entry} with {variables}: no error naming {name}: {errors}")
    assert checked >= len(ROLES), "too few cases: the case builder is broken"
    assert not failures, "\n".join(failures)


def test_bad_input_is_refused_with_the_variable_name(stubs: Path, tmp_path: Path) -> None:
    """Through role-start validation, as the playbooks call the roles (include_role, tasks_from)."""
    cases = bad_input_cases()
    tasks = []
    for i, (role, entry, variables, _) in enumerate(cases):
        tasks.append({"name": f"case {i}", "block": [
            {"name": f"include {role}:{entry}", "ansible.builtin.include_role": include(role, entry),
             "vars": variables},
            {"name": "Not refused", "ansible.builtin.set_fact": {"role_interfaces_msgs": f"{{{{ role_interfaces_msgs | default({{}}) | combine({{'{i}': 'ACCEPTED'}}) }}}}"}},
        ], "rescue": [
            {"name": "Refused", "ansible.builtin.set_fact": {"role_interfaces_msgs": f"{{{{ role_interfaces_msgs | default({{}}) | combine({{'{i}': ansible_failed_result.msg}}) }}}}"}},
        ]})
    tasks.append({"name": "Write the messages", "ansible.builtin.copy": {
        "content": "{{ role_interfaces_msgs | to_json }}", "dest": str(tmp_path / "msgs.json"), "mode": "0600"}})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost: {}\n")
    proc = playbook(tmp_path, stubs, [{"name": "Bad input", "hosts": "localhost", "gather_facts": False,
                                       "tasks": tasks}], inventory)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    msgs = json.loads((tmp_path / "msgs.json").read_text())
    failures = []
    for i, (role, entry, variables, words) in enumerate(cases):
        msg = msgs[str(i)]
        if msg == "ACCEPTED" or not all(w in msg for w in words):
            failures.append(f"{role}:{entry} with {variables}: expected {words} in: {msg}")
    assert not failures, "\n".join(failures)


def test_real_role_refuses_bad_input_before_any_task(tmp_path: Path) -> None:
    """The real kafka role (not a stub): kafka_mode: bogus stops it at its first task."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost: {kafka_node_id: 1, kafka_mode: bogus}\n")
    play = [{"name": "Real role", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "kafka"}]}]
    proc = playbook(tmp_path, REPO / "roles", play, inventory, ["--check"])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Validating arguments against arg spec 'main'" in out
    assert "value of kafka_mode must be one of: kraft, zookeeper, got: bogus" in out
    assert "ok=0" in out, "a task ran before the validation refused the input"


# --------------------------------------------------------------------------------------------
# the kit's inventories pass every spec they meet
# --------------------------------------------------------------------------------------------

def lab_inventory(work: Path) -> Path:
    """The lab's inventory as playbooks/lab_up.yml writes it (templates/lab/hosts.yml.j2), next
    to inventories/lab/group_vars: dedicated controllers, racked brokers, a monitoring host."""
    hosts = [{"name": f"kk-c{i}", "address": f"10.89.60.{10 + i}", "node_id": 100 + i, "rack": "",
              "groups": ["kafka_controller"]} for i in range(1, 4)]
    hosts += [{"name": f"kk-b{i}", "address": f"10.89.60.{20 + i}", "node_id": i, "rack": f"rack-{'abc'[i % 3]}",
               "groups": ["kafka_broker"]} for i in range(1, 4)]
    hosts += [{"name": "kk-mon", "address": "10.89.60.30", "node_id": 0, "rack": "", "groups": ["monitoring"]}]
    jenv = jinja2.Environment(keep_trailing_newline=True)
    jenv.tests["contains"] = lambda seq, item: item in seq  # Ansible's test of that name
    text = jenv.from_string((REPO / "templates/lab/hosts.yml.j2").read_text()).render(
        ansible_managed="test", lab_shape="dedicated", lab_brokers=3, lab_controllers=3,
        lab_ssh_dir=str(work), lab_repo_dir=str(REPO), lab_security_profile="secure", __lab_hosts=hosts)
    d = work / "lab"
    d.mkdir()
    (d / "hosts.yml").write_text(text)
    (d / "group_vars").symlink_to(REPO / "inventories/lab/group_vars")
    return d


def molecule_inventory(work: Path, scenario: str) -> Path:
    """A Molecule scenario's inventory: its platforms' groups and provisioner.inventory vars."""
    raw = (REPO / f"molecule/{scenario}/molecule.yml").read_text()
    raw = raw.replace("${MOLECULE_PROJECT_DIRECTORY}", str(REPO)).replace(
        "${MOLECULE_SCENARIO_DIRECTORY}", str(REPO / "molecule" / scenario))
    conf = yaml.safe_load(raw)
    inv = conf.get("provisioner", {}).get("inventory", {})
    groups: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    for p in conf.get("platforms", []):
        hosts[p["name"]] = dict(inv.get("host_vars", {}).get(p["name"]) or {})
        for g in p.get("groups", []):
            groups.setdefault(g, {"hosts": {}, "vars": {}})["hosts"][p["name"]] = None
    for g, v in (inv.get("group_vars") or {}).items():
        if g != "all":
            groups.setdefault(g, {"hosts": {}, "vars": {}})["vars"].update(v or {})
    doc = {"all": {"hosts": hosts, "vars": (inv.get("group_vars") or {}).get("all") or {}, "children": groups}}
    path = work / f"molecule-{scenario}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def in_groups(names: list[str]) -> str:
    return "(" + " + ".join(f"groups.get({g!r}, [])" for g in names) + ")"


def inventory_play() -> list[dict[str, Any]]:
    """One play per role, on the hosts the playbooks give it, each role imported statically as
    `roles:` does (Ansible prepends the validation of its main entry point); then every host
    asserts each of its roles got past the validation. An entry point's options are main's,
    typed alike (test_entry_points_agree_with_main), so main covers what inventories set."""
    # The production profile sizes threads from processor_vcpus: the facts it uses.
    plays: list[dict[str, Any]] = [{"name": "Facts", "hosts": "all", "gather_facts": True,
                                    "gather_subset": ["!all", "hardware"], "tasks": []}]
    expected = []
    for role in ROLES:
        groups = ROLE_GROUPS.get(role)
        plays.append({"name": f"Validate {role}", "hosts": ":".join(groups) if groups else "all",
                      "gather_facts": False, "roles": [role]})
        expected.append(f"([{role + ':main'!r}] if inventory_hostname in {in_groups(groups)} else [])"
                        if groups else f"[{role + ':main'!r}]")
    plays.append({"name": "Every role validated", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Every role of this host got past its validation", "ansible.builtin.assert": {
            "that": [f"role_interfaces_ran | default([]) == {' + '.join(expected)}"],
            "fail_msg": "ran {{ role_interfaces_ran | default([]) }}"}}]})
    return plays


def scenarios() -> list[str]:
    """Scenarios that carry their own inventory variables (molecule/cluster's inventory is the
    lab's template, checked as "lab")."""
    return sorted(p.parent.name for p in REPO.glob("molecule/*/molecule.yml")
                  if (yaml.safe_load(p.read_text().replace("${", "$(")).get("provisioner") or {}).get("inventory", {})
                  .keys() & {"host_vars", "group_vars"})


@pytest.mark.parametrize("name", ["prod", "lab", *(f"molecule/{s}" for s in scenarios())])
def test_inventories_pass_the_specs(name: str, stubs: Path, tmp_path: Path) -> None:
    if name == "prod":
        inventory = REPO / "inventories/prod"
    elif name == "lab":
        inventory = lab_inventory(tmp_path)
    else:
        inventory = molecule_inventory(tmp_path, name.split("/", 1)[1])
    # Secrets the inventory takes from the user's Ansible Vault (vault_*): stand-ins.
    texts = [p.read_text() for p in ([inventory] if inventory.is_file() else inventory.rglob("*.yml"))]
    vault = {v: "secret" for v in sorted(set(re.findall(r"\bvault_\w+", "".join(texts))))}
    proc = playbook(tmp_path, stubs, inventory_play(), inventory, ["-e", json.dumps(vault)] if vault else [])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "failed=0" in out
    # Ansible's own validation task ran for the roles of this inventory's hosts.
    validated = set(re.findall(r"\nTASK \[(\w+) : Validating arguments against arg spec 'main'", out))
    for role in ROLES:
        section = out.split(f"PLAY [Validate {role}]", 1)[1].split("\nPLAY [", 1)[0]
        if "skipping: no hosts matched" not in section:
            assert role in validated, f"{role}: its play ran without the validation task"


# --------------------------------------------------------------------------------------------
# the READMEs: every entry point listed, only real variables named, the example plays parse
# --------------------------------------------------------------------------------------------

def readme(role: str) -> str:
    path = REPO / f"roles/{role}/README.md"
    assert path.exists(), f"roles/{role}/README.md is missing"
    return path.read_text()


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_every_entry_point(role: str) -> None:
    text = readme(role)
    missing = [e for e in spec(role) if f"`{e}`" not in text]
    assert not missing, f"roles/{role}/README.md does not list the entry points {missing}"
    assert "defaults/main.yml" in text and f"ansible-doc -t role -r roles {role}" in text


def known_names() -> set[str]:
    """Variables of every role (specs and defaults), the plain string defaults (group names) and
    the roles' module names."""
    names: set[str] = set()
    for role in ROLES:
        for ep in spec(role).values():
            names |= set(ep.get("options", {}))
        names |= set(defaults(role)) | {v for v in defaults(role).values() if isinstance(v, str)}
    return names | {p.stem for p in REPO.glob("roles/*/library/*.py")}  # module names


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_only_real_variables(role: str) -> None:
    prefixes = "|".join(ROLES)
    named = set(re.findall(rf"`((?:{prefixes})_[a-z0-9_]*[a-z0-9])`", readme(role)))
    unknown = sorted(named - known_names())
    assert not unknown, f"roles/{role}/README.md names variables no role declares: {unknown}"


def test_readme_example_plays_parse(tmp_path: Path) -> None:
    plays = []
    for role in ROLES:
        blocks = re.findall(r"## Example play.*?```yaml\n(.*?)```", readme(role), re.S)
        assert blocks, f"roles/{role}/README.md has no example play"
        for play in yaml.safe_load(blocks[0]):
            if "ansible.builtin.import_playbook" in play:
                play["ansible.builtin.import_playbook"] = str(REPO / play["ansible.builtin.import_playbook"])
            plays.append(play)
    (tmp_path / "examples.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    (tmp_path / "hosts.yml").write_text("all:\n  children: {kafka_controller: {}, kafka_broker: {}, zookeeper: {}, monitoring: {}}\n")
    proc = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(tmp_path / "hosts.yml"),
                str(tmp_path / "examples.yml")], env=dict(env(), ANSIBLE_ROLES_PATH=str(REPO / "roles")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
