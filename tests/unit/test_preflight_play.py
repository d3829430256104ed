"""playbooks/preflight.yml end to end on a real host: this machine, three inventory hosts over
the local connection (one Kafka "cluster" on distinct ports). The read-only probes of
roles/kafka/tasks/preflight.yml run for real: facts (the host's own addresses, its memory),
`ss -Hltn` (a socket this test opens is the "other process"), getent, the zookeeper role's
default heap read from its defaults file, and the inventory-wide check on localhost. Nothing is
written on the machine: the Kafka unit name is one no host has, the log dirs are empty temp dirs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
FOREIGN = "203.0.113.7"  # TEST-NET-3: an address no host of this machine has


def _memtotal_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal")


def _own_address() -> str:
    """An IPv4 address of this machine (the listener address of the test hosts)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout.split()
    return next((w.split("/")[0] for a, w in zip(out, out[1:]) if a == "inet"), "127.0.0.1")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port another process (this test) listens on, on all interfaces."""
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def inventory(tmp: Path, node1_port: int, **host_extra: dict[str, Any]) -> dict[str, Any]:
    names = ["pf-node1", "pf-node2", "pf-node3"]
    hosts: dict[str, Any] = {}
    for i, name in enumerate(names, 1):
        (tmp / name).mkdir(exist_ok=True)
        hosts[name] = {"kafka_node_id": i, "kafka_rack": "rack-" + "aba"[i - 1],
                       "kafka_data_dirs": [str(tmp / name)],
                       "kafka_broker_port": node1_port if i == 1 else _free_port(),
                       "kafka_controller_port": _free_port()}
        hosts[name].update(host_extra.get(name, {}))
    return {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "kafka_service_name": "kk-preflight-test-no-such-unit",
                 "kafka_heap_size": "256m", "kafka_listener_address": _own_address()},
        "hosts": hosts,
        "children": {"kafka_controller": {"hosts": dict.fromkeys(names)},
                     "kafka_broker": {"hosts": dict.fromkeys(names)},
                     "zookeeper": {"hosts": {"pf-node3": None}}}}}


def run(tmp: Path, inv: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "hosts.yml"),
                           str(REPO / "playbooks/preflight.yml"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def flat(text: str) -> str:
    """The output with YAML's line folding undone, so messages can be matched whole."""
    return " ".join(text.split())


def test_preflight_play_refuses_what_the_probes_find(tmp_path: Path, busy_port: int) -> None:
    heap_mb = _memtotal_mb() // 2 - 256  # below half alone, not with ZooKeeper's 512m default
    inv = inventory(tmp_path, busy_port,
                    **{"pf-node2": {"kafka_listener_address": FOREIGN},
                       "pf-node3": {"kafka_heap_size": f"{heap_mb}m"}})
    r = run(tmp_path, inv)
    out = flat(r.stdout)
    assert r.returncode != 0, out[-3000:]
    assert "Preflight found 4 problem(s); nothing was changed:" in out, out[-4000:]
    assert (f"pf-node1: kafka_broker_port={busy_port} but another process already listens on "
            f"port {busy_port}") in out
    assert f"pf-node2: kafka_listener_address={FOREIGN} is not an address of this host" in out
    assert "the brokers span 2 rack(s) (rack-a, rack-b) but default.replication.factor=3" in out
    # zookeeper_heap_size is not in the inventory: the zookeeper role's default is used.
    assert (f"pf-node3: runs ZooKeeper and Kafka, and kafka_heap_size={heap_mb}m plus "
            "zookeeper_heap_size=512m") in out
    assert "changed=0" in out and "changed=1" not in out


def test_preflight_play_passes_with_opt_outs_in_check_mode_and_limit(tmp_path: Path) -> None:
    """Port free, NAT opt-out, rack policy warn: passes in --check, and prints the warning.
    Under --limit pf-node1 the racks of pf-node2 and pf-node3 (inventory values) still count:
    the rack-count warning is about the whole cluster's 2 racks."""
    inv = inventory(tmp_path, _free_port(),
                    **{"pf-node1": {"kafka_listener_address": FOREIGN,
                                    "kafka_preflight_allow_foreign_listener_address": True}})
    inv["all"]["vars"]["kafka_preflight_rack_policy"] = "warn"
    r = run(tmp_path, inv, "--check", "--limit", "pf-node1")
    out = flat(r.stdout)
    assert r.returncode == 0, out[-4000:]
    assert "Preflight passed for 1 host(s)." in out
    assert "WARNING: preflight accepted 1 risk(s) on purpose:" in out
    assert "the brokers span 2 rack(s) (rack-a, rack-b)" in out


def test_preflight_play_names_hosts_outside_the_kafka_groups(tmp_path: Path) -> None:
    """A mistyped group: refused on localhost, before the Kafka hosts play starts."""
    inv = inventory(tmp_path, _free_port())
    inv["all"]["children"]["kafka_brokers"] = {"hosts": {"pf-typo": {"kafka_node_id": 9}}}
    inv["all"]["children"]["monitoring"] = {"hosts": {"pf-prom": {}}}
    r = run(tmp_path, inv)
    out = flat(r.stdout)
    assert r.returncode != 0
    assert ("pf-typo: sets kafka_node_id but is in none of the groups kafka_broker, "
            "kafka_controller (its groups: kafka_brokers)") in out, out[-3000:]
    assert "pf-prom" not in out
    assert "Preflight of the Kafka hosts" not in out


def test_preflight_play_with_limit_still_judges_the_whole_cluster(tmp_path: Path) -> None:
    """--limit pf-node1: node ids and racks of every Kafka host of the inventory are judged
    (the others by their inventory values): a node id that pf-node2 shares and a rack missing
    on pf-node3 are found from pf-node1's run (the quorum of 3 and RF 3 on 3 brokers pass)."""
    inv = inventory(tmp_path, _free_port(), **{"pf-node2": {"kafka_node_id": 1},
                                               "pf-node3": {"kafka_rack": ""}})
    del inv["all"]["children"]["zookeeper"]
    r = run(tmp_path, inv, "--limit", "pf-node1")
    out = flat(r.stdout)
    assert r.returncode != 0
    assert "Preflight found 2 problem(s)" in out, out[-4000:]
    assert "pf-node1, pf-node2: share kafka_node_id=1" in out
    assert "pf-node3: no kafka_rack while the other brokers have one" in out


def _cert(tmp: Path, name: str, days: int) -> Path:
    cert = tmp / f"{name}-{days}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp / f"{name}-{days}.key"), "-out", str(cert), "-days", str(days),
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    return cert


def test_preflight_play_refuses_a_user_certificate_that_expires_soon(tmp_path: Path) -> None:
    """Secure profile with your own certificates (kafka_tls_ca_mode user): a host certificate
    valid for 10 more days fails preflight with kafka_tls_renew_days=30, naming the host and
    the variable; with 60 days on every certificate preflight passes."""
    def secure(days2: int) -> dict[str, Any]:
        inv = inventory(tmp_path, _free_port(), **{
            n: {"kafka_tls_user_cert_file": str(_cert(tmp_path, n, days2 if n == "pf-node2" else 60))}
            for n in ("pf-node1", "pf-node2", "pf-node3")})
        inv["all"]["vars"].update({"kafka_security_profile": "secure", "kafka_tls_ca_mode": "user",
                                   "kafka_tls_user_ca_file": str(_cert(tmp_path, "ca", 3650)),
                                   "kafka_tls_renew_days": 30, "kafka_preflight_rack_policy": "warn"})
        return inv
    r = run(tmp_path, secure(10))
    out = flat(r.stdout)
    assert r.returncode != 0, out[-3000:]
    assert "pf-node2: its certificate (subject" in out and "within kafka_tls_renew_days=30" in out, \
        out[-3000:]
    assert "pf-node1: its certificate" not in out
    r = run(tmp_path, secure(60))
    assert r.returncode == 0, flat(r.stdout)[-3000:]
