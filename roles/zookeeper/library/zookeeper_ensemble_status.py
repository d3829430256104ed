#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: ask every ZooKeeper member `srvr` and judge the ensemble (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: zookeeper_ensemble_status
short_description: Health of a ZooKeeper ensemble through the srvr four-letter word
description:
  - Connects to every member's client port, sends C(srvr) and parses the answer (mode, zxid,
    node count). Never changes anything; runs the same in check mode.
  - The ensemble is healthy when every member answers as leader, follower or observer and
    exactly one leads (or a single member answers standalone).
options:
  servers:
    description: The members as C(host:port).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait for each member's answer.
    type: float
    default: 3.0
author: kafka-kit contributors
"""

EXAMPLES = r"""
- name: Wait until every member answers and one leads
  zookeeper_ensemble_status:
    servers: [10.0.0.1:2181, 10.0.0.2:2181, 10.0.0.3:2181]
  register: zookeeper_ensemble
  until: zookeeper_ensemble.healthy
  retries: 30
  delay: 4
"""

RETURN = r"""
members:
  description: One entry per server (server, answered, mode, zxid, node_count, error).
  type: list
  returned: always
leaders:
  description: Number of members that answered Mode leader (or standalone).
  type: int
  returned: always
healthy:
  description: Every member serves and exactly one leads.
  type: bool
  returned: always
summary:
  description: One line per member, for messages.
  type: str
  returned: always
"""

import socket
from typing import Any

SERVING_MODES = ("leader", "follower", "observer", "standalone")


def parse_srvr(text: str) -> dict[str, Any]:
    """Fields of a `srvr` answer: mode, zxid (int), node_count; mode None when not serving."""
    out: dict[str, Any] = {"mode": None, "zxid": None, "node_count": None}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "mode":
            out["mode"] = value.lower()
        elif key == "zxid":
            out["zxid"] = int(value, 16) if value.startswith("0x") else int(value)
        elif key == "node count":
            out["node_count"] = int(value)
    return out


def ask(server: str, command: str = "srvr", timeout: float = 3.0) -> str:
    """Send a four-letter word to host:port and return the whole answer."""
    host, _, port = server.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(command.encode("ascii"))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def judge(members: list[dict[str, Any]]) -> dict[str, Any]:
    """healthy and leaders of a list of parsed members (pure; unit-tested)."""
    leaders = sum(1 for m in members if m.get("mode") in ("leader", "standalone"))
    serving = all(m.get("mode") in SERVING_MODES for m in members)
    summary = "; ".join(f"{m['server']}: {m.get('mode') or m.get('error') or 'not serving'}" for m in members)
    return {"leaders": leaders, "healthy": bool(members) and serving and leaders == 1, "summary": summary}


def status(servers: list[str], timeout: float = 3.0) -> dict[str, Any]:
    members = []
    for server in servers:
        entry: dict[str, Any] = {"server": server, "answered": False, "error": None}
        try:
            text = ask(server, "srvr", timeout)
            entry.update(parse_srvr(text), answered=True)
            if entry["mode"] is None:
                entry["error"] = text.strip()[:200] or "empty answer (srvr not whitelisted?)"
        except (OSError, ValueError) as exc:
            entry.update(mode=None, zxid=None, node_count=None, error=str(exc))
        members.append(entry)
    return {"members": members, **judge(members)}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"servers": {"type": "list", "elements": "str", "required": True},
                       "timeout": {"type": "float", "default": 3.0}},
        supports_check_mode=True)
    module.exit_json(changed=False, **status(module.params["servers"], module.params["timeout"]))


if __name__ == "__main__":
    main()
