"""ZooKeeper restarts (issue 9): a change that cannot be lost, and the leader restarted last.

A run of playbooks/zookeeper.yml interrupted before its roll (the roll plays carry the tag
`roll`) leaves every member pending; the next run restarts each member once, one at a time,
followers first and the member that led the ensemble last, and afterwards nothing is pending.

ZooKeeper's election prefers the highest myid, so the last member of the inventory usually
leads, and a roll in inventory order would put it last by chance (a broken leader detection
passed this test that way until 2026-12-07). The test first moves the leadership off the last
member, so only a roll that really finds the leader restarts it last.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import testinfra
import testinfra.utils.ansible_runner

REPO = Path(__file__).resolve().parents[3]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
MEMBERS = sorted(testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("zookeeper"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def _playbook(*extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LIBRARY=str(REPO / "plugins" / "modules"))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", INVENTORY, str(REPO / "playbooks" / "zookeeper.yml"), *extra],
                          capture_output=True, text=True, env=env, timeout=1200)


def _mode(host) -> str:
    # The client port listens on the member's ensemble address only (clientPortAddress).
    address = host.interface("eth0").addresses[0]
    out = host.check_output(f"bash -c 'exec 3<>/dev/tcp/{address}/2181; printf srvr >&3; cat <&3'")
    return re.search(r"Mode: (\w+)", out).group(1)


def _started(hosts) -> dict[str, int]:
    return {n: int(h.check_output("systemctl show zookeeper -p ActiveEnterTimestampMonotonic --value"))
            for n, h in hosts.items()}


def _leader(hosts) -> str | None:
    leaders = [n for n, h in hosts.items() if _mode(h) == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def _leadership_off_the_last_member(hosts) -> str:
    """Restart the last member while it leads, until another one leads; the leader then."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            leader = _leader(hosts)
        except Exception:  # a member restarting does not answer yet
            leader = None
        if leader is not None and leader != MEMBERS[-1] and all(
                _mode(h) in ("leader", "follower") for h in hosts.values()):
            return leader
        if leader == MEMBERS[-1]:
            hosts[leader].run("systemctl restart zookeeper")
        time.sleep(3)
    raise AssertionError(f"the leadership did not move off {MEMBERS[-1]} within 180 s")


def test_interrupted_change_rolls_followers_first_and_the_leader_last():
    hosts = {n: testinfra.get_host(f"podman://{n}", sudo=True) for n in MEMBERS}
    _leadership_off_the_last_member(hosts)
    # A value no member runs yet (a rerun of the scenario's verify finds the last one in place).
    now = re.search(r"^maxClientCnxns=(\d+)$", hosts[MEMBERS[0]].file("/etc/zookeeper/zoo.cfg").content_string, re.M)
    value = (int(now.group(1)) if now else 60) + 1
    change = json.dumps({"zookeeper_properties": {"maxClientCnxns": value}})
    staged = _playbook("--skip-tags", "roll", "-e", change)
    assert staged.returncode == 0, staged.stdout[-4000:]
    before = _started(hosts)
    for h in hosts.values():
        assert f"maxClientCnxns={value}" in h.file("/etc/zookeeper/zoo.cfg").content_string

    # The leader when the roll is planned, read right before it (the staged run restarts
    # nothing, so the leader found above normally still leads).
    leader = next(n for n, h in hosts.items() if _mode(h) == "leader")
    assert leader != MEMBERS[-1], "the leadership went back to the last member before the roll"
    rolled = _playbook("-e", change)
    assert rolled.returncode == 0, rolled.stdout[-4000:]
    flat = " ".join(rolled.stdout.split())
    assert "3 ZooKeeper member(s) run a configuration older than their files" in flat, rolled.stdout[-4000:]
    assert f"then the leader {leader}." in flat, rolled.stdout[-4000:]
    after = _started(hosts)
    assert all(after[n] > before[n] for n in MEMBERS), "every pending member restarts"
    order = sorted(MEMBERS, key=lambda n: after[n])
    assert order[-1] == leader, f"the leader {leader} must restart last: {order}"

    again = _playbook("-e", change)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "0 ZooKeeper member(s) run a configuration older than their files" in " ".join(again.stdout.split())
    assert _started(hosts) == after
