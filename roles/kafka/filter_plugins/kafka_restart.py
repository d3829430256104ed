"""Filters of the kafka role's pending-restart record (tasks/restart_state.yml).

A record says which configuration a running service started with: the version and the sha1 of
each file it reads at start. Pure functions, imported directly by tests/unit/test_restart_state.py.
"""

from __future__ import annotations

import re
from typing import Any


def kafka_restart_record(stat_results: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """Record of the configuration on disk now, from a looped ``stat`` result list.

    A missing file is recorded as ``absent`` (so a deleted drop-in is a change too).
    """
    files: dict[str, str] = {}
    for result in stat_results:
        stat = result.get("stat") or {}
        files[str(result["item"])] = str(stat.get("checksum", "")) if stat.get("exists") else "absent"
    return {"version": str(version), "files": files}


def kafka_restart_reasons(now: dict[str, Any], was: dict[str, Any] | None) -> list[str]:
    """Why a service started with record ``was`` does not run the configuration ``now``.

    Empty when nothing differs. A missing or unreadable record is a reason of its own: the
    service may run anything, so a gated restart is the safe answer.
    """
    if not isinstance(was, dict) or not isinstance(was.get("files"), dict):
        return ["no record of the configuration the running service started with"]
    reasons: list[str] = []
    if was.get("version") != now["version"]:
        reasons.append(f"version {was.get('version')} -> {now['version']}")
    before: dict[str, str] = was["files"]
    for path in sorted(set(before) | set(now["files"])):
        old, new = before.get(path, "absent"), now["files"].get(path, "absent")
        if old != new:
            what = "added" if old == "absent" else "removed" if new == "absent" else "changed"
            reasons.append(f"{path} {what}")
    return reasons


_REPLICATION_ROW = re.compile(
    r"^\s*(\d+)\s+(\S+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(\S+)", re.MULTILINE)


def kafka_quorum_replication(stdout: str) -> list[dict[str, Any]]:
    """Rows of ``MetadataQuorumCommand describe --replication``.

    Each row: node_id, directory_id, log_end_offset, lag, last_fetch_ms, last_caught_up_ms,
    status (Leader, Follower, Observer).
    """
    rows = []
    for m in _REPLICATION_ROW.finditer(stdout or ""):
        rows.append({"node_id": int(m.group(1)), "directory_id": m.group(2),
                     "log_end_offset": int(m.group(3)), "lag": int(m.group(4)),
                     "last_fetch_ms": int(m.group(5)), "last_caught_up_ms": int(m.group(6)),
                     "status": m.group(7)})
    return rows


def kafka_voter_caught_up(stdout: str, node_id: Any, since_ms: Any, max_lag: Any) -> bool:
    """True when the quorum has a leader and voter ``node_id`` caught up after ``since_ms``.

    A small lag alone proves nothing after a restart (the row may still show the state from
    before it); the restarted voter's LastCaughtUpTimestamp later than its restart proves it
    fetched up to the leader's end since then. The leader's own row counts as caught up.
    """
    rows = kafka_quorum_replication(stdout)
    if not any(r["status"] == "Leader" for r in rows):
        return False
    mine = [r for r in rows if r["node_id"] == int(node_id) and r["status"] in ("Leader", "Follower")]
    if not mine:
        return False
    row = mine[0]
    if row["status"] == "Leader":
        return True
    return row["lag"] <= int(max_lag) and row["last_caught_up_ms"] >= int(since_ms)


_PARTITION_ROW = re.compile(
    r"Topic: (\S+)\s+Partition: (\d+)\s.*?Replicas: ([0-9,]*)\s+Isr: ([0-9,]*)")


def _ids(field: str) -> set[int]:
    return {int(x) for x in field.split(",") if x}


def kafka_partition_health(urp_stdout: str, at_min_stdout: str, node_id: Any) -> dict[str, list[str]]:
    """What a restart of node ``node_id`` must respect, from TopicCommand's describe output.

    ``urp_stdout`` is ``--describe --under-replicated-partitions``, ``at_min_stdout`` is
    ``--describe --at-min-isr-partitions``. Each item is "topic|partition|isr ids".

    - under_replicated: every under-replicated partition.
    - own_out_of_sync: those whose only replica out of the ISR is this node (its log dir went
      offline, a full disk, or it lags): restarting it cannot shrink their ISR, and is how they
      recover, so they do not block its restart.
    - blocking: the other under-replicated partitions.
    - at_min_isr_with_me: partitions at min.insync.replicas with this node in their ISR; stopping it
      would make them refuse acks=all writes.
    """
    me = int(node_id)
    urp, own, blocking = [], [], []
    for m in _PARTITION_ROW.finditer(urp_stdout or ""):
        topic, partition, replicas, isr = m.groups()
        item = f"{topic}|{partition}|{isr}"
        urp.append(item)
        (own if _ids(replicas) - _ids(isr) == {me} else blocking).append(item)
    at_min = [f"{t}|{p}|{isr}" for t, p, _, isr in _PARTITION_ROW.findall(at_min_stdout or "")
              if me in _ids(isr)]
    return {"under_replicated": urp, "own_out_of_sync": own, "blocking": blocking,
            "at_min_isr_with_me": at_min}


class FilterModule:
    """Restart-record filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "kafka_restart_record": kafka_restart_record,
            "kafka_restart_reasons": kafka_restart_reasons,
            "kafka_quorum_replication": kafka_quorum_replication,
            "kafka_voter_caught_up": kafka_voter_caught_up,
            "kafka_partition_health": kafka_partition_health,
        }
