"""Rack-aware partition reassignment plans (playbooks/rebalance.yml, playbooks/drain.yml).

Pure functions, imported directly by tests/unit/test_reassign_plan.py. A plan moves replicas onto
brokers that hold too few (scale-out) and off brokers that are drained, and nothing else:

- every partition keeps its replication factor, on distinct brokers, none of them drained;
- each partition's replicas span min(replication factor, racks of the remaining brokers) racks
  (a partition below that spread is fixed, one at or above it never drops below);
- replica counts per broker end as even as these rules allow: a move goes from a broker that
  holds at least two replicas more than its destination (or from a drained broker), so each move
  strictly evens the load and the planning ends; a partition is changed only by such moves;
- a replacement takes the place of the replica it replaces in the list (the preferred leader is
  the first replica: a new broker that takes a first place becomes that partition's leader);
- the result depends only on the input's content, not its order (ties: lowest broker id,
  then topic name and partition number).

Kafka's own ``--generate`` is not rack-aware by intent (KAFKA4-OPS.md); this is the kit's plan.
"""

from __future__ import annotations

import re
from typing import Any

_DESCRIBE_ROW = re.compile(r"Topic:\s*(\S+)\s+Partition:\s*(\d+)\s.*?Replicas:\s*([0-9,]+)")


def kafka_topic_assignment(stdout: str) -> list[dict[str, Any]]:
    """Partitions and replicas from ``TopicCommand --describe`` output, sorted."""
    rows = [{"topic": m.group(1), "partition": int(m.group(2)),
             "replicas": [int(r) for r in m.group(3).split(",") if r]}
            for m in _DESCRIBE_ROW.finditer(stdout or "")]
    return sorted(rows, key=lambda r: (r["topic"], r["partition"]))


def _spread(replicas: list[int], racks: dict[int, str]) -> int:
    return len({racks[b] for b in replicas})


def _load(assignment: list[dict[str, Any]], brokers: list[int]) -> dict[int, int]:
    load = {b: 0 for b in brokers}
    for part in assignment:
        for b in part["replicas"]:
            load[b] = load.get(b, 0) + 1
    return load


def kafka_reassign_problems(assignment: list[dict[str, Any]], brokers: list[int],
                            racks: dict[Any, Any] | None = None,
                            drain: list[int] | None = None) -> list[str]:
    """Why no plan can hold every partition's replication factor and rack spread, empty when one can.

    ``brokers``: every broker id of the cluster (those drained included); ``racks``: broker id ->
    rack ('' or missing: no rack); ``drain``: ids to empty.
    """
    drained = {int(b) for b in drain or []}
    known = {int(b) for b in brokers}
    keep = sorted(known - drained)
    problems = [f"drained broker {b} is not a broker of the cluster ({sorted(known)})"
                for b in sorted(drained - known)]
    rack_of = {int(k): str(v or "") for k, v in (racks or {}).items()}
    if rack_of and any(rack_of.get(b, "") == "" for b in known):
        problems.append("racks are set on some brokers but not on "
                        + ", ".join(str(b) for b in sorted(known) if rack_of.get(b, "") == ""))
    rf_max = max((len(p["replicas"]) for p in assignment), default=0)
    if rf_max > len(keep):
        worst = sorted({p["topic"] for p in assignment if len(p["replicas"]) > len(keep)})
        problems.append(f"replication factor {rf_max} (topics {', '.join(worst)}) needs {rf_max} brokers, "
                        f"{len(keep)} would remain ({keep})")
    racks_before = {rack_of.get(b, "") for b in known}
    racks_after = {rack_of.get(b, "") for b in keep}
    if rack_of and rf_max and min(rf_max, len(racks_after)) < min(rf_max, len(racks_before)):
        problems.append(f"draining {sorted(drained)} leaves racks {sorted(racks_after)}: partitions of "
                        f"replication factor {rf_max} would span {len(racks_after)} racks instead of "
                        f"{min(rf_max, len(racks_before))}")
    for part in assignment:
        unknown = sorted(set(part["replicas"]) - known)
        if unknown:
            problems.append(f"{part['topic']}-{part['partition']} has replicas on {unknown}, "
                            f"not in the broker list {sorted(known)}")
    return problems


def kafka_reassign_plan(assignment: list[dict[str, Any]], brokers: list[int],
                        racks: dict[Any, Any] | None = None,
                        drain: list[int] | None = None) -> list[dict[str, Any]]:
    """The partitions to reassign, each ``{topic, partition, replicas}`` (the new list), sorted.

    Raises ValueError with every problem of kafka_reassign_problems() when no plan can hold the
    rules. An empty list: the assignment already holds them.
    """
    problems = kafka_reassign_problems(assignment, brokers, racks, drain)
    if problems:
        raise ValueError("; ".join(problems))
    drained = {int(b) for b in drain or []}
    keep = sorted({int(b) for b in brokers} - drained)
    given = {int(k): str(v or "") for k, v in (racks or {}).items()}
    # No racks: each broker counts as its own rack (replicas are on distinct brokers anyway, so
    # the spread rule then asks nothing more).
    rack_of = {b: given.get(b, "") if given else str(b) for b in keep + sorted(drained)}
    n_racks = len({rack_of[b] for b in keep})
    parts = sorted(({"topic": p["topic"], "partition": int(p["partition"]),
                     "replicas": [int(r) for r in p["replicas"]]} for p in assignment),
                   key=lambda p: (p["topic"], p["partition"]))
    original = {(p["topic"], p["partition"]): list(p["replicas"]) for p in parts}
    load = _load(parts, keep)

    # 1. Replicas that must move: on a drained broker, or a partition below its rack spread.
    for part in parts:
        need = min(len(part["replicas"]), n_racks)
        for i, old in enumerate(list(part["replicas"])):
            rest = [b for b in part["replicas"] if b != old]
            crowded = (_spread(part["replicas"], rack_of) < need
                       and any(rack_of[b] == rack_of[old] for b in rest)
                       and old == max(b for b in part["replicas"] if rack_of[b] == rack_of[old]))
            if old not in drained and not crowded:
                continue
            options = [b for b in keep if b not in part["replicas"]]
            if not options:
                raise ValueError(f"{part['topic']}-{part['partition']}: no broker can take the replica on {old}")
            # The spread first (a rule), then the least loaded broker, then the lowest id.
            new = min(options, key=lambda b: (-min(_spread(rest + [b], rack_of), need), load[b], b))
            part["replicas"][i] = new
            load[new] += 1
            if old in load:
                load[old] -= 1

    # 2. Even the load: from the most loaded broker to the least loaded one that can take a
    # replica, only while the gap is at least two (each move lowers the sum of squares).
    while True:
        moved = False
        for src in sorted(keep, key=lambda b: (-load[b], b)):
            for dst in sorted(keep, key=lambda b: (load[b], b)):
                if load[src] - load[dst] < 2:
                    break
                for part in parts:
                    if src not in part["replicas"] or dst in part["replicas"]:
                        continue
                    need = min(len(part["replicas"]), n_racks)
                    after = [dst if b == src else b for b in part["replicas"]]
                    if _spread(after, rack_of) >= min(need, _spread(part["replicas"], rack_of)):
                        part["replicas"] = after
                        load[src] -= 1
                        load[dst] += 1
                        moved = True
                        break
                if moved:
                    break
            if moved:
                break
        if not moved:
            break

    return [p for p in parts if p["replicas"] != original[(p["topic"], p["partition"])]]


def kafka_reassign_json(plan: list[dict[str, Any]]) -> dict[str, Any]:
    """The plan as ReassignPartitionsCommand's --reassignment-json-file document."""
    return {"version": 1, "partitions": [
        {"topic": p["topic"], "partition": p["partition"], "replicas": p["replicas"],
         "log_dirs": ["any"] * len(p["replicas"])} for p in plan]}


def kafka_reassign_moves(plan: list[dict[str, Any]], assignment: list[dict[str, Any]]) -> list[str]:
    """One line per changed partition, ``topic-p: 1,2,3 -> 1,2,4`` (what check mode prints)."""
    before = {(p["topic"], int(p["partition"])): p["replicas"] for p in assignment}
    return [f"{p['topic']}-{p['partition']}: {','.join(map(str, before[(p['topic'], p['partition'])]))}"
            f" -> {','.join(map(str, p['replicas']))}" for p in plan]


def kafka_replicas_on(assignment: list[dict[str, Any]], brokers: list[int]) -> list[dict[str, Any]]:
    """The partitions with a replica on one of ``brokers`` (what a drain must leave empty)."""
    ids = {int(b) for b in brokers}
    return [p for p in assignment if ids & {int(r) for r in p["replicas"]}]


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kafka_topic_assignment": kafka_topic_assignment,
            "kafka_reassign_problems": kafka_reassign_problems,
            "kafka_reassign_plan": kafka_reassign_plan,
            "kafka_reassign_json": kafka_reassign_json,
            "kafka_reassign_moves": kafka_reassign_moves,
            "kafka_replicas_on": kafka_replicas_on,
        }
