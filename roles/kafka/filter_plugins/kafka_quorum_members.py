"""The plan of a change to a dynamic KRaft quorum's voters (playbooks/kraft_controllers.yml).

Controllers join and leave one at a time (KIP-853: an observer that caught up is added with
add-controller; a voter is removed with remove-controller, then stopped). The plan adds first and
removes after, so the quorum never has fewer voters than it started with while a change runs,
and it refuses, before any change, every step that would leave the quorum without a majority to
spare, or with an even number of voters (the kit's preflight refuses an even quorum). Pure functions, imported directly by tests/unit/test_quorum_members.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


# The role's own parser of `describe --replication`, loaded by path (Ansible loads filter
# plugins without a package).
_spec = importlib.util.spec_from_file_location("_kafka_kit_kafka_restart", Path(__file__).with_name("kafka_restart.py"))
assert _spec and _spec.loader
_restart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_restart)
kafka_quorum_replication = _restart.kafka_quorum_replication

# Fewer voters survive no failure: 2 voters need both, 1 is a single point of failure.
MIN_VOTERS = 3


def kafka_quorum_membership_plan(replication: str, controllers: list[dict[str, Any]], remove: list[str],
                                 max_lag: Any) -> dict[str, Any]:
    """Plan the voters' change from ``describe --replication`` and the inventory.

    ``controllers``: one dict per host of the controller group: host, node_id, broker (also in the
    broker group). ``remove``: inventory names to take out of the quorum. Returns ``add`` (hosts
    that are not voters yet, in inventory order), ``remove`` (dicts host, node_id, directory_id of
    voters to remove), ``voters`` (node ids now), ``final`` (node ids after) and ``errors`` (each
    a sentence naming the input and the fix; the plan is only applied when there is none).
    """
    rows = kafka_quorum_replication(replication)
    voters = {r["node_id"]: r for r in rows if r["status"] in ("Leader", "Follower")}
    observers = {r["node_id"]: r for r in rows if r["status"] == "Observer"}
    by_host = {c["host"]: c for c in controllers}
    by_id = {int(c["node_id"]): c for c in controllers}
    errors: list[str] = []

    if not any(r["status"] == "Leader" for r in rows):
        errors.append("The quorum has no leader (describe --replication answered: "
                      f"{replication.strip()[:300]!r}): wait until the controllers elect one, then run again.")
    unknown = [h for h in remove if h not in by_host]
    if unknown:
        errors.append(f"kafka_kraft_controllers_remove names {', '.join(unknown)}, which "
                      f"{'is' if len(unknown) == 1 else 'are'} not in the controller group "
                      f"({', '.join(by_host) or 'empty'}): name inventory hosts of kafka_controller.")
    strays = sorted(set(voters) - set(by_id))
    if strays:
        errors.append(f"Voters {', '.join(map(str, strays))} are the kafka_node_id of no controller in the "
                      "inventory: put their hosts back into kafka_controller (and into "
                      "kafka_kraft_controllers_remove to take them out), so that the kit plans with every voter.")

    add = [c["host"] for c in controllers if int(c["node_id"]) not in voters and c["host"] not in remove]
    leaving = [c for c in controllers if c["host"] in remove and int(c["node_id"]) in voters]
    combined = [c["host"] for c in controllers if c.get("broker") and (c["host"] in add or c in leaving)]
    if combined:
        errors.append(f"{', '.join(combined)} run a broker too (in kafka_broker): the kit adds and removes "
                      "dedicated controllers only. Drain the broker first (playbooks/drain.yml) or use a "
                      "host of its own as the new controller.")

    final = sorted((set(voters) | {int(by_host[h]["node_id"]) for h in add})
                   - {int(c["node_id"]) for c in leaving})
    if voters and len(final) < MIN_VOTERS:
        errors.append(f"After the change the quorum would have {len(final)} voter(s) ({', '.join(map(str, final)) or 'none'}): "
                      f"fewer than {MIN_VOTERS} survive no failure. Add controllers before removing these, "
                      "or remove fewer.")
    elif voters and (add or leaving) and len(final) % 2 == 0:
        errors.append(f"After the change the quorum would have {len(final)} voters ({', '.join(map(str, final))}): the "
                      "kit runs an odd number of controllers (preflight refuses an even one, which survives no more "
                      "failures than one fewer). Add or remove controllers in pairs.")
    if (add or leaving) and voters:
        lagging = {i: r["lag"] for i, r in voters.items() if r["status"] == "Follower" and r["lag"] > int(max_lag)}
        if lagging:
            errors.append("Voters " + ", ".join(f"{i} (lag {lag})" for i, lag in sorted(lagging.items()))
                          + f" lag behind the leader by more than kafka_roll_max_follower_lag={int(max_lag)}: "
                          "a change of the voters now could leave the quorum without a majority. "
                          "Wait until they caught up (describe --replication), then run again.")
    return {
        "add": add,
        "remove": [{"host": c["host"], "node_id": int(c["node_id"]),
                    "directory_id": voters[int(c["node_id"])]["directory_id"]} for c in leaving],
        "removed": [h for h in remove if h in by_host and int(by_host[h]["node_id"]) not in voters],
        "observers": sorted(observers),
        "voters": sorted(voters),
        "final": final,
        "errors": errors,
    }


def kafka_quorum_has_voter(replication: str, node_id: Any, directory_id: str | None = None) -> bool:
    """True when ``node_id`` (with ``directory_id`` when given) is a voter and the quorum has a leader."""
    rows = kafka_quorum_replication(replication)
    if not any(r["status"] == "Leader" for r in rows):
        return False
    return any(r["node_id"] == int(node_id) and r["status"] in ("Leader", "Follower")
               and (directory_id is None or r["directory_id"] == directory_id) for r in rows)


def kafka_quorum_observer_caught_up(replication: str, node_id: Any, max_lag: Any) -> bool:
    """True when ``node_id`` fetches as an observer (or already votes) within ``max_lag`` of the leader."""
    rows = kafka_quorum_replication(replication)
    if not any(r["status"] == "Leader" for r in rows):
        return False
    return any(r["node_id"] == int(node_id) and r["lag"] <= int(max_lag) and r["last_caught_up_ms"] > 0
               for r in rows)


class FilterModule:
    """Dynamic quorum membership filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "kafka_quorum_membership_plan": kafka_quorum_membership_plan,
            "kafka_quorum_has_voter": kafka_quorum_has_voter,
            "kafka_quorum_observer_caught_up": kafka_quorum_observer_caught_up,
        }
