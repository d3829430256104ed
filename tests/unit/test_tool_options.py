"""Every option the kafka role passes to a Kafka Java tool exists in that tool of every Kafka
version the kit deploys (3.9.2 for ZooKeeper mode, 4.3.1 and 4.4.0 for KRaft), asked of the real
tool's --help from the distributions `make deps` builds.

Found by the migration scenario: LeaderElectionCommand of 3.9 knows --admin.config only, and the
preferred-leader election after a roll failed with "command-config is not a recognized option".
Options written as a template (the role's version switch) are rendered by Ansible itself with
the role's vars/main.yml and each version.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / ".cache" / "dist"
VERSIONS = ["3.9.2", "4.3.1", "4.4.0"]
ANSIBLE = Path(sys.executable).with_name("ansible")
# Task files that run only on 4.x KRaft clusters (a 3.9 cluster is a ZooKeeper one or migrating).
KRAFT_ONLY = {"unregister.yml"}   # removing a KRaft broker: day-2 operations on 4.x only


def _invocations() -> list[tuple[str, str, str | None, list[str]]]:
    """(task file, tool class, subcommand or None, options) for each Java tool the role runs."""
    found = []
    for path in sorted((REPO / "roles" / "kafka" / "tasks").glob("*.yml")):
        text = path.read_text()
        for argv in _argvs(yaml.safe_load(text) or []):
            argv = [str(a) for a in argv]
            cls = next((a for a in argv if re.fullmatch(r"org\.apache\.kafka\.[\w.]+", a)), None)
            if cls is None:
                continue
            rest = argv[argv.index(cls) + 1:]
            # a subcommand (describe, unregister, upgrade): a lowercase word, not an option's value
            sub = next((a for a in rest if re.fullmatch(r"[a-z]+(-[a-z]+)*", a)), None)
            opts = [a for a in rest if a.startswith("--") or a.startswith("{{ __kafka_") and "option" in a]
            found.append((path.name, cls, sub, opts))
    return found


def _argvs(node) -> list[list]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "argv" and isinstance(value, list):
                out.append(value)
            else:
                out += _argvs(value)
    elif isinstance(node, list):
        for item in node:
            out += _argvs(item)
    return out


@pytest.fixture(scope="session")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    missing = [v for v in VERSIONS if not (DIST / f"kafka_2.13-{v}.tgz").exists()]
    if missing:
        pytest.skip(f"distributions {missing} missing: run `make dist`")
    out = {}
    for v in VERSIONS:
        root = tmp_path_factory.mktemp(f"kafka-{v}")
        with tarfile.open(DIST / f"kafka_2.13-{v}.tgz") as tar:
            tar.extractall(root, members=[m for m in tar.getmembers() if "/libs/" in m.name],
                           filter="data")
        out[v] = next(root.glob("kafka_2.13-*"))
    return out


def _rendered(expr: str, version: str) -> str:
    """The role's template of an option, rendered by Ansible with vars/main.yml and a version."""
    name = expr.strip("{} ")
    run = subprocess.run([str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-m",
                          "ansible.builtin.debug", "-a", f"var={name}", "-e", "@roles/kafka/vars/main.yml",
                          "-e", f"kafka_version={version}"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json",
                                           "PATH": str(ANSIBLE.parent) + ":/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result[name]


def _help(home: Path, cls: str, sub: str | None) -> str:
    args = ["java", "-cp", f"{home}/libs/*", cls] + ([sub] if sub else []) + ["--help"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return run.stdout + run.stderr


def test_the_role_runs_java_tools():
    """The parser finds the tools (an empty list would make the next test pass vacuously)."""
    classes = {cls for _, cls, _, _ in _invocations()}
    assert {"org.apache.kafka.tools.TopicCommand", "org.apache.kafka.tools.LeaderElectionCommand",
            "org.apache.kafka.tools.MetadataQuorumCommand"} <= classes, classes


@pytest.mark.parametrize("version", VERSIONS)
def test_every_option_exists_in_the_tool_of_each_version(homes, version):
    wrong = []
    helps: dict[tuple[str, str | None], str] = {}
    rendered: dict[str, str] = {}
    for task, cls, sub, opts in _invocations():
        if version.startswith("3.") and task in KRAFT_ONLY:
            continue
        for opt in opts:
            if opt.startswith("{{"):
                opt = rendered.setdefault(opt, _rendered(opt, version))
            key = (cls, sub)
            if key not in helps:
                helps[key] = _help(homes[version], cls, None) + _help(homes[version], cls, sub) if sub \
                    else _help(homes[version], cls, None)
            if not re.search(rf"(^|[\s,\[]){re.escape(opt)}([\s=,\]]|$)", helps[key], re.M):
                wrong.append(f"{task}: {cls.rsplit('.', 1)[1]}{' ' + sub if sub else ''} {opt}")
    assert not wrong, f"options unknown to Kafka {version}: {wrong}"
