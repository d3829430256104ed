"""The plan of a change to a dynamic quorum's voters (filter_plugins/kafka_quorum_members.py).

Property-style: random quorums (voters with random lags, observers), random inventories and
random removal lists; whatever the input, an accepted plan keeps at least 3 voters (an odd
number when it changes any), removes only
voters, adds only controllers of the inventory that do not vote, never touches a combined host,
and is refused when a voter lags. The real quorum (3 -> 5 -> 3 on Kafka) is in test_dynamic_quorum.py.
"""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("qm", REPO / "roles/kafka/filter_plugins/kafka_quorum_members.py")
qm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(qm)

HEADER = "NodeId\tDirectoryId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus\n"


def _describe(rows: list[tuple[int, int, str]]) -> str:
    """describe --replication as Kafka prints it: (node id, lag, status) rows."""
    return HEADER + "".join(f"{n}\tDIR{n:019d}\t{1000 - lag}\t{lag}\t1700000000000\t{1700000000000 if lag < 10**6 else -1}\t{s}\n"
                            for n, lag, s in rows)


def _controllers(ids, combined=()):
    return [{"host": f"c{i}", "node_id": i, "broker": i in combined} for i in ids]


def test_adds_the_controllers_that_do_not_vote_and_keeps_the_order():
    out = _describe([(1, 0, "Leader"), (2, 0, "Follower"), (3, 3, "Follower"), (4, 0, "Observer"), (101, 0, "Observer")])
    plan = qm.kafka_quorum_membership_plan(out, _controllers([1, 2, 3, 5, 4]), [], 100)
    assert plan["errors"] == [] and plan["add"] == ["c5", "c4"] and plan["final"] == [1, 2, 3, 4, 5]
    assert plan["voters"] == [1, 2, 3] and plan["remove"] == []


def test_a_removal_names_the_voters_directory_id():
    out = _describe([(1, 0, "Leader"), (2, 0, "Follower"), (3, 0, "Follower"), (4, 0, "Follower"), (5, 0, "Follower")])
    plan = qm.kafka_quorum_membership_plan(out, _controllers([1, 2, 3, 4, 5]), ["c1", "c5"], 100)
    assert plan["errors"] == []
    assert plan["remove"] == [{"host": "c1", "node_id": 1, "directory_id": f"DIR{1:019d}"},
                              {"host": "c5", "node_id": 5, "directory_id": f"DIR{5:019d}"}]
    assert plan["final"] == [2, 3, 4]


def test_refusals_name_the_input():
    three = _describe([(1, 0, "Leader"), (2, 0, "Follower"), (3, 0, "Follower")])
    errors = qm.kafka_quorum_membership_plan(three, _controllers([1, 2, 3]), ["c3"], 100)["errors"]
    assert errors and "would have 2 voter(s) (1, 2)" in errors[0]
    errors = qm.kafka_quorum_membership_plan(three, _controllers([1, 2, 3]), ["c7"], 100)["errors"]
    assert any("kafka_kraft_controllers_remove names c7" in e for e in errors)
    errors = qm.kafka_quorum_membership_plan(three, _controllers([1, 2, 3, 4, 5], combined=[4]), [], 100)["errors"]
    assert any("c4 run a broker too" in e for e in errors)
    errors = qm.kafka_quorum_membership_plan(three, _controllers([1, 2, 3, 4]), [], 100)["errors"]
    assert any("would have 4 voters (1, 2, 3, 4)" in e and "in pairs" in e for e in errors)
    lagging = _describe([(1, 0, "Leader"), (2, 500, "Follower"), (3, 0, "Follower")])
    errors = qm.kafka_quorum_membership_plan(lagging, _controllers([1, 2, 3, 4, 5]), [], 100)["errors"]
    assert any("Voters 2 (lag 500)" in e for e in errors)
    stray = _describe([(1, 0, "Leader"), (2, 0, "Follower"), (3, 0, "Follower"), (9, 0, "Follower")])
    errors = qm.kafka_quorum_membership_plan(stray, _controllers([1, 2, 3]), [], 100)["errors"]
    assert any("Voters 9 are the kafka_node_id of no controller" in e for e in errors)
    leaderless = _describe([(1, 0, "Follower"), (2, 0, "Follower"), (3, 0, "Follower")])
    errors = qm.kafka_quorum_membership_plan(leaderless, _controllers([1, 2, 3]), [], 100)["errors"]
    assert any("no leader" in e for e in errors)


def test_a_lagging_voter_blocks_a_change_but_not_a_plan_without_one():
    lagging = _describe([(1, 0, "Leader"), (2, 500, "Follower"), (3, 0, "Follower")])
    plan = qm.kafka_quorum_membership_plan(lagging, _controllers([1, 2, 3]), [], 100)
    assert plan["errors"] == [] and plan["add"] == [] and plan["remove"] == []


def test_random_plans_never_leave_fewer_than_three_voters_or_touch_what_they_must_not():
    rng = random.Random(853)
    accepted = refused = 0
    for _ in range(4000):
        ids = rng.sample(range(1, 12), rng.randint(1, 8))
        voters = rng.sample(ids, rng.randint(1, len(ids)))
        leader = rng.choice(voters)
        rows = [(n, 0 if n == leader else rng.choice([0, 0, 0, 5, 150, 10**6]), "Leader" if n == leader else "Follower")
                for n in voters]
        rows += [(n, rng.choice([0, 2000]), "Observer") for n in ids if n not in voters and rng.random() < 0.5]
        combined = {n for n in ids if rng.random() < 0.1}
        inventory = _controllers(ids, combined)
        remove = [f"c{n}" for n in rng.sample(ids, rng.randint(0, len(ids)))]
        if rng.random() < 0.1:
            remove.append("c99")
        plan = qm.kafka_quorum_membership_plan(_describe(rows), inventory, remove, 100)
        if plan["errors"]:
            refused += 1
            continue
        accepted += 1
        add_ids = {int(h[1:]) for h in plan["add"]}
        rem_ids = {r["node_id"] for r in plan["remove"]}
        assert len(plan["final"]) >= 3
        assert len(plan["final"]) % 2 == 1 or not (add_ids or rem_ids)
        assert rem_ids <= set(voters) and not add_ids & set(voters) and not add_ids & rem_ids
        assert add_ids <= set(ids) and not (add_ids | rem_ids) & combined
        assert set(plan["final"]) == (set(voters) | add_ids) - rem_ids
        if add_ids or rem_ids:
            assert all(lag <= 100 for n, lag, s in rows if s == "Follower")
        assert "c99" not in remove
    assert accepted > 300 and refused > 300  # both sides of the rule were exercised


def test_voter_and_observer_checks():
    out = _describe([(1, 0, "Leader"), (2, 0, "Follower"), (4, 3, "Observer"), (5, 10**6, "Observer")])
    assert qm.kafka_quorum_has_voter(out, 2) and not qm.kafka_quorum_has_voter(out, 4)
    assert qm.kafka_quorum_has_voter(out, 1, f"DIR{1:019d}") and not qm.kafka_quorum_has_voter(out, 1, "other")
    assert qm.kafka_quorum_observer_caught_up(out, 4, 100) and not qm.kafka_quorum_observer_caught_up(out, 5, 100)
    assert not qm.kafka_quorum_observer_caught_up(out, 4, 2)
    no_leader = _describe([(1, 0, "Follower"), (4, 0, "Observer")])
    assert not qm.kafka_quorum_has_voter(no_leader, 1) and not qm.kafka_quorum_observer_caught_up(no_leader, 4, 100)
