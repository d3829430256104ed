"""The production shape on lab hosts: 10 brokers on 3 racks, 3 dedicated KRaft controllers.

CLUSTER_BROKERS=N (molecule/cluster/vars/lab.yml) builds N brokers instead: make test runs 4
(CI's time budget), make test-cluster the 10."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner
from kit_clients import HOST_CONTROLLER, admin_properties, assert_refusals_checked

INVENTORY = str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "inventory" / "hosts.yml")
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
BROKERS = RUNNER.get_hosts("kafka_broker")
CONTROLLERS = RUNNER.get_hosts("kafka_controller")
testinfra_hosts = [f"ansible://{h}?ansible_inventory={INVENTORY}&sudo=true" for h in BROKERS + CONTROLLERS]
CLASSPATH = "/opt/kafka/current/libs/*"
EXPECTED_BROKERS = int(os.environ.get("CLUSTER_BROKERS") or 10)


def _props(host) -> dict[str, str]:
    text = host.file("/etc/kafka/server.properties").content_string
    return dict(l.split("=", 1) for l in text.splitlines() if l and not l.startswith("#"))


def test_shape():
    assert len(BROKERS) == EXPECTED_BROKERS
    assert len(CONTROLLERS) == 3
    assert not set(BROKERS) & set(CONTROLLERS)


def _get(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}&sudo=true")


def test_service_and_role(host):
    root = host
    assert root.service("kafka").is_running
    props = _props(root)
    if int(props["node.id"]) > 100:  # the lab numbers dedicated controllers 101..
        assert props["process.roles"] == "controller"
        assert root.socket("tcp://0.0.0.0:9093").is_listening
        assert not root.socket("tcp://0.0.0.0:9092").is_listening
    else:
        assert props["process.roles"] == "broker"
        assert 1 <= int(props["node.id"]) <= EXPECTED_BROKERS
        assert props["broker.rack"] in {"rack-a", "rack-b", "rack-c"}
        assert root.socket("tcp://0.0.0.0:9092").is_listening
    # The default quorum form of a new cluster: dynamic (KIP-853), the 3 controllers as bootstrap.
    assert len(props["controller.quorum.bootstrap.servers"].split(",")) == 3
    assert "controller.quorum.voters" not in props


def test_quorum_and_smoke_from_the_controller_machine():
    """Quorum with a leader among the 3 controllers; every broker registered; an RF=3 topic spread
    over the 3 racks round-trips records over SASL_SSL as the admin, and an anonymous client, a
    wrong password and a user without ACLs are refused (pyclient smoke, from the machine running
    Ansible)."""
    bootstrap = ",".join(_props(_get(b))["advertised.listeners"].split("//", 1)[1] for b in BROKERS)
    ctl = _get(CONTROLLERS[0])
    address = _props(ctl)["controller.quorum.bootstrap.servers"].split(",")[0]
    out = ctl.check_output(f"java -cp '{CLASSPATH}' org.apache.kafka.tools.MetadataQuorumCommand "
                           f"--bootstrap-controller {address} --command-config {HOST_CONTROLLER} describe --status")
    status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert int(status["LeaderId"]) in {101, 102, 103}
    assert sorted(v["id"] for v in json.loads(status["CurrentVoters"])) == [101, 102, 103]

    result = subprocess.run(
        [sys.executable, "-m", "pyclient", "smoke", "--bootstrap-servers", bootstrap,
         "--command-config", str(admin_properties(INVENTORY)),
         "--expect-brokers", str(EXPECTED_BROKERS), "--replication-factor", "3", "--partitions", "12",
         "--records", "20000", "--expect-racks", "--json"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    # The refused-access checks ran over the secure listener, each naming the broker's error.
    assert_refusals_checked(report)
