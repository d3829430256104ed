"""Every task that fetches from the network (a package mirror, Maven Central) retries.

A converge of the cluster scenario in CI failed once in its converge with no change to the roles
(stop 29); a mirror or Maven Central dropping one connection must not fail a deploy of ten hosts.
This walks every task file of the roles and playbooks, blocks included, and fails on a fetching
task that has no `until` on its own registered result.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FETCHING = {
    "ansible.builtin.apt", "apt",
    "ansible.builtin.dnf", "dnf",
    "ansible.builtin.get_url", "get_url",
    "ansible.builtin.pip", "pip",
}


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if "tasks" in node or "pre_tasks" in node or "post_tasks" in node:  # a play
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from _tasks(node.get(key) or [])
            return
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key) or [])


def _files():
    files = sorted(REPO.glob("roles/*/tasks/*.yml")) + sorted(REPO.glob("roles/*/handlers/*.yml"))
    files += sorted(REPO.glob("playbooks/*.yml")) + [REPO / "site.yml"]
    return files


def _fetching_tasks():
    found = []
    for path in _files():
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            module = next((m for m in FETCHING if m in task), None)
            if module is None:
                continue
            args = task[module] if isinstance(task[module], dict) else {}
            # An apt task that only updates the cache or removes packages fetches nothing to keep.
            if module.endswith("apt") and "name" not in args and "deb" not in args:
                continue
            found.append((path.relative_to(REPO), task.get("name"), task))
    return found


def test_the_walk_finds_the_fetching_tasks():
    # If the walk found nothing, the test below would pass on any tree.
    names = {str(p) for p, _, _ in _fetching_tasks()}
    assert {"roles/java/tasks/main.yml", "roles/kafka/tasks/jmx_exporter.yml",
            "roles/monitoring/tasks/node_exporter.yml"} <= names


@pytest.mark.parametrize("path,name,task", _fetching_tasks(),
                         ids=lambda v: str(v) if isinstance(v, (Path, str)) else "")
def test_a_fetching_task_retries(path, name, task):
    reg = task.get("register")
    assert reg, f"{path}: task {name!r} fetches from the network without register/until/retries"
    assert f"{reg} is succeeded" in str(task.get("until", "")), (
        f"{path}: task {name!r} must retry with `until: {reg} is succeeded`")
    assert int(task.get("retries", 0)) >= 3 and int(task.get("delay", 0)) >= 5, (
        f"{path}: task {name!r} retries fewer than 3 times or without a delay of 5 s")
