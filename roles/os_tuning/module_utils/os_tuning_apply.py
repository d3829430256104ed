# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a tuning plan, and print it as a drift report. Never prints or exits itself."""
from __future__ import annotations

import errno
import json
import os
import re
from typing import Any, Dict, List, Tuple

try:
    from ansible.module_utils.os_tuning_sysfs import Host
    from ansible.module_utils.os_tuning_plan import STATE_FILE, Item, build_plan, load_state
except ImportError:  # installed on a host as plain modules, or imported by the unit tests
    from os_tuning_sysfs import Host  # type: ignore[no-redef]
    from os_tuning_plan import STATE_FILE, Item, build_plan, load_state  # type: ignore[no-redef]

FIRST = ("rings", "channels")  # change the IRQ set, so the rest is planned again after them


def add_noatime(fstab: str, point: str) -> Tuple[str, bool]:
    """Add noatime to the options of `point` in fstab text (dropping relatime/strictatime)."""
    lines, found = [], False
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) >= 4 and not line.lstrip().startswith("#") and fields[1] == point:
            opts = [o for o in fields[3].split(",") if o not in ("relatime", "strictatime", "atime",
                                                                  "defaults")] or []
            fields[3] = ",".join((["defaults"] if "defaults" in fields[3].split(",") else [])
                                 + opts + ["noatime"])
            line, found = "\t".join(fields), True
        lines.append(line)
    return "\n".join(lines) + "\n", found


def _do(host: Host, entry: Item) -> Tuple[str, str]:
    """Carry out one item: ('applied'|'refused'|'failed', reason)."""
    action = entry["action"] or {}
    try:
        if "fstab" in action:
            text, found = add_noatime(host.read("etc/fstab", "") or "", action["fstab"])
            if not found:
                return "failed", "%s has no /etc/fstab entry" % action["fstab"]
            host.write("etc/fstab", text)
        if "run" in action:
            rc, _out, err = host.runner(action["run"])
            if rc != 0:
                return "failed", "%s: rc %d %s" % (" ".join(action["run"]), rc, err.strip())
        writes = [[action["write"], action["value"]]] if "write" in action else action.get("writes", [])
        for path, value in writes:
            if path.startswith("run/"):
                os.makedirs(os.path.dirname(host.path(path)), exist_ok=True)
            host.write(path, value)
    except OSError as exc:
        if exc.errno == errno.EIO and entry["kind"] == "irq":
            return "refused", "kernel-managed IRQ: affinity write refused (EIO)"
        return "failed", "%s: %s" % (exc.__class__.__name__, exc.strerror or exc)
    if "write" in action and entry["kind"] not in ("irqbalance",):
        shown = host.read(action["write"]) or ""
        if entry["kind"] in ("sysctl", "rfs") and shown.split() != str(action["value"]).split():
            return "failed", "kernel shows %r after writing %r" % (shown, action["value"])
    return "applied", ""


def _save_refused(host: Host, refused: List[int]) -> None:
    state = load_state(host)
    known = sorted(set(int(i) for i in state.get("refused_irqs", [])) | set(refused))
    if known == state.get("refused_irqs"):
        return
    state["refused_irqs"] = known
    try:
        os.makedirs(os.path.dirname(host.path(STATE_FILE)), exist_ok=True)
        host.write(STATE_FILE, json.dumps(state, sort_keys=True) + "\n")
    except OSError:
        pass  # the state only saves a retry; a read-only /run is not worth failing for


def apply_plan(host: Host, config: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """Plan, then apply every item in state 'change' (none in check mode).

    Returns {'changed', 'items', 'applied', 'not_applied', 'refused_irqs'}; items in state
    'blocked' or 'failed' are listed in not_applied with the reason, they never raise.
    """
    items = build_plan(host, config)
    applied: List[Item] = []
    not_applied: List[Item] = []
    refused: List[int] = []
    if check_mode:
        return {"changed": any(i["state"] == "change" for i in items), "items": items,
                "applied": [i for i in items if i["state"] == "change"],
                "not_applied": [i for i in items if i["state"] == "blocked"], "refused_irqs": []}
    for phase in ("first", "rest"):
        if phase == "rest" and any(i["kind"] == "channels" for i in applied):
            items = [i for i in items if i["kind"] in FIRST] + [
                i for i in build_plan(host, config) if i["kind"] not in FIRST]
        for entry in items:
            if (entry["kind"] in FIRST) != (phase == "first"):
                continue
            if entry["state"] == "blocked":
                not_applied.append(entry)
            if entry["state"] != "change":
                continue
            outcome, reason = _do(host, entry)
            if outcome == "applied":
                entry["state"] = "applied"
                applied.append(entry)
                continue
            entry.update(state="skip" if outcome == "refused" else "failed", reason=reason)
            if outcome == "refused":
                refused.append(int(entry["target"].split()[0]))
            not_applied.append(entry)
    if refused:
        _save_refused(host, refused)
    return {"changed": bool(applied), "items": items, "applied": applied,
            "not_applied": not_applied, "refused_irqs": refused}


def diff_text(items: List[Item]) -> Dict[str, str]:
    """Ansible diff of the items that change: 'kind target = value' lines before and after."""
    changing = [i for i in items if i["state"] in ("change", "applied")]
    before = "".join("%s %s = %s\n" % (i["kind"], i["target"], i["current"]) for i in changing)
    after = "".join("%s %s = %s\n" % (i["kind"], i["target"], i["desired"]) for i in changing)
    return {"before": before, "after": after}


def report(items: List[Item], drift_only: bool = False) -> str:
    """A table: STATE KIND TARGET CURRENT DESIRED NOTE; 'change'/'blocked' rows are drift."""
    rows = [("STATE", "KIND", "TARGET", "CURRENT", "DESIRED", "NOTE")]
    for i in items:
        if drift_only and i["state"] not in ("change", "blocked", "failed"):
            continue
        rows.append((i["state"], i["kind"], i["target"], _short(i["current"]),
                     _short(i["desired"]), i["reason"]))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines = ["  ".join(r[c].ljust(widths[c]) for c in range(5)) + "  " + r[5] for r in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _short(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 40 else text[:37] + "..."
