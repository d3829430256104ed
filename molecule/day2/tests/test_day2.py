"""Outcome of the day2 scenario on its hosts: every host runs 4.4.0 with the restart record of
4.4.0, broker 4 holds replicas of some topic (or, after the full sequence's drain, is stopped and holds none),
no replication throttle is left, and the totals of the traffic show nothing lost or duplicated."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

testinfra_hosts = ["kafka_controller", "kafka_broker"]
WORK = Path(os.environ.get("DAY2_WORK") or os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
CP = "/opt/kafka/current/libs/*"


def test_runs_the_new_version(host):
    assert host.file("/opt/kafka/current").linked_to == "/opt/kafka/kafka_2.13-4.4.0"
    record = json.loads(host.file("/var/lib/kafka-kit/kafka.running.json").content_string)
    assert record["version"] == "kafka_2.13-4.4.0"
    assert host.service("kafka").is_running


@pytest.fixture(scope="module")
def totals():
    return json.loads((WORK / "totals.json").read_text())


def test_nothing_lost_nothing_duplicated(totals):
    assert totals["acked"] > 0
    assert totals["acked"] == totals["sent"]
    assert totals["failed"] == 0 and totals["undelivered"] == 0
    assert totals["lost"] == 0
    assert totals["duplicated"] == 0
    assert totals["read_back"] == totals["acked"]
    assert totals["live_missed"] == 0


def test_finalized_and_no_throttle(host):
    if host.backend.get_hostname() != "kk-day2-b1":
        pytest.skip("cluster-wide: checked from kk-day2-b1")
    features = host.check_output(f"java -cp '{CP}' org.apache.kafka.tools.FeatureCommand "
                                 "--bootstrap-server 10.89.64.21:9092 describe")
    assert "FinalizedVersionLevel: 4.4-IV" in features
    configs = host.check_output(f"java -cp '{CP}' org.apache.kafka.tools.ConfigCommand "
                                "--bootstrap-server 10.89.64.21:9092 --describe --entity-type brokers")
    assert "throttled.rate" not in configs
    topics = host.check_output(f"java -cp '{CP}' org.apache.kafka.tools.TopicCommand "
                               "--bootstrap-server 10.89.64.21:9092 --describe")
    drained = "drain " in (WORK / "steps.log").read_text()
    holds_4 = any("4" in line.split("Replicas:")[1].split()[0].split(",")
                  for line in topics.splitlines() if "Replicas:" in line)
    assert holds_4 != drained
