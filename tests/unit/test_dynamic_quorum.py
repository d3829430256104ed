"""The dynamic KRaft quorum of a new cluster (KIP-853, kafka_kraft_quorum: dynamic; opt-in, the
default stays static, see docs/day2.md).

The filters (directory ids, --initial-controllers, the running form of a server.properties) and
the preflight rule, then the role itself on three real Kafka 4.4 controllers on this machine: its
quorum.yml, its server.properties template and its storage.yml format them (connection local,
plaintext profile), the controllers form a quorum whose voters are exactly the inventory's
controllers with the directory ids the role derived, at kraft.version 1. A rerun formats nothing;
a controller whose storage is gone after the quorum ran is refused with its name, nothing
written; a cluster half static and half dynamic is refused, naming the playbook that finishes it.
"""

from __future__ import annotations

import base64
import grp
import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pyclient"))
from _broker import LOG4J2, _die_with_parent, free_port, kafka_home  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "security"))
from _secure import _java  # noqa: E402  (Kafka's tool classes with the role's classpath)

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / f"roles/kafka/filter_plugins/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kl = _load("kafka_listeners")
pf = _load("kafka_preflight")

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qk"


# ---- filters --------------------------------------------------------------------------------

def test_directory_ids_are_kafka_uuids_stable_and_distinct():
    rng = random.Random(853)
    seen = set()
    for _ in range(2000):
        cluster = base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("=")
        node = rng.randint(0, 2**31 - 1)
        value = kl.kafka_directory_id(cluster, node)
        assert value == kl.kafka_directory_id(cluster, str(node))  # the same on every run
        assert len(value) == 22 and not value.startswith("-")
        raw = base64.urlsafe_b64decode(value + "==")
        assert len(raw) == 16 and int.from_bytes(raw, "big") > 1  # not Kafka's reserved ids
        seen.add(value)
    assert len(seen) == 2000
    assert kl.kafka_directory_id(CLUSTER, 1) != kl.kafka_directory_id(CLUSTER, 2)
    assert kl.kafka_directory_id(CLUSTER, 1) != kl.kafka_directory_id(CLUSTER[::-1], 1)
    with pytest.raises(Exception, match="cluster id and the node id"):
        kl.kafka_directory_id("", 1)


MODEL = kl.kafka_listener_model([], "plaintext", "CONTROLLER", "", "")


def _hosts(controllers: list[str], brokers: list[str]):
    hv = {h: {"kafka_node_id": i + 1, "ansible_host": f"10.0.0.{i + 1}"}
          for i, h in enumerate(dict.fromkeys(controllers + brokers))}
    return kl.kafka_cluster_hosts(hv, controllers, brokers)


def test_initial_controllers_lists_every_controller_with_its_directory_id():
    hosts = _hosts(["c1", "c2", "c3"], ["b1"])
    value = kl.kafka_initial_controllers(hosts, MODEL, CLUSTER)
    assert value == ",".join(f"{n}@10.0.0.{n}:9093:{kl.kafka_directory_id(CLUSTER, n)}" for n in (1, 2, 3))


def test_listener_properties_dynamic_static_and_unknown():
    hosts = _hosts(["c1", "c2", "c3"], ["b1"])
    for name in ("c1", "b1"):
        dyn = kl.kafka_listener_properties(hosts, MODEL, name, quorum="dynamic")
        assert dyn["controller.quorum.bootstrap.servers"] == "10.0.0.1:9093,10.0.0.2:9093,10.0.0.3:9093"
        assert "controller.quorum.voters" not in dyn
        static = kl.kafka_listener_properties(hosts, MODEL, name, quorum="static")
        assert static["controller.quorum.voters"] == "1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093"
        assert "controller.quorum.bootstrap.servers" not in static
    with pytest.raises(Exception, match="kafka_kraft_quorum is 'raft'"):
        kl.kafka_listener_properties(hosts, MODEL, "c1", quorum="raft")


@pytest.mark.parametrize("text, form", [
    ("controller.quorum.voters=1@a:9093\n", "static"),
    ("controller.quorum.bootstrap.servers=a:9093\nnode.id=1\n", "dynamic"),
    ("# controller.quorum.voters=1@a:9093\ncontroller.quorum.bootstrap.servers=a:9093\n", "dynamic"),
    ("broker.id=1\nzookeeper.connect=z:2181\n", ""),
    ("", ""),
])
def test_running_quorum(text, form):
    assert kl.kafka_running_quorum(text) == form


def _cluster(version: str = "4.4.0", **kw):
    hosts = [{"name": f"h{i}", "roles": ["broker", "controller"], "node_id": i, "version": version,
              "mode": "kraft", "data_dirs": ["/d"], "properties": {}} for i in (1, 2, 3)]
    return {"hosts": hosts, "mode": "kraft", **kw}


def test_preflight_names_a_quorum_form_kafka_does_not_have():
    assert pf.check_kraft_quorum(_cluster(kraft_quorum="dynamic")) == []
    assert pf.check_kraft_quorum(_cluster(kraft_quorum="static")) == []
    [msg] = pf.check_kraft_quorum(_cluster(kraft_quorum="raft"))
    assert "kafka_kraft_quorum='raft'" in msg and "dynamic" in msg and "static" in msg
    [msg] = pf.check_kraft_quorum(_cluster(kraft_quorum="dynamic", version="3.8.1"))
    assert "h1, h2, h3" in msg and "3.9" in msg and "kafka_kraft_quorum: static" in msg
    assert pf.check_kraft_quorum(_cluster(kraft_quorum="static", version="3.8.1")) == []
    # With SASL (the secure profile's SCRAM users) both forms pass: the restarted brokers that
    # refused SCRAM logins were Kafka's ScramDelta, not the quorum (tests/unit/test_scram_guard.py).
    assert pf.check_kraft_quorum(_cluster(kraft_quorum="dynamic", sasl=True)) == []
    assert pf.check_kraft_quorum(_cluster(kraft_quorum="static", sasl=True)) == []


# ---- the role on three real controllers ------------------------------------------------------

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
    kafka_security_profile: plaintext
    kafka_kraft_quorum: dynamic
    kafka_listener_address: 127.0.0.1
    kafka_user: {user}
    kafka_group: {group}
    kafka_install_root: {root}/opt
    kafka_java_bin: {java}
  children:
    kafka_controller:
      hosts:
{hosts}
    kafka_broker:
      hosts: {{}}
"""

HOST = """        dq-{n}:
          kafka_node_id: {n}
          kafka_controller_port: {port}
          kafka_config_dir: {root}/n{n}/etc
          kafka_data_dirs: [{root}/n{n}/data]
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Load the kafka role (defaults, vars, filters) and publish the address facts
      ansible.builtin.include_role:
        name: kafka
        tasks_from: address.yml
        public: true
    - name: The role's quorum form (tasks/quorum.yml)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: quorum.yml
        public: true
    - name: Render server.properties with the role's template
      ansible.builtin.template:
        src: {repo}/roles/kafka/templates/etc/kafka/server.properties.j2
        dest: "{{{{ kafka_config_dir }}}}/server.properties"
        mode: "0640"
    - name: Format the storage (the role's task)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: storage.yml
"""


def _play(root: Path, playbook: str = "play.yml", *extra: str, hosts: str = "hosts.yml") -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(root / hosts), str(root / playbook), *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def _play_started(root: Path, playbook: str, *extra: str, hosts: str) -> subprocess.Popen:
    """_play's command, started in a process group of its own (so a test can kill it mid-run)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.Popen([str(ANSIBLE_PLAYBOOK), "-i", str(root / hosts), str(root / playbook), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _start(root: Path, home: Path, n: int) -> subprocess.Popen:
    return subprocess.Popen(["java", "-Xmx256m", f"-Dlog4j2.configurationFile={root / 'log4j2.properties'}",
                             "-cp", f"{home}/libs/*", "kafka.Kafka", str(root / f"n{n}" / "etc" / "server.properties")],
                            stdout=open(root / f"n{n}.log", "w"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def _replication(home: Path, bootstrap: str) -> dict[int, tuple[str, str]]:
    """Kafka's view of the quorum: node id -> (directory id, status) of every voter and observer."""
    r = _java(home, "org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller", bootstrap,
              "describe", "--replication")
    assert r.returncode == 0, r.stdout + r.stderr
    return {int(row[0]): (row[1], row[-1]) for row in (line.split() for line in r.stdout.splitlines()[1:] if line.strip())}


def _voters(home: Path, bootstrap: str) -> dict[int, str]:
    return {n: d for n, (d, status) in _replication(home, bootstrap).items() if status in ("Leader", "Follower")}


@pytest.fixture(scope="module")
def quorum(tmp_path_factory):
    home = kafka_home()
    root = tmp_path_factory.mktemp("dq")
    (root / "opt").mkdir()
    (root / "opt" / "current").symlink_to(home)
    ports = {n: free_port() for n in (1, 2, 3)}
    for n in ports:
        (root / f"n{n}" / "etc").mkdir(parents=True)
    hosts = "".join(HOST.format(n=n, port=p, root=root) for n, p in ports.items())
    (root / "hosts.yml").write_text(INVENTORY.format(
        python=sys.executable, hosts=hosts, root=root, java=shutil.which("java"),
        user=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name))
    (root / "play.yml").write_text(PLAYBOOK.format(repo=REPO))
    first = _play(root)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    (root / "log4j2.properties").write_text(LOG4J2.format(log=root / "server.log"))
    procs = [_start(root, home, n) for n in ports]
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports.values())
    try:
        deadline = time.monotonic() + 120
        while True:
            r = _java(home, "org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller", bootstrap,
                      "describe", "--replication")
            rows = [line.split() for line in r.stdout.splitlines()[1:] if line.strip()]
            if r.returncode == 0 and sum(row[-1] in ("Leader", "Follower") for row in rows) == 3:
                break
            for n, p in enumerate(procs, 1):
                assert p.poll() is None, (root / f"n{n}.log").read_text()[-4000:]
            assert time.monotonic() < deadline, r.stdout + r.stderr
            time.sleep(2)
        yield {"root": root, "home": home, "ports": ports, "bootstrap": bootstrap, "first": first,
               "replication": r.stdout, "procs": procs}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def test_controllers_form_a_dynamic_quorum_with_the_derived_directory_ids(quorum):
    root = quorum["root"]
    cluster_id = _props(root / "n1" / "data" / "meta.properties")["cluster.id"]
    for n, port in quorum["ports"].items():
        props = _props(root / f"n{n}" / "etc" / "server.properties")
        assert props["controller.quorum.bootstrap.servers"] == quorum["bootstrap"]
        assert "controller.quorum.voters" not in props
        meta = _props(root / f"n{n}" / "data" / "meta.properties")
        assert meta["cluster.id"] == cluster_id
        assert meta["directory.id"] == kl.kafka_directory_id(cluster_id, n)
    # Kafka's own view: exactly the inventory's controllers vote, each with its directory id.
    rows = {int(r[0]): r[1] for r in (line.split() for line in quorum["replication"].splitlines()[1:] if line.strip())
            if r[-1] in ("Leader", "Follower")}
    assert rows == {n: kl.kafka_directory_id(cluster_id, n) for n in quorum["ports"]}
    features = _java(quorum["home"], "org.apache.kafka.tools.FeatureCommand", "--bootstrap-controller",
                     quorum["bootstrap"], "describe")
    assert features.returncode == 0, features.stderr
    kraft = next(line for line in features.stdout.splitlines() if "Feature: kraft.version" in line)
    assert "FinalizedVersionLevel: 1" in kraft, kraft


def test_rerun_formats_nothing(quorum):
    again = _play(quorum["root"])
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Format the storage directories" in again.stdout
    recap = [line for line in again.stdout.splitlines() if " : ok=" in line]
    assert recap and all("changed=0" in line for line in recap), recap


def test_a_controller_without_storage_in_a_running_quorum_is_refused(quorum):
    root = quorum["root"]
    # n3's storage is gone (a new member, or a replaced disk): only add-controller may add it.
    moved = root / "n3-data-kept"
    shutil.copytree(root / "n3" / "data", moved)
    try:
        shutil.rmtree(root / "n3" / "data")
        (root / "n3" / "data").mkdir()
        refused = _play(root)
        assert refused.returncode != 0
        assert "dq-3 is a controller whose metadata dir" in " ".join(refused.stdout.split()), refused.stdout[-4000:]
        assert "add-controller" in " ".join(refused.stdout.split())
        assert list((root / "n3" / "data").iterdir()) == []  # nothing was written
    finally:
        shutil.rmtree(root / "n3" / "data")
        moved.rename(root / "n3" / "data")


def test_half_static_half_dynamic_is_refused_naming_the_move_playbook(quorum, tmp_path):
    root = quorum["root"]
    conf = root / "n2" / "etc" / "server.properties"
    kept = conf.read_text()
    try:
        conf.write_text(kept.replace("controller.quorum.bootstrap.servers=", "controller.quorum.voters=2@"))
        refused = _play(root)
        assert refused.returncode != 0
        assert "a move to the dynamic quorum stopped half-way" in " ".join(refused.stdout.split()), refused.stdout[-4000:]
        assert "playbooks/kraft_dynamic_quorum.yml" in " ".join(refused.stdout.split())
        assert conf.read_text() != kept  # refused before the template ran
    finally:
        conf.write_text(kept)


def test_a_static_cluster_stays_static(tmp_path):
    """A running static cluster (its server.properties has voters) keeps them with
    kafka_kraft_quorum: dynamic, and the run says how to move it."""
    root = tmp_path
    (root / "opt").mkdir()
    ports = {n: free_port() for n in (1, 2, 3)}
    hosts = "".join(HOST.format(n=n, port=p, root=root) for n, p in ports.items())
    (root / "hosts.yml").write_text(INVENTORY.format(
        python=sys.executable, hosts=hosts, root=root, java=shutil.which("java"),
        user=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name))
    voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
    for n in ports:
        (root / f"n{n}" / "etc").mkdir(parents=True)
        (root / f"n{n}" / "etc" / "server.properties").write_text(f"node.id={n}\ncontroller.quorum.voters={voters}\n")
    (root / "render.yml").write_text(PLAYBOOK.format(repo=REPO).split("    - name: Format")[0])
    r = _play(root, "render.yml")
    assert r.returncode == 0, r.stdout[-4000:]
    said = " ".join(r.stdout.split())  # the YAML callback folds long messages
    assert "static KRaft quorum (controller.quorum.voters) and keeps it" in said
    assert "playbooks/kraft_dynamic_quorum.yml moves this one" in said
    for n in ports:
        props = _props(root / f"n{n}" / "etc" / "server.properties")
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props


# ---- adding and removing controllers: 3 -> 5 -> 3 (tasks/quorum_members.yml) ------------------

# The play above up to its address facts, then the role's client files and members tasks.
MEMBERS = PLAYBOOK.split("    - name: The role's quorum form")[0] + """    - name: The gates' client files (the role's tasks)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: clients.yml
    - name: Add and remove controllers (the role's tasks)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: quorum_members.yml
        apply:
          run_once: true
"""


@pytest.mark.timeout(1200)  # seven ansible-playbook runs against five real controllers (over 300 s under load)
def test_controllers_join_and_leave_one_at_a_time_3_5_3(quorum):
    """The role adds two controllers to the running quorum and removes them again, on real Kafka:
    a plain run refuses the new hosts, kafka_kraft_controller_add formats them as observers, the
    members tasks add them (5 voters, each with its own directory id), a rerun changes nothing, a
    removal that would leave 2 voters is refused with nothing changed, the removal of the two
    leaves exactly the first 3, and its rerun changes nothing. Runs last: it leaves the module's
    quorum at its first 3 voters."""
    root, home = quorum["root"], quorum["home"]
    ports = dict(quorum["ports"])
    ports.update({4: free_port(), 5: free_port()})
    for n in (4, 5):
        (root / f"n{n}" / "etc").mkdir(parents=True)
    hosts = "".join(HOST.format(n=n, port=p, root=root) for n, p in ports.items())
    (root / "hosts5.yml").write_text(INVENTORY.format(
        python=sys.executable, hosts=hosts, root=root, java=shutil.which("java"),
        user=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name))
    (root / "members.yml").write_text(MEMBERS)
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports.values())
    first3 = _voters(home, bootstrap)
    assert sorted(first3) == [1, 2, 3]

    refused = _play(root, "play.yml", hosts="hosts5.yml")
    assert refused.returncode != 0
    said = " ".join(refused.stdout.split())
    assert "dq-4 is a controller whose metadata dir" in said and "playbooks/kraft_controllers.yml" in said, said[-3000:]
    assert not (root / "n4" / "data" / "meta.properties").exists()

    formatted = _play(root, "play.yml", "-e", "kafka_kraft_controller_add=true", hosts="hosts5.yml")
    assert formatted.returncode == 0, formatted.stdout[-5000:]
    new = {n: _start(root, home, n) for n in (4, 5)}
    try:
        # Interrupted at the worst moment: killed (SIGKILL, its whole process group) as soon as
        # dq-4 votes, so the quorum is left at 4 voters with dq-5 not added yet or being added.
        run = _play_started(root, "members.yml", hosts="hosts5.yml")
        deadline = time.monotonic() + 600
        while 4 not in _voters(home, bootstrap) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGKILL)
        out = run.communicate()[0]
        assert run.returncode == -signal.SIGKILL, out[-4000:]  # it was still running: interrupted mid-way
        assert 4 in _voters(home, bootstrap), out[-4000:]
        # the rerun finishes the plan: dq-5 is added (dq-4 is not added twice)
        added = _play(root, "members.yml", hosts="hosts5.yml")
        assert added.returncode == 0, added.stdout[-6000:] + added.stderr[-2000:]
        said = " ".join(added.stdout.split())
        assert "to add dq-4" not in said, said[-3000:]
        five = _voters(home, bootstrap)
        assert sorted(five) == [1, 2, 3, 4, 5], five
        for n in (4, 5):  # each joined with the directory id of its own storage
            assert five[n] == _props(root / f"n{n}" / "data" / "meta.properties")["directory.id"]
        assert {n: five[n] for n in (1, 2, 3)} == first3

        again = _play(root, "members.yml", hosts="hosts5.yml")
        assert again.returncode == 0, again.stdout[-4000:]
        recap = [line for line in again.stdout.splitlines() if " : ok=" in line]
        assert recap and all("changed=0" in line for line in recap), recap

        too_many = _play(root, "members.yml", "-e", '{"kafka_kraft_controllers_remove": ["dq-1", "dq-2", "dq-4"]}',
                         hosts="hosts5.yml")
        assert too_many.returncode != 0
        said = " ".join(too_many.stdout.split())
        assert "the quorum would have 2 voter(s) (3, 5)" in said and "Nothing was changed." in said, said[-3000:]
        assert sorted(_voters(home, bootstrap)) == [1, 2, 3, 4, 5]

        removal = ["-e", '{"kafka_kraft_controllers_remove": ["dq-4", "dq-5"], "kafka_quorum_members_stop": false}']
        removed = _play(root, "members.yml", *removal, hosts="hosts5.yml")
        assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-2000:]
        assert _voters(home, bootstrap) == first3
        again = _play(root, "members.yml", *removal, hosts="hosts5.yml")
        assert again.returncode == 0, again.stdout[-4000:]
        assert "already removed: dq-4, dq-5" in " ".join(again.stdout.split())
        recap = [line for line in again.stdout.splitlines() if " : ok=" in line]
        assert recap and all("changed=0" in line for line in recap), recap
    finally:
        for p in new.values():
            p.terminate()
        for p in new.values():
            p.wait(timeout=60)
