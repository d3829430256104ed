"""Upgrade rules (roles/kafka/filter_plugins/kafka_upgrade.py): the preflight's refusals, the
finalize's lagging hosts, and the parsing of FeatureCommand describe as Kafka 4.4.0 prints it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "kafka" / "filter_plugins"))

from kafka_upgrade import (  # noqa: E402
    kafka_features,
    kafka_release,
    kafka_upgrade_lagging,
    kafka_upgrade_problems,
)

# Recorded from `FeatureCommand describe` of a 4.4.0 broker on a cluster formatted by 4.3.1.
DESCRIBE = (
    "Feature: eligible.leader.replicas.version          SupportedMinVersion: 0                SupportedMaxVersion: 1"
    "                FinalizedVersionLevel: 1                Epoch: 179\n"
    "Feature: kraft.version                             SupportedMinVersion: 0                SupportedMaxVersion: 1"
    "                FinalizedVersionLevel: 0                Epoch: 179\n"
    "Feature: metadata.version                          SupportedMinVersion: 3.3-IV3          SupportedMaxVersion: 4.4-IV2"
    "          FinalizedVersionLevel: 4.3-IV0          Epoch: 179\n")

OLD, NEW = "kafka_2.13-4.3.1", "kafka_2.13-4.4.0"


def host(name, current=OLD, record=None, running=True, java=17):
    return {"host": name, "current": current, "record": current if record is None else record,
            "running": running, "java_major": java}


def test_features_parsed():
    f = kafka_features(DESCRIBE)
    assert f["metadata.version"] == {"supported_min": "3.3-IV3", "supported_max": "4.4-IV2",
                                     "finalized": "4.3-IV0", "epoch": "179"}
    assert f["kraft.version"]["finalized"] == "0"
    assert kafka_features("") == {}


@pytest.mark.parametrize("text,release", [("4.4.0", "4.4"), (NEW, "4.4"), ("4.4-IV2", "4.4"), ("3.9.2", "3.9")])
def test_release(text, release):
    assert kafka_release(text) == release


def test_release_of_garbage_names_the_input():
    with pytest.raises(ValueError, match="'latest'"):
        kafka_release("latest")


def test_one_starting_version_passes():
    assert kafka_upgrade_problems([host("a"), host("b")], NEW, "kraft", "4.3-IV0") == []


def test_resume_after_an_interrupted_roll_passes():
    assert kafka_upgrade_problems([host("a", NEW), host("b")], NEW, "kraft", "4.3-IV0") == []


def test_two_starting_versions_refused():
    problems = kafka_upgrade_problems([host("a", "kafka_2.13-4.2.0"), host("b")], NEW, "kraft", "4.2-IV1")
    assert problems == ["hosts run more than one version besides the target: kafka_2.13-4.2.0 on a; "
                        "kafka_2.13-4.3.1 on b. Bring them to one version first (converge with that "
                        "kafka_version), then upgrade"]


def test_zookeeper_mode_told_to_migrate_first():
    problems = kafka_upgrade_problems([host("a", "kafka_2.13-3.9.2")], NEW, "zookeeper")
    assert len(problems) == 1 and "Migrate the cluster to KRaft on 3.9 first" in problems[0]


def test_old_java_refused_and_missing_install_and_stopped_service():
    problems = kafka_upgrade_problems([host("a", java=11), host("b", current=""), host("c", running=False)],
                                      NEW, "kraft")
    assert problems == [
        "no Kafka installed on b (no current link): deploy with site.yml first; upgrade.yml moves a running cluster",
        "Kafka is not running on c: start it (or fix it) first, the roll's gates need every host up",
        "Kafka 4.x needs Java 17 or newer: a (Java 11)",
    ]


def test_rollback_allowed_before_the_finalize_refused_after():
    hosts = [host("a", NEW), host("b", NEW)]
    assert kafka_upgrade_problems(hosts, OLD, "kraft", "4.3-IV0") == []
    problems = kafka_upgrade_problems(hosts, OLD, "kraft", "4.4-IV2")
    assert problems == ["metadata.version 4.4-IV2 is finalized: Kafka 4.3 cannot read the metadata log any "
                        "more. A rollback below the finalized release is not possible (docs/day2.md, Upgrade)"]


def test_lagging_hosts_named_with_why():
    hosts = [host("a", NEW), host("b", NEW, record=OLD), host("c"), host("d", NEW, running=False)]
    assert kafka_upgrade_lagging(hosts, NEW) == [
        "b: running kafka_2.13-4.3.1",
        "c: current -> kafka_2.13-4.3.1, running kafka_2.13-4.3.1",
        "d: service not running",
    ]
    assert kafka_upgrade_lagging([host("a", NEW)], NEW) == []
