"""A converge you can trust (issue 9): changes that cannot be lost, a gated version switch,
--limit, and preferred leaders restored after a roll.

Runs in the default scenario's verify step on the three combined hosts, after converge and
idempotence. Each test attacks one promise of README "Restarts" and would fail on a kit that
keeps the need to restart in Ansible's memory or flips the `current` link in the parallel play.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner
from confluent_kafka.admin import AdminClient, ConfigResource
from kit_clients import admin_config

# Each test here converges the cluster several times (about 15 minutes apiece on the 2-core
# build machine, measured 2026-12-02): CI's `make test` cannot hold them within its budget.
# `make test-default-full` (DEFAULT_FULL=1) runs them; `molecule test -s default` in make test
# runs the rest of the scenario.
pytestmark = pytest.mark.skipif(os.environ.get("DEFAULT_FULL") != "1",
                                reason="pending-restart tests: make test-default-full (DEFAULT_FULL=1)")

REPO = Path(__file__).resolve().parents[3]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
HOSTS = sorted(testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("kafka_broker"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
NODE_IDS = {"kk-molecule-1": 1, "kk-molecule-2": 2, "kk-molecule-3": 3}
DIST = REPO / ".cache" / "dist"
# The change every run of this module converges to (after test_default.py checked the defaults;
# test_rolling.py's converge returns to them): a server property; the broker's open files, which
# os_tuning's unit drop-in takes from the kafka role's kafka_service_limit_nofile; and a second
# data disk (JBOD), an empty log dir beside a formatted one, which must be formatted before the
# broker restarts with it.
CHANGE = {"kafka_server_properties": {"log.retention.hours": 101}, "kafka_service_limit_nofile": 100000,
          "kafka_data_dirs": ["/var/lib/kafka/data", "/var/lib/kafka/data-2"]}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _playbook(playbook: str, *extra: str) -> subprocess.CompletedProcess:
    # Molecule exports ANSIBLE_FORCE_COLOR for its own runs: plain text here, so the recap parses.
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LIBRARY=str(REPO / "plugins" / "modules"))
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", INVENTORY, str(REPO / playbook), *extra],
                            capture_output=True, text=True, env=env, timeout=1800)
    result.stdout = _ANSI.sub("", result.stdout)
    return result


def _tail(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-5000:] + result.stderr[-2000:]


def _recap(result: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                         result.stdout, re.MULTILINE):
        out[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                           "unreachable": int(m.group(4)), "failed": int(m.group(5))}
    return out


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host(f"podman://{name}", sudo=True) for name in HOSTS}


@pytest.fixture(scope="module")
def bootstrap(hosts) -> str:
    return ",".join(f"{h.interface('eth0').addresses[0]}:9092" for h in hosts.values())


def _started_at(hosts) -> dict[str, int]:
    """ActiveEnterTimestampMonotonic of each host's kafka.service (one kernel, one clock)."""
    return {name: int(h.check_output("systemctl show kafka -p ActiveEnterTimestampMonotonic --value"))
            for name, h in hosts.items()}


def _live(bootstrap: str, key: str) -> dict[str, str]:
    """The value each running broker uses for a static key (what it read when it started)."""
    admin = AdminClient({**admin_config(INVENTORY), "bootstrap.servers": bootstrap})
    out = {}
    for name in HOSTS:  # one broker resource per call (the Admin API's rule)
        res = ConfigResource("broker", str(NODE_IDS[name]))
        out[name] = admin.describe_configs([res])[res].result(60)[key].value
    return out


def _link(host) -> str:
    return host.check_output("readlink /opt/kafka/current")


def test_interrupted_roll_is_resumed_by_the_next_run(hosts, bootstrap):
    """A run whose roll fails after server.properties was written leaves every host pending,
    the one it restarted included; a check run reports the drift; the next run restarts them
    all and the brokers then run what the file says."""
    assert set(_live(bootstrap, "log.retention.hours").values()) != {"101"}
    # No JVM listens within 1 s of its restart: the first host restarts, its post-start gate
    # times out and the run stops there, with a message naming the host and what to do.
    failed = _playbook("molecule/default/converge.yml", "-e", json.dumps(dict(CHANGE, kafka_service_start_timeout=1)))
    assert failed.returncode != 0, _tail(failed)
    flat = " ".join(failed.stdout.split())
    assert re.search(r"kk-molecule-\d \(node \d\) did not listen on \S+ within kafka_service_start_timeout=1 s", flat), _tail(failed)
    assert "run the playbook again: the host is still pending" in flat
    for h in hosts.values():
        assert "log.retention.hours=101" in h.file("/etc/kafka/server.properties").content_string
        # One source: os_tuning's drop-in carries the kafka role's value.
        dropin = h.file("/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf").content_string
        assert "LimitNOFILE=100000" in dropin

    check = _playbook("molecule/default/converge.yml", "--check", "-e", json.dumps(CHANGE))
    assert check.returncode == 0, _tail(check)
    assert "3 host(s) run a configuration older than their files" in check.stdout, _tail(check)
    assert "/etc/kafka/server.properties changed" in check.stdout
    assert "/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf changed" in check.stdout

    before = _started_at(hosts)
    rerun = _playbook("molecule/default/converge.yml", "-e", json.dumps(CHANGE))
    assert rerun.returncode == 0, _tail(rerun)
    after = _started_at(hosts)
    assert all(after[n] > before[n] for n in HOSTS), "every pending host must be restarted"
    assert set(_live(bootstrap, "log.retention.hours").values()) == {"101"}
    for h in hosts.values():
        assert h.check_output("systemctl show -p LimitNOFILE --value kafka") == "100000"
        metas = [dict(line.split("=", 1) for line in h.file(f"{d}/meta.properties").content_string.splitlines()
                      if "=" in line and not line.startswith("#")) for d in CHANGE["kafka_data_dirs"]]
        assert metas[0]["cluster.id"] == metas[1]["cluster.id"] and metas[0]["node.id"] == metas[1]["node.id"]
        assert metas[0]["directory.id"] != metas[1]["directory.id"]

    # Nothing pending any more: a third run restarts nothing and reports no drift.
    again = _playbook("molecule/default/converge.yml", "-e", json.dumps(CHANGE))
    assert again.returncode == 0, _tail(again)
    assert "0 host(s) run a configuration older than their files" in again.stdout
    assert _started_at(hosts) == after
    assert all(c["changed"] == 0 for c in _recap(again).values()), _tail(again)


def test_version_switch_only_inside_the_gated_restart(hosts):
    """A new version is unpacked in the parallel play but the `current` link (what a crash
    restart, a reboot or `systemctl restart` starts) moves only in the host's gated restart."""
    archive = DIST / "kafka_2.13-4.3.1.tgz"
    if not archive.exists():
        pytest.fail(f"{archive} is missing: make deps builds it (tools/build-kafka-dist 4.3.1)")
    new = dict(CHANGE, kafka_version="4.3.1", kafka_archive_local_path=str(archive))
    # --check --diff of a version change runs through (nothing unpacked, nothing restarted).
    check = _playbook("molecule/default/converge.yml", "--check", "--diff", "-e", json.dumps(new))
    assert check.returncode == 0, _tail(check)
    assert "version kafka_2.13-4.4.0 -> kafka_2.13-4.3.1" in check.stdout, _tail(check)
    # The run is interrupted before the roll (the roll plays carry the tag `roll`).
    staged = _playbook("molecule/default/converge.yml", "--skip-tags", "roll", "-e", json.dumps(new))
    assert staged.returncode == 0, _tail(staged)
    name, h = next(iter(hosts.items()))
    for other in hosts.values():
        assert other.file("/opt/kafka/kafka_2.13-4.3.1/libs").is_directory
        assert _link(other) == "/opt/kafka/kafka_2.13-4.4.0"
    # A manual restart outside the kit starts the version the host ran, not the staged one.
    h.check_output("systemctl restart kafka")
    time.sleep(2)
    pid = h.check_output("systemctl show -p MainPID --value kafka")
    assert "/opt/kafka/current/libs" in h.file(f"/proc/{pid}/cmdline").content_string
    assert _link(h) == "/opt/kafka/kafka_2.13-4.4.0"
    # Back to the version the cluster runs (4.3.1 cannot read 4.4's finalized metadata): the
    # files return to what every host started with, so nothing is pending and nothing restarts.
    address = h.interface("eth0").addresses[0]
    h.run_expect([0], f"timeout 180 bash -c 'until (exec 3<>/dev/tcp/{address}/9092) 2>/dev/null; do sleep 1; done'")
    back = _playbook("molecule/default/converge.yml", "-e", json.dumps(CHANGE))
    assert back.returncode == 0, _tail(back)
    assert "0 host(s) run a configuration older than their files" in back.stdout, _tail(back)
    for other in hosts.values():
        assert _link(other) == "/opt/kafka/kafka_2.13-4.4.0"


def test_limit_and_preferred_leaders_after_a_roll(hosts, bootstrap):
    """site.yml and rolling_restart.yml with --limit HOST: the limited host's templates still see
    the whole cluster, only that host restarts, and afterwards every partition is led by its
    preferred replica again (the restart had moved the host's leaderships away)."""
    from confluent_kafka.admin import NewTopic

    target = HOSTS[1]
    props_before = {n: h.file("/etc/kafka/server.properties").content_string for n, h in hosts.items()}
    site = _playbook("site.yml", "--limit", target, "-e", json.dumps(CHANGE))
    assert site.returncode == 0, _tail(site)
    assert _recap(site)[target]["changed"] == 0, _tail(site)
    assert {n: h.file("/etc/kafka/server.properties").content_string for n, h in hosts.items()} == props_before

    admin = AdminClient({**admin_config(INVENTORY), "bootstrap.servers": bootstrap})
    topic = "leaders-after-roll"
    admin.create_topics([NewTopic(topic, 6, 3)])[topic].result(60)
    try:
        time.sleep(3)
        before = _started_at(hosts)
        roll = _playbook("playbooks/rolling_restart.yml", "--limit", target)
        assert roll.returncode == 0, _tail(roll)
        after = _started_at(hosts)
        assert [n for n in HOSTS if after[n] != before[n]] == [target]
        meta = admin.list_topics(topic, timeout=30).topics[topic]
        leaders = {p.id: p.leader for p in meta.partitions.values()}
        preferred = {p.id: p.replicas[0] for p in meta.partitions.values()}
        assert leaders == preferred
        assert NODE_IDS[target] in leaders.values()
    finally:
        admin.delete_topics([topic])[topic].result(60)
