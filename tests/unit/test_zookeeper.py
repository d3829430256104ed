"""ZooKeeper mode as the roles render it, and the zookeeper role's health module.

Like test_server_properties.py, the rendering tests run the real roles through ansible-playbook
on localhost (defaults, vars, templates): server.properties of ZooKeeper-mode brokers, of each
migration phase (controllers and brokers), kafka.env of 3.x, and zoo.cfg. The health module's
parser and judge are pure functions, tested on real `srvr` answers.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from pathlib import Path

import pytest

from render_role import REPO, parse_properties, render

_spec = importlib.util.spec_from_file_location(
    "zookeeper_ensemble_status", REPO / "roles/zookeeper/library/zookeeper_ensemble_status.py")
assert _spec and _spec.loader
zes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zes)

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
    kafka_version: "3.9.2"
    kafka_mode: {mode}
    kafka_zookeeper_migration: {migration}
    # The layout of ZooKeeper mode and of a migration, on plaintext listeners (the migration
    # scenario's); the secure profile's keys are checked in test_kafka_listeners.py.
    kafka_security_profile: plaintext
    zookeeper_properties: {{maxClientCnxns: 200}}
  children:
    zookeeper:
      hosts:
        zk-1: {{zookeeper_id: 1, zookeeper_client_address: 192.0.2.1}}
        zk-2: {{zookeeper_id: 2, zookeeper_client_address: 192.0.2.2}}
        zk-3: {{zookeeper_id: 3, zookeeper_client_address: 192.0.2.3, zookeeper_properties_host: {{globalOutstandingLimit: 2000}}}}
    kafka_broker:
      hosts:
        brk-1: {{kafka_node_id: 1, kafka_listener_address: 192.0.2.11, kafka_rack: rack-a}}
        brk-2: {{kafka_node_id: 2, kafka_listener_address: 192.0.2.12}}
    kafka_controller:
      hosts:
{controllers}
"""
CONTROLLERS = """        ctl-1: {kafka_node_id: 3001, kafka_listener_address: 192.0.2.101}
        ctl-2: {kafka_node_id: 3002, kafka_listener_address: 192.0.2.102}
        ctl-3: {kafka_node_id: 3003, kafka_listener_address: 192.0.2.103}
"""

PLAYBOOK = """
- hosts: zookeeper
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: zookeeper, tasks_from: address.yml, public: true}}
    - ansible.builtin.template:
        src: {repo}/roles/zookeeper/templates/etc/zookeeper/zoo.cfg.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.cfg"
        mode: "0644"
- hosts: kafka_broker:kafka_controller
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: kafka, tasks_from: address.yml, public: true}}
    - ansible.builtin.template:
        src: {repo}/roles/kafka/templates/etc/kafka/server.properties.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.properties"
        mode: "0644"
    - ansible.builtin.template:
        src: {repo}/roles/kafka/templates/etc/kafka/kafka.env.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.env"
        mode: "0644"
"""


def _render(tmp: Path, mode: str, migration: bool, controllers: bool) -> dict[str, dict[str, str]]:
    files = render(tmp, INVENTORY.format(
        python=sys.executable, mode=mode, migration=str(migration).lower(),
        controllers=CONTROLLERS if controllers else "        {}"), PLAYBOOK)
    return {name: (parse_properties(text) if not name.endswith(".env") else {"_text": text})
            for name, text in files.items()}


@pytest.fixture(scope="module")
def zk_mode(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("zk"), "zookeeper", False, False)


@pytest.fixture(scope="module")
def migrating(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("mig"), "zookeeper", True, True)


@pytest.fixture(scope="module")
def kraft_brokers(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("mig3"), "kraft", True, True)


ZK_CONNECT = "192.0.2.1:2181,192.0.2.2:2181,192.0.2.3:2181/kafka"
VOTERS = "3001@192.0.2.101:9093,3002@192.0.2.102:9093,3003@192.0.2.103:9093"
KRAFT_KEYS = ("node.id", "process.roles", "controller.quorum.voters", "controller.listener.names")


def test_zookeeper_mode_broker(zk_mode):
    props = zk_mode["brk-1.properties"]
    assert props["broker.id"] == "1"
    assert props["zookeeper.connect"] == ZK_CONNECT
    assert props["listeners"] == "PLAINTEXT://:9092"
    assert props["advertised.listeners"] == "PLAINTEXT://192.0.2.11:9092"
    assert props["broker.rack"] == "rack-a"
    assert props["min.insync.replicas"] == "2"
    for key in KRAFT_KEYS + ("zookeeper.metadata.migration.enable", "listener.security.protocol.map"):
        assert key not in props, key
    assert "broker.rack" not in zk_mode["brk-2.properties"]


def test_zookeeper_mode_log4j1(zk_mode):
    env = zk_mode["brk-1.env"]["_text"]
    assert "KAFKA_LOG4J_OPTS=-Dlog4j.configuration=file:/etc/kafka/log4j.properties" in env
    assert "log4j2" not in env


def test_zoo_cfg(zk_mode):
    cfg = zk_mode["zk-1.cfg"]
    assert cfg["server.1"] == "192.0.2.1:2888:3888"
    assert cfg["server.3"] == "192.0.2.3:2888:3888"
    assert cfg["dataDir"] == "/var/lib/zookeeper/data"
    assert cfg["dataLogDir"] == "/var/lib/zookeeper/txlog"
    assert cfg["clientPort"] == "2181"
    assert cfg["clientPortAddress"] == "192.0.2.1"  # the ensemble address, not every interface
    assert cfg["admin.enableServer"] == "false"
    assert cfg["maxClientCnxns"] == "200"  # group var wins over the default
    assert "globalOutstandingLimit" not in cfg
    assert zk_mode["zk-3.cfg"]["globalOutstandingLimit"] == "2000"  # host var


def test_zoo_cfg_sorted(tmp_path):
    text = (REPO / "roles/zookeeper/templates/etc/zookeeper/zoo.cfg.j2").read_text()
    assert "dictsort" in text


def test_migration_controller(migrating):
    props = migrating["ctl-1.properties"]
    assert props["process.roles"] == "controller"
    assert props["node.id"] == "3001"
    assert props["controller.quorum.voters"] == VOTERS
    assert props["zookeeper.metadata.migration.enable"] == "true"
    assert props["zookeeper.connect"] == ZK_CONNECT
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert "broker.id" not in props


def test_migration_zookeeper_broker(migrating):
    props = migrating["brk-2.properties"]
    assert props["broker.id"] == "2"
    assert props["zookeeper.connect"] == ZK_CONNECT
    assert props["zookeeper.metadata.migration.enable"] == "true"
    assert props["controller.quorum.voters"] == VOTERS
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.protocol.version"] == "3.9"
    assert "process.roles" not in props and "node.id" not in props


def test_migration_kraft_broker(kraft_brokers):
    broker = kraft_brokers["brk-2.properties"]
    assert broker["process.roles"] == "broker" and broker["node.id"] == "2"
    for key in ("zookeeper.connect", "zookeeper.metadata.migration.enable", "broker.id",
                "inter.broker.protocol.version"):
        assert key not in broker, key
    controller = kraft_brokers["ctl-2.properties"]
    assert controller["zookeeper.metadata.migration.enable"] == "true"
    assert controller["zookeeper.connect"] == ZK_CONNECT


SRVR_LEADER = """Zookeeper version: 3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on 2024-02-12 22:16 UTC
Latency min/avg/max: 0/0.5/12
Received: 310
Sent: 309
Connections: 2
Outstanding: 0
Zxid: 0x10000002e
Mode: leader
Node count: 37
Proposal sizes last/min/max: 48/48/592
"""
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def test_parse_srvr():
    parsed = zes.parse_srvr(SRVR_LEADER)
    assert parsed == {"mode": "leader", "zxid": 0x10000002E, "node_count": 37}
    assert zes.parse_srvr(NOT_SERVING)["mode"] is None


@pytest.mark.parametrize("modes, healthy, leaders", [
    (["leader", "follower", "follower"], True, 1),
    (["standalone"], True, 1),
    (["leader", "follower", None], False, 1),       # a member down or not serving
    (["follower", "follower", "follower"], False, 0),  # no leader (election running)
    (["leader", "leader", "follower"], False, 2),    # split brain must never pass
])
def test_judge(modes, healthy, leaders):
    members = [{"server": f"z{i}:2181", "mode": m} for i, m in enumerate(modes)]
    verdict = zes.judge(members)
    assert verdict["healthy"] is healthy and verdict["leaders"] == leaders


def _fake_member(answer: str) -> tuple[str, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        assert conn.recv(4) == b"srvr"
        conn.sendall(answer.encode())
        conn.close()
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"127.0.0.1:{srv.getsockname()[1]}", thread


def test_status_over_sockets():
    leader, t1 = _fake_member(SRVR_LEADER)
    follower, t2 = _fake_member(SRVR_LEADER.replace("Mode: leader", "Mode: follower"))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    result = zes.status([leader, follower, down], timeout=2.0)
    t1.join(2), t2.join(2)
    assert [m["mode"] for m in result["members"]] == ["leader", "follower", None]
    assert result["members"][2]["error"]
    assert result["healthy"] is False and result["leaders"] == 1
    assert down in result["summary"]
