"""Outcomes on the three Molecule hosts (each a ZooKeeper member and a Kafka 3.9.2 broker in
ZooKeeper mode): a healthy ensemble, every broker registered in it, no KRaft setting, and a
replicated round trip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import testinfra.utils.ansible_runner
from kit_clients import admin_properties, assert_refusals_checked

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
HOSTS = RUNNER.get_hosts("all")
testinfra_hosts = [f"podman://{name}" for name in HOSTS]
IDS = {"kk-zk-1": 1, "kk-zk-2": 2, "kk-zk-3": 3}
CLASSPATH = "/opt/zookeeper/current/libs/*"
# The kafka role's SCRAM guard user (roles/kafka/vars/main.yml, docs/security.md).
GUARD = "kafka-kit-scram-guard-a19e"


def _address(host) -> str:
    return host.interface("eth0").addresses[0]


def _kv(text: str) -> dict[str, str]:
    pairs = (l.split("=", 1) for l in text.splitlines() if l and not l.startswith("#") and "=" in l)
    return {k: v for k, v in pairs}


def _four_letter(host, word: str, address: str | None = None) -> str:
    """A four-letter word through bash's /dev/tcp (no netcat in the image)."""
    target = address or _address(host)
    return host.check_output(
        f"bash -c 'exec 3<>/dev/tcp/{target}/2181; printf {word} >&3; cat <&3'")


def test_services_running_and_enabled(host):
    for name in ("zookeeper", "kafka"):
        service = host.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


def test_zookeeper_runs_as_its_user_with_separate_dirs(host):
    pid = host.check_output("systemctl show -p MainPID --value zookeeper")
    assert host.check_output(f"ps -o user= -p {pid}") == "zookeeper"
    cfg = _kv(host.file("/etc/zookeeper/zoo.cfg").content_string)
    assert cfg["dataDir"] == "/var/lib/zookeeper/data"
    assert cfg["dataLogDir"] == "/var/lib/zookeeper/txlog"
    # The transaction log really goes to dataLogDir (version-2/log.*), snapshots to dataDir.
    assert host.check_output("ls /var/lib/zookeeper/txlog/version-2").count("log.") >= 1
    env = host.file("/etc/zookeeper/zookeeper.env").content_string
    assert "-Xms128m -Xmx128m" in env


def test_myid_stable_and_ensemble_listed(host):
    name = host.backend.get_hostname()
    assert host.file("/var/lib/zookeeper/data/myid").content_string.strip() == str(IDS[name])
    cfg = _kv(host.file("/etc/zookeeper/zoo.cfg").content_string)
    servers = {k: v for k, v in cfg.items() if k.startswith("server.")}
    assert sorted(servers) == ["server.1", "server.2", "server.3"]
    assert all(v.endswith(":2888:3888") for v in servers.values())
    assert cfg["4lw.commands.whitelist"].split(",")[0] == "srvr"


def test_ensemble_has_one_leader():
    modes = []
    for name in testinfra_hosts:
        h = testinfra.get_host(name)
        answer = _four_letter(h, "srvr")
        modes.append(next(l.split(":", 1)[1].strip() for l in answer.splitlines() if l.startswith("Mode:")))
    assert sorted(modes) == ["follower", "follower", "leader"]


def test_client_port_on_the_ensemble_address_only(host):
    # ss prints a JVM's IPv4 socket as [::ffff:a.b.c.d]:port, which testinfra's socket module
    # does not match against tcp://a.b.c.d:port: read the listening addresses of port 2181.
    out = host.check_output("ss -Htln")
    local = {re.sub(r"^\[(::ffff:)?|\]$", "", l.split()[3].rsplit(":", 1)[0])
             for l in out.splitlines() if l.split()[3].endswith(":2181")}
    assert local == {_address(host)}, out


def test_ruok(host):
    assert _four_letter(host, "ruok") == "imok"


def test_broker_config_has_no_kraft_keys(host):
    props = _kv(host.file("/etc/kafka/server.properties").content_string)
    name = host.backend.get_hostname()
    assert props["broker.id"] == str(IDS[name])
    zk = [_address(testinfra.get_host(n)) + ":2181" for n in testinfra_hosts]
    assert props["zookeeper.connect"] == ",".join(zk) + "/kafka"
    # The secure profile in ZooKeeper mode: one SASL_SSL listener, brokers log in to each other
    # with SCRAM, ACLs in ZooKeeper (AclAuthorizer); no controller listener.
    assert props["listeners"] == "SASL_SSL://:9092"
    assert props["advertised.listeners"] == f"SASL_SSL://{_address(host)}:9092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    for key in ("node.id", "process.roles", "controller.quorum.voters", "controller.listener.names",
                "zookeeper.metadata.migration.enable"):
        assert key not in props, key
    # Kafka 3.x logs through reload4j: log4j.properties, and the JVM is told so.
    assert host.file("/etc/kafka/log4j.properties").exists
    assert "-Dlog4j.configuration=file:/etc/kafka/log4j.properties" in host.file("/etc/kafka/kafka.env").content_string
    assert host.file("/var/log/kafka/server.log").size > 0


def test_brokers_registered_in_zookeeper(host):
    if host.backend.get_hostname() != "kk-zk-1":
        pytest.skip("read once")
    out = host.check_output(
        f"java -cp '{CLASSPATH}' org.apache.zookeeper.ZooKeeperMain -server {_address(host)}:2181 "
        "ls /kafka/brokers/ids 2>/dev/null")
    last = out.strip().splitlines()[-1]  # ZooKeeperMain prints the children as [1, 2, 3]
    ids = re.findall(r"\d+", last)
    assert sorted(int(i) for i in ids) == [1, 2, 3]


def test_scram_users_are_in_zookeeper(host):
    """The brokers' user, the admin and the SCRAM guard user (which a migration to KRaft copies,
    docs/security.md) were written into ZooKeeper before the first broker started
    (roles/kafka/tasks/scram_zookeeper.yml): SCRAM-SHA-512 credentials, no password."""
    if host.backend.get_hostname() != "kk-zk-1":
        pytest.skip("read once")
    users = host.check_output(
        f"java -cp '{CLASSPATH}' org.apache.zookeeper.ZooKeeperMain -server {_address(host)}:2181 "
        "ls /kafka/config/users 2>/dev/null").strip().splitlines()[-1]
    assert {"kafka-broker", "admin", GUARD} <= set(re.findall(r"[\w.-]+", users)), users
    for user in ("kafka-broker", "admin", GUARD):
        data = host.check_output(
            f"java -cp '{CLASSPATH}' org.apache.zookeeper.ZooKeeperMain -server {_address(host)}:2181 "
            f"get /kafka/config/users/{user} 2>/dev/null")
        assert "SCRAM-SHA-512" in data and "stored_key=" in data and "password" not in data, data


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return ",".join(f"{_address(testinfra.get_host(n))}:9092" for n in testinfra_hosts)


def test_smoke_round_trip_from_controller(host, bootstrap):
    if host.backend.get_hostname() != "kk-zk-1":
        pytest.skip("the cluster-wide smoke test runs once")
    result = subprocess.run(
        [sys.executable, "-m", "pyclient", "smoke", "--bootstrap-servers", bootstrap,
         "--command-config", str(admin_properties(os.environ["MOLECULE_INVENTORY_FILE"])),
         "--expect-brokers", "3", "--replication-factor", "3", "--records", "5000", "--expect-racks",
         "--json"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    # The refused-access checks ran over the secure listener, each naming the broker's error.
    assert_refusals_checked(report)
