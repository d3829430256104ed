"""Metrics and alerts of the default scenario (issue 14): the JMX exporter agent on every Kafka
host serves the named series, Prometheus on the monitoring host scrapes every target, and a
stopped broker fires KafkaBrokerDown and KafkaUnderReplicatedPartitions within the rules' `for`
plus a scrape and an evaluation interval, both resolving after the restart.

Runs in the verify step after test_default.py; the monitoring host's short intervals and `for`
are in molecule.yml (host_vars of kk-molecule-mon).
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
import uuid

import pytest
import testinfra
import testinfra.utils.ansible_runner
from confluent_kafka.admin import AdminClient, NewTopic
from kit_clients import admin_config, metrics

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
BROKERS = RUNNER.get_hosts("kafka_broker")
MONITORING = RUNNER.get_hosts("monitoring")
VARS = {name: RUNNER.get_variables(name) for name in BROKERS + MONITORING}
ADDRESS = {name: VARS[name]["kafka_listener_address"] for name in BROKERS}
PROMETHEUS = f"http://{VARS[MONITORING[0]]['monitoring_prometheus_address']}:9090" if MONITORING else ""

pytestmark = pytest.mark.skipif(not MONITORING, reason="no monitoring host in this scenario")


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]]


MON = VARS[MONITORING[0]] if MONITORING else {}
SCRAPE = _seconds(MON.get("monitoring_scrape_interval", "15s"))
EVALUATION = _seconds(MON.get("monitoring_evaluation_interval", "15s"))
FOR = {k: _seconds(v) for k, v in MON.get("monitoring_alert_for", {}).items()}


def _metrics(name: str) -> dict[str, float]:
    """The agent's /metrics of a Kafka host, read over the scenario network as Prometheus does
    (HTTPS, verified against the cluster's CA, with the secure profile)."""
    text = metrics(ADDRESS[name], INVENTORY)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _api(path: str, **params) -> dict:
    url = f"{PROMETHEUS}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", body
    return body["data"]


def _firing() -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("instance", "")) for a in _api("alerts")["alerts"]
            if a["state"] == "firing"}


def _wait(check, timeout: float, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_named_series_on_every_kafka_host():
    leaders, states, active = set(), [], 0
    for name in BROKERS:
        m = _metrics(name)
        assert m["kafka_server_replicamanager_underreplicatedpartitions"] == 0, name
        assert m["kafka_server_replicamanager_underminisrpartitioncount"] == 0, name
        assert m["kafka_log_logmanager_offlinelogdirectorycount"] == 0, name
        active += m["kafka_controller_kafkacontroller_activecontrollercount"]
        leaders.add(m["kafka_server_raft_metrics_current_leader"])
        states += [k for k in m if k.startswith("kafka_server_raft_metrics_current_state{")]
        assert m["kafka_server_raft_metrics_number_of_voters"] == 3, name
    assert active == 1, "exactly one active controller in the cluster"
    assert len(leaders) == 1 and int(leaders.pop()) in {VARS[n]["kafka_node_id"] for n in BROKERS}
    assert sorted(states).count('kafka_server_raft_metrics_current_state{state="leader"}') == 1


def test_prometheus_scrapes_every_target_and_nothing_fires():
    def all_up():
        targets = _api("targets")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = _wait(all_up, 60)
    assert targets, [(t["labels"], t["health"], t.get("lastError")) for t in _api("targets")["activeTargets"]]
    kafka = {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "kafka"}
    assert kafka == set(BROKERS)
    # The secure profile serves /metrics over HTTPS, and Prometheus verifies it (up = verified).
    assert {t["scrapeUrl"].split(":", 1)[0] for t in targets if t["labels"]["job"] == "kafka"} == {"https"}
    assert {t["labels"]["instance"] for t in targets if t["labels"]["job"] == "node"} == set(BROKERS)
    labels = next(t["labels"] for t in targets if t["labels"]["job"] == "kafka")
    assert labels["process_roles"] == "broker,controller" and labels["node_id"]
    assert _wait(lambda: not _firing(), 60), _firing()


def test_stopped_broker_fires_down_and_under_replicated_then_resolves():
    victim = BROKERS[-1]
    host = testinfra.get_host(f"podman://{victim}", sudo=True)
    bootstrap = ",".join(f"{a}:9092" for a in ADDRESS.values())
    admin = AdminClient({**admin_config(INVENTORY), "bootstrap.servers": bootstrap})
    topic = f"alert-check-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(60)
    try:
        host.check_output("systemctl stop kafka")
        stopped = time.monotonic()
        slack = 5  # this test's polling step plus the API round trip
        down_bound = FOR["node_down"] + SCRAPE + EVALUATION + slack
        urp_bound = FOR["under_replicated"] + SCRAPE + EVALUATION + slack
        fired: dict[str, float] = {}

        def both_fired():
            now = _firing()
            if ("KafkaBrokerDown", victim) in now:
                fired.setdefault("down", time.monotonic() - stopped)
            if any(a == "KafkaUnderReplicatedPartitions" and i != victim for a, i in now):
                fired.setdefault("urp", time.monotonic() - stopped)
            return len(fired) == 2

        _wait(both_fired, max(down_bound, urp_bound) + 30)
        print(f"fired after stop: {fired} (bounds: down {down_bound}s, urp {urp_bound}s)")
        assert "down" in fired and fired["down"] <= down_bound, fired
        assert "urp" in fired and fired["urp"] <= urp_bound, fired
    finally:
        host.check_output("systemctl start kafka")
        started = time.monotonic()
    resolved = _wait(lambda: not ({"KafkaBrokerDown", "KafkaUnderReplicatedPartitions"}
                                  & {a for a, _ in _firing()}), 300, step=2)
    print(f"resolved {time.monotonic() - started:.1f}s after the start")
    assert resolved, _firing()
    # Leave the cluster as found for the next tests: fully replicated.
    def replicated() -> bool:
        try:
            return all(_metrics(n)["kafka_server_replicamanager_underreplicatedpartitions"] == 0 for n in BROKERS)
        except (OSError, KeyError):  # the restarted broker's agent not serving yet
            return False

    assert _wait(replicated, 300, step=2)
    admin.delete_topics([topic])[topic].result(60)
