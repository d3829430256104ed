"""The kit's reassignment plan (roles/kafka/filter_plugins/kafka_reassign.py): examples, the
refusals, and seeded random clusters (scale-out, drain, both; with and without racks) checked
against the rules the module's docstring states."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "kafka" / "filter_plugins"))

from kafka_reassign import (  # noqa: E402
    kafka_reassign_json,
    kafka_reassign_moves,
    kafka_reassign_plan,
    kafka_reassign_problems,
    kafka_topic_assignment,
)

DESCRIBE = """Topic: t\tTopicId: abc\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: min.insync.replicas=2
\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\tElr: \tLastKnownElr: 
\tTopic: t\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,3\tElr: \tLastKnownElr: 
\tTopic: __consumer_offsets\tPartition: 0\tLeader: 3\tReplicas: 3,1,2\tIsr: 3,1,2
"""


def apply(assignment, plan):
    moved = {(p["topic"], p["partition"]): p["replicas"] for p in plan}
    return [dict(p, replicas=moved.get((p["topic"], p["partition"]), p["replicas"])) for p in assignment]


def replica_moves(assignment, plan):
    before = {(p["topic"], p["partition"]): p["replicas"] for p in assignment}
    return sum(len(set(p["replicas"]) - set(before[(p["topic"], p["partition"])])) for p in plan)


def test_parses_topic_describe_sorted():
    assert kafka_topic_assignment(DESCRIBE) == [
        {"topic": "__consumer_offsets", "partition": 0, "replicas": [3, 1, 2]},
        {"topic": "t", "partition": 0, "replicas": [1, 2, 3]},
        {"topic": "t", "partition": 1, "replicas": [2, 3, 1]},
    ]


def test_scale_out_moves_onto_the_new_broker_and_keeps_racks():
    # 3 brokers on 3 racks, 6 partitions RF 3; broker 4 joins rack-a: it can only take rack-a's
    # place (the spread stays 3), so it takes half of broker 1's replicas.
    assignment = [{"topic": "t", "partition": i, "replicas": [1 + (i + k) % 3 for k in range(3)]} for i in range(6)]
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-c", 4: "rack-a"}
    plan = kafka_reassign_plan(assignment, [1, 2, 3, 4], racks)
    after = apply(assignment, plan)
    load = Counter(b for p in after for b in p["replicas"])
    assert load == {1: 3, 4: 3, 2: 6, 3: 6}
    assert all({racks[b] for b in p["replicas"]} == {"rack-a", "rack-b", "rack-c"} for p in after)
    assert replica_moves(assignment, plan) == 3
    assert kafka_reassign_plan(after, [1, 2, 3, 4], racks) == []


def test_replacement_keeps_the_position_of_the_replaced_replica():
    plan = kafka_reassign_plan([{"topic": "t", "partition": 0, "replicas": [3, 1, 2]}], [1, 2, 3, 4], drain=[3])
    assert plan == [{"topic": "t", "partition": 0, "replicas": [4, 1, 2]}]
    assert kafka_reassign_moves(plan, [{"topic": "t", "partition": 0, "replicas": [3, 1, 2]}]) == ["t-0: 3,1,2 -> 4,1,2"]


def test_json_document_of_reassign_partitions():
    doc = kafka_reassign_json([{"topic": "t", "partition": 0, "replicas": [4, 1, 2]}])
    assert doc == {"version": 1, "partitions": [
        {"topic": "t", "partition": 0, "replicas": [4, 1, 2], "log_dirs": ["any", "any", "any"]}]}


def test_refuses_a_drain_below_the_replication_factor():
    assignment = [{"topic": "t", "partition": 0, "replicas": [1, 2, 3]}]
    problems = kafka_reassign_problems(assignment, [1, 2, 3], drain=[3])
    assert problems == ["replication factor 3 (topics t) needs 3 brokers, 2 would remain ([1, 2])"]
    with pytest.raises(ValueError, match="replication factor 3"):
        kafka_reassign_plan(assignment, [1, 2, 3], drain=[3])


def test_refuses_a_drain_that_loses_a_rack():
    assignment = [{"topic": "t", "partition": 0, "replicas": [1, 2, 3]}]
    racks = {1: "a", 2: "b", 3: "c", 4: "a"}
    assert kafka_reassign_problems(assignment, [1, 2, 3, 4], racks, drain=[1]) == []
    problems = kafka_reassign_problems(assignment, [1, 2, 3, 4], racks, drain=[3])
    assert problems == ["draining [3] leaves racks ['a', 'b']: partitions of replication factor 3 "
                        "would span 2 racks instead of 3"]


def test_refuses_unknown_brokers_and_partial_racks():
    assignment = [{"topic": "t", "partition": 0, "replicas": [1, 2, 9]}]
    problems = kafka_reassign_problems(assignment, [1, 2, 3], {1: "a", 2: "b"}, drain=[7])
    assert problems == [
        "drained broker 7 is not a broker of the cluster ([1, 2, 3])",
        "racks are set on some brokers but not on 3",
        "t-0 has replicas on [9], not in the broker list [1, 2, 3]",
    ]


def test_fixes_a_partition_below_its_rack_spread():
    assignment = [{"topic": "t", "partition": 0, "replicas": [1, 4, 2]}]
    racks = {1: "a", 2: "b", 3: "c", 4: "a"}
    after = apply(assignment, kafka_reassign_plan(assignment, [1, 2, 3, 4], racks))
    assert {racks[b] for b in after[0]["replicas"]} == {"a", "b", "c"}


# --- seeded random clusters ------------------------------------------------------------------

def random_cluster(rng: random.Random):
    n_racks = rng.choice([0, 1, 2, 3, 4])
    n_brokers = rng.randint(max(3, n_racks), 9)
    brokers = list(range(1, n_brokers + 1))
    racks = {b: f"r{(b - 1) % n_racks}" for b in brokers} if n_racks else {}
    rf = rng.randint(1, 3)
    # The cluster before the operation: the brokers that held replicas (the new ones do not).
    old = brokers[: rng.randint(max(rf, 1), n_brokers)]
    spread_racks = len({racks[b] for b in old}) if racks else len(old)
    assignment = []
    for t in range(rng.randint(1, 3)):
        for p in range(rng.randint(1, 12)):
            # rack-spread placement as Kafka's own does (one replica per rack first)
            if racks:
                by_rack: dict[str, list[int]] = {}
                for b in rng.sample(old, len(old)):
                    by_rack.setdefault(racks[b], []).append(b)
                order = [lst[i] for i in range(len(old)) for lst in by_rack.values() if i < len(lst)]
                replicas = order[:rf]
            else:
                replicas = rng.sample(old, rf)
            assignment.append({"topic": f"t{t}", "partition": p, "replicas": replicas})
    del spread_racks
    drain = rng.sample(brokers, rng.randint(0, 1)) if rng.random() < 0.6 else []
    return assignment, brokers, racks, drain


def check_rules(assignment, brokers, racks, drain, plan):
    keep = [b for b in brokers if b not in drain]
    rack_of = racks or {b: str(b) for b in brokers}
    n_racks = len({rack_of[b] for b in keep})
    after = apply(assignment, plan)
    by_key = {(p["topic"], p["partition"]): p for p in assignment}
    for p in after:
        before = by_key[(p["topic"], p["partition"])]["replicas"]
        assert len(p["replicas"]) == len(before), p
        assert len(set(p["replicas"])) == len(p["replicas"]), p
        assert not set(p["replicas"]) & set(drain), p
        assert set(p["replicas"]) <= set(keep), p
        assert len({rack_of[b] for b in p["replicas"]}) >= min(len(before), n_racks), (p, racks)
    return after


SEEDS = range(250)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cluster_rules(seed):
    rng = random.Random(seed)
    assignment, brokers, racks, drain = random_cluster(rng)
    problems = kafka_reassign_problems(assignment, brokers, racks, drain)
    if problems:
        with pytest.raises(ValueError):
            kafka_reassign_plan(assignment, brokers, racks, drain)
        return
    plan = kafka_reassign_plan(assignment, brokers, racks, drain)
    after = check_rules(assignment, brokers, racks, drain, plan)
    # Only changed partitions are listed.
    by_key = {(p["topic"], p["partition"]): p["replicas"] for p in assignment}
    assert all(p["replicas"] != by_key[(p["topic"], p["partition"])] for p in plan)
    # Idempotent: the plan applied, nothing is left to move.
    assert kafka_reassign_plan(after, brokers, racks, drain) == []
    # Deterministic and independent of the input's order.
    shuffled = rng.sample(assignment, len(assignment))
    assert kafka_reassign_plan(shuffled, rng.sample(brokers, len(brokers)), racks, drain) == plan


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cluster_without_racks_moves_the_minimum(seed):
    """Without racks, the number of replica moves is the lower bound: every replica on a drained
    broker, and enough to bring every broker within [floor, ceil] of the mean: max(excess, deficit)."""
    rng = random.Random(seed)
    assignment, brokers, _, drain = random_cluster(rng)
    if kafka_reassign_problems(assignment, brokers, {}, drain):
        return
    plan = kafka_reassign_plan(assignment, brokers, {}, drain)
    keep = [b for b in brokers if b not in drain]
    load = Counter(b for p in assignment for b in p["replicas"])
    total = sum(load.values())
    lo, hi = total // len(keep), -(-total // len(keep))
    excess = sum(load[b] for b in drain) + sum(max(0, load[b] - hi) for b in keep)
    deficit = sum(max(0, lo - load[b]) for b in keep)
    after = apply(assignment, plan)
    final = Counter(b for p in after for b in p["replicas"])
    assert all(lo <= final[b] <= hi for b in keep), (final, lo, hi)
    assert replica_moves(assignment, plan) == max(excess, deficit)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_cluster_with_racks_moves_only_what_evens_the_load(seed):
    """With racks, the plan stops where no single move could even the load further without
    breaking a rule (the racks may forbid the rack-free balance: a drained broker's replicas
    can only go to its own rack when every partition spans all racks), and without a drain the
    load only gets more even (the sum of squares never grows)."""
    rng = random.Random(seed)
    assignment, brokers, racks, drain = random_cluster(rng)
    if not racks or kafka_reassign_problems(assignment, brokers, racks, drain):
        return
    plan = kafka_reassign_plan(assignment, brokers, racks, drain)
    keep = [b for b in brokers if b not in drain]
    n_racks = len({racks[b] for b in keep})
    load = Counter(b for p in assignment for b in p["replicas"])
    after = apply(assignment, plan)
    final = Counter(b for p in after for b in p["replicas"])
    if not drain:
        assert sum(final[b] ** 2 for b in keep) <= sum(load[b] ** 2 for b in brokers)
    for src in keep:
        for dst in keep:
            if final[src] - final[dst] < 2:
                continue
            for p in after:
                if src in p["replicas"] and dst not in p["replicas"]:
                    moved = [dst if b == src else b for b in p["replicas"]]
                    need = min(len(moved), n_racks, len({racks[b] for b in p["replicas"]}))
                    assert len({racks[b] for b in moved}) < need, (p, src, dst, final)
