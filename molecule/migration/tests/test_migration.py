"""Outcomes after the migration (side_effect.yml). Forward (MIGRATION_PATH unset or forward):
the cluster runs KRaft only, ZooKeeper is stopped. Rollback (MIGRATION_PATH=rollback, after
phase 3): the brokers run ZooKeeper mode without migration settings, the KRaft controllers are
stopped and disabled, ZooKeeper runs. Both: every record written before and during the
migration is read back, and the cluster still serves a replicated round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
BROKERS = RUNNER.get_hosts("kafka_broker")
CONTROLLERS = RUNNER.get_hosts("kafka_controller")
testinfra_hosts = [f"podman://{name}" for name in BROKERS + CONTROLLERS]
WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
LOADGEN = Path(__file__).resolve().parents[1] / "loadgen.py"
ROLLBACK = os.environ.get("MIGRATION_PATH", "forward") == "rollback"
forward_only = pytest.mark.skipif(ROLLBACK, reason="the forward path's outcome")
rollback_only = pytest.mark.skipif(not ROLLBACK, reason="the rollback path's outcome")


def _address(host) -> str:
    return host.interface("eth0").addresses[0]


def _props(host) -> dict[str, str]:
    text = host.file("/etc/kafka/server.properties").content_string
    return dict(l.split("=", 1) for l in text.splitlines() if l and not l.startswith("#"))


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return ",".join(f"{_address(testinfra.get_host('podman://' + b))}:9092" for b in BROKERS)


@forward_only
def test_kafka_runs_kraft_only(host):
    props = _props(host)
    assert not [k for k in props if k.startswith("zookeeper.")]
    assert "broker.id" not in props
    name = host.backend.get_hostname()
    assert props["process.roles"] == ("controller" if name in CONTROLLERS else "broker")
    assert host.service("kafka").is_running


@forward_only
def test_zookeeper_retired(host):
    if host.backend.get_hostname() in CONTROLLERS:
        pytest.skip("no ZooKeeper on the controller")
    service = host.service("zookeeper")
    assert not service.is_running
    assert not service.is_enabled
    assert host.file("/var/lib/zookeeper/data/myid").exists  # data kept


@forward_only
def test_brokers_storage_kept_cluster_id(host):
    """The brokers kept their ZooKeeper-era log dirs; the controller has the same cluster id."""
    ids = set()
    for name in BROKERS + CONTROLLERS:
        meta = testinfra.get_host(f"podman://{name}").file("/var/lib/kafka/data/meta.properties").content_string
        ids.add(next(l for l in meta.splitlines() if l.startswith("cluster.id=")))
    assert len(ids) == 1


@rollback_only
def test_brokers_back_in_zookeeper_mode(host):
    props = _props(host)
    name = host.backend.get_hostname()
    if name in CONTROLLERS:
        kafka = host.service("kafka")
        assert not kafka.is_running and not kafka.is_enabled
        return
    assert "process.roles" not in props and "node.id" not in props
    assert props["broker.id"] and props["zookeeper.connect"].endswith("/kafka")
    assert not [k for k in props if k.startswith("zookeeper.metadata.migration")]
    assert "controller.quorum.voters" not in props and "controller.listener.names" not in props
    assert host.service("kafka").is_running
    assert host.service("zookeeper").is_running


def test_every_record_read_back(host, bootstrap):
    if host.backend.get_hostname() != BROKERS[0]:
        pytest.skip("checked once")
    result = subprocess.run(
        [sys.executable, str(LOADGEN), "check", "--bootstrap", bootstrap,
         "--seed", str(WORK / "seed.json"), "--run", str(WORK / "run.json")],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    run = json.loads((WORK / "run.json").read_text())
    assert report["seed"] == 20000
    assert report["live"] > 0 and not run["failed"] and run["undelivered"] == 0
    assert report["missing"] == 0
    print(report)


def test_smoke_round_trip_at_the_end(host, bootstrap):
    if host.backend.get_hostname() != BROKERS[0]:
        pytest.skip("the cluster-wide smoke test runs once")
    result = subprocess.run(
        [sys.executable, "-m", "pyclient", "smoke", "--bootstrap-servers", bootstrap,
         "--expect-brokers", "3", "--replication-factor", "3", "--records", "2000", "--json"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True
