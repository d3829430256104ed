"""Outcomes on the three Molecule hosts after site.yml: a working combined KRaft cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import testinfra.utils.ansible_runner
from kit_clients import HOST_CONTROLLER, admin_properties, assert_refusals_checked

# The podman backend (podman exec) instead of one Ansible run per command: same checks, a
# fraction of the time. CONTAINERS_CONF comes from the environment (make test-molecule).
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
HOSTS = RUNNER.get_hosts("kafka_broker")  # every Kafka host (all combined); not the monitoring host
testinfra_hosts = [f"podman://{name}" for name in HOSTS]
NODE_IDS = {"kk-molecule-1": 1, "kk-molecule-2": 2, "kk-molecule-3": 3}
CLASSPATH = "/opt/kafka/current/libs/*"


def _address(host) -> str:
    return host.interface("eth0").addresses[0]


def _properties(host) -> dict[str, str]:
    text = host.file("/etc/kafka/server.properties").content_string
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


def test_service_running_and_enabled(host):
    service = host.service("kafka")
    assert service.is_running
    assert service.is_enabled


def _max_open_files(host, pid: str) -> int:
    limits = host.file(f"/proc/{pid}/limits").content_string
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    return int(line.split()[3])  # soft limit


def test_runs_as_kafka_user_with_limits(host):
    pid = host.check_output("systemctl show -p MainPID --value kafka")
    assert host.check_output(f"ps -o user= -p {pid}") == "kafka"
    # The unit asks for 128000 open files; the broker gets that, or the container's own hard
    # limit where that is lower (lab/containers.conf: 20000 on our build machines).
    assert host.check_output("systemctl show -p LimitNOFILE --value kafka") == "128000"
    ceiling = int(host.check_output("sh -c 'ulimit -Hn'"))
    assert _max_open_files(host, pid) == min(128000, ceiling)
    assert _max_open_files(host, pid) > 1024  # not the 1024 default a forgotten limit leaves


def test_ports_listening(host):
    assert host.socket("tcp://0.0.0.0:9092").is_listening
    assert host.socket("tcp://0.0.0.0:9093").is_listening


def test_rendered_config(host):
    props = _properties(host)
    hostname = host.backend.get_hostname()
    assert props["node.id"] == str(NODE_IDS[hostname])
    assert props["process.roles"] == "broker,controller"
    # The default quorum form of a new cluster: dynamic (KIP-853), the 3 controllers as bootstrap.
    assert len(props["controller.quorum.bootstrap.servers"].split(",")) == 3
    assert "controller.quorum.voters" not in props
    # Both listeners advertised at the inventory's address (molecule.yml: fixed IPs), so
    # --bootstrap-controller and the roll gates reach the controllers without DNS. The role's
    # default profile: SASL_SSL (SCRAM-SHA-512) for clients and brokers, TLS to the controllers.
    assert props["advertised.listeners"] == \
        f"SASL_SSL://{_address(host)}:9092,CONTROLLER://{_address(host)}:9093"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["min.insync.replicas"] == "2"
    env = host.file("/etc/kafka/kafka.env").content_string
    assert "-Xms384m -Xmx384m" in env


@pytest.mark.parametrize("path, user, group, mode", [
    ("/etc/kafka/tls", "root", "kafka", 0o750),
    ("/etc/kafka/tls/keystore.pem", "kafka", "kafka", 0o600),       # the host's key
    ("/etc/kafka/tls/truststore.pem", "root", "kafka", 0o644),      # CA certificates only
    ("/etc/kafka/credentials.properties", "kafka", "kafka", 0o600),  # the brokers' SCRAM login
    ("/etc/kafka/client", "root", "root", 0o700),                   # the gates' client files
    ("/etc/kafka/client/admin.properties", "root", "root", 0o600),
    ("/etc/kafka/client/controller.properties", "root", "root", 0o600),
])
def test_key_and_credential_files_are_private(host, path, user, group, mode):
    f = host.file(path)
    assert f.exists, path
    assert (f.user, f.group, f.mode) == (user, group, mode), (path, f.user, f.group, oct(f.mode))


def test_client_files_on_the_controller_are_private():
    """The admin's client files the converge wrote for this machine (kcat -F, --command-config)."""
    java = admin_properties(os.environ["MOLECULE_INVENTORY_FILE"])
    for f in (java, java.with_name("admin.librdkafka.properties")):
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert java.parent.stat().st_mode & 0o777 == 0o700
    text = java.read_text()
    assert "security.protocol=SASL_SSL" in text and "sasl.mechanism=SCRAM-SHA-512" in text


def test_storage_formatted_once_with_one_cluster_id(host):
    meta = host.file("/var/lib/kafka/data/meta.properties")
    assert meta.user == "kafka"
    ids = set()
    for name in testinfra_hosts:
        other = testinfra.get_host(name)
        line = [l for l in other.file("/var/lib/kafka/data/meta.properties").content_string.splitlines()
                if l.startswith("cluster.id=")]
        ids.add(line[0])
    assert len(ids) == 1


def test_quorum_has_leader_and_three_voters(host):
    out = host.check_output(
        f"java -cp '{CLASSPATH}' org.apache.kafka.tools.MetadataQuorumCommand "
        f"--bootstrap-controller {_address(host)}:9093 --command-config {HOST_CONTROLLER} describe --status")
    status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert int(status["LeaderId"]) in NODE_IDS.values()
    voters = json.loads(status["CurrentVoters"].strip())
    assert sorted(v["id"] for v in voters) == [1, 2, 3]


@pytest.fixture(scope="module")
def bootstrap() -> str:
    hosts = [testinfra.get_host(name) for name in testinfra_hosts]
    return ",".join(f"{_address(h)}:9092" for h in hosts)


def test_smoke_round_trip_from_controller(host, bootstrap):
    if host.backend.get_hostname() != "kk-molecule-1":
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
