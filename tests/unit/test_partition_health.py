"""The restart gate's partition health (filter kafka_partition_health in
roles/kafka/filter_plugins/kafka_restart.py), parsed from TopicCommand's own describe output.

The gate stops a host only when its `blocking` and `at_min_isr_with_me` lists are empty. The
guarantee: a restart the gate lets through never takes a partition below min.insync.replicas and
never shrinks the ISR of an under-replicated partition; the one thing it excuses is a partition
whose only replica out of the ISR is the host itself (its log dir offline on a full disk), which
the restart is there to bring back.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "kafka" / "filter_plugins"))

from kafka_restart import kafka_partition_health  # noqa: E402

# What TopicCommand 4.4 printed on the day2 lab with broker 3's second log dir offline.
URP = (
    "Topic: day2-traffic\tTopicId: x\tPartitionCount: 6\tReplicationFactor: 3\tConfigs: min.insync.replicas=2\n"
    "\tTopic: day2-traffic\tPartition: 1\tLeader: 1\tReplicas: 3,1,2\tIsr: 1,2\tElr: \tLastKnownElr: \n"
    "\tTopic: day2-traffic\tPartition: 4\tLeader: 2\tReplicas: 2,3,4\tIsr: 2,4\tElr: \tLastKnownElr: \n"
    "\tTopic: Day2-bulk\tPartition: 0\tLeader: 4\tReplicas: 4,1,2\tIsr: 4\tElr: \tLastKnownElr: \n"
)


def test_own_offline_replicas_do_not_block_but_others_do():
    health = kafka_partition_health(URP, URP, 3)
    assert health["under_replicated"] == ["day2-traffic|1|1,2", "day2-traffic|4|2,4", "Day2-bulk|0|4"]
    assert health["own_out_of_sync"] == ["day2-traffic|1|1,2", "day2-traffic|4|2,4"]
    assert health["blocking"] == ["Day2-bulk|0|4"]
    assert health["at_min_isr_with_me"] == []


def test_a_broker_in_the_isr_of_a_partition_at_min_isr_is_held():
    health = kafka_partition_health(URP, URP, 1)
    assert health["own_out_of_sync"] == []
    assert health["at_min_isr_with_me"] == ["day2-traffic|1|1,2"]


def test_during_a_reassignment_the_adding_replicas_column_is_not_read_as_the_isr():
    row = ("\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2,3,4\tIsr: 1,2,3\t"
           "Adding Replicas: 4\tRemoving Replicas: 3\tElr: \tLastKnownElr: \n")
    assert kafka_partition_health(row, "", 4)["own_out_of_sync"] == ["t|0|1,2,3"]
    assert kafka_partition_health(row, "", 1)["blocking"] == ["t|0|1,2,3"]


def test_nothing_to_report():
    assert kafka_partition_health("", "", 1) == {
        "under_replicated": [], "own_out_of_sync": [], "blocking": [], "at_min_isr_with_me": []}


def _describe(rows):
    return "".join(f"\tTopic: t{n}\tPartition: {p}\tLeader: {isr[0] if isr else 'none'}\t"
                   f"Replicas: {','.join(map(str, reps))}\tIsr: {','.join(map(str, isr))}\tElr: \tLastKnownElr: \n"
                   for n, (p, reps, isr) in enumerate(rows))


def test_the_gate_never_lets_a_restart_shrink_a_degraded_or_minimal_isr():
    """Random clusters, brokers and ISRs: whenever the gate passes for a node, stopping it leaves
    every partition at min.insync.replicas or above, or with its ISR unchanged."""
    rng = random.Random(20261207)
    passed = excused = 0
    for _ in range(5000):
        brokers = list(range(1, rng.randint(3, 7)))
        rf = rng.randint(1, min(3, len(brokers)))
        min_isr = rng.randint(1, rf)
        rows = []
        for p in range(rng.randint(1, 8)):
            reps = rng.sample(brokers, rf)
            isr = [b for b in reps if rng.random() < 0.8]
            rows.append((p, reps, isr))
        urp = _describe([r for r in rows if len(r[2]) < rf])
        at_min = _describe([r for r in rows if len(r[2]) == min_isr])
        me = rng.choice(brokers)
        health = kafka_partition_health(urp, at_min, me)
        for item in health["own_out_of_sync"]:
            assert str(me) not in item.split("|")[2].split(","), item
        if health["blocking"] or health["at_min_isr_with_me"]:
            continue
        passed += 1
        excused += bool(health["own_out_of_sync"])
        for _, reps, isr in rows:
            if me in isr:
                # it was fully replicated and keeps min.insync.replicas without this node
                assert len(isr) == rf and len(isr) - 1 >= min_isr, (reps, isr, me, min_isr)
    assert passed > 500 and excused > 50, (passed, excused)
