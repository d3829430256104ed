"""Filters of the os_tuning role's link plan (tasks/link_plan.yml).

Changing a NIC's rings (ethtool -G) or channels (ethtool -L) resets its link for a moment;
playbooks/os_tuning.yml tunes a host whose plan has such a change, while Kafka runs on it, one
at a time. Pure functions, imported directly by tests/os_tuning/test_link_plan.py.
"""

from __future__ import annotations

from typing import Any

LINK_RESETTING_KINDS = ("rings", "channels")


def os_tuning_link_changes(items: list[dict[str, Any]] | None) -> list[str]:
    """The plan items that reset a link, as "rings eth1: 512 -> 4096" (the apply report's form).

    Only items the host would apply (state "change"): a blocked, skipped or already-tuned item
    resets nothing.
    """
    return ["%s %s: %s -> %s" % (i["kind"], i["target"], i.get("current"), i.get("desired"))
            for i in items or []
            if i.get("kind") in LINK_RESETTING_KINDS and i.get("state") == "change"]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"os_tuning_link_changes": os_tuning_link_changes}
