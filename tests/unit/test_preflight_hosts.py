"""Preflight rules of roles/kafka/filter_plugins/kafka_preflight_hosts.py (ports, addresses,
racks, JBOD) and the heap/ISR rules added to kafka_preflight.py: each fails on a bad inventory
given as data with a message naming the host, the variable and the fix, and the good case next
to it passes. The same inventories as test_preflight.py, plus what the probes of
roles/kafka/tasks/preflight.yml collect on a host (addresses, listening ports, racks)."""

from __future__ import annotations

import random
import shlex
import socket
import subprocess
from typing import Any

import jinja2
import pytest
import yaml

from render_role import REPO
from test_preflight import errors, lab, one, pf, prod, zk

hp = pf.hosts_rules


def placed() -> dict[str, Any]:
    """prod() with what the probes find on new hosts: own addresses, sshd on 22, three racks."""
    c = prod()
    for i, h in enumerate(c["hosts"]):
        h.update(addresses=[h["listener_address"], "10.0.0.%d" % (i + 1), "fe80::1"],
                 kafka_installed=False, listening_ports=[22, 111], rack="rack-" + "abc"[i % 3],
                 listener_resolved=[])
    return c


def by_name(c: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in c["hosts"] if h["name"] == name)


def warnings(c: dict[str, Any]) -> list[str]:
    return pf.kafka_preflight_warnings(c)


def test_good_placed_inventory_passes() -> None:
    assert errors(placed()) == [] and warnings(placed()) == []


# -- ports outside 1-65535 ----------------------------------------------------------------
@pytest.mark.parametrize("var, value", [("broker_port", 0), ("broker_port", 65536),
                                        ("controller_port", 70000), ("controller_port", "x"),
                                        ("broker_port", -1)])
def test_port_out_of_range(var: str, value: Any) -> None:
    c = placed()
    by_name(c, "kb04")[var] = value
    one(c, "kb04", f"kafka_{var}={value!r}", "1 to 65535")


@pytest.mark.parametrize("port", [1, 65535])
def test_port_limits_pass(port: int) -> None:
    c = placed()
    by_name(c, "kb04")["broker_port"] = port
    assert errors(c) == []


@pytest.mark.parametrize("value, bad", [
    ("PLAINTEXT://:9092,EXTERNAL://:65536", "65536"), ("PLAINTEXT://[::1]:0", "0"),
    (["PLAINTEXT://0.0.0.0:x"], "x"), ("PLAINTEXT://:9092,garbage", "")])
def test_listener_port_in_properties(value: Any, bad: str) -> None:
    c = placed()
    by_name(c, "kb02")["properties"]["listeners"] = value
    one(c, "kb02: listeners entry", f"port {bad!r}", "kafka_server_properties", "1 to 65535")


def test_listener_ports_in_properties_pass() -> None:
    c = placed()
    by_name(c, "kb02")["properties"]["advertised.listeners"] = "PLAINTEXT://[2001:db8::1]:9092"
    assert errors(c) == []
    assert hp.listener_ports("A://h:1,B://[::]:65535") == [("A", "1"), ("B", "65535")]


# -- ports taken by another process -------------------------------------------------------
def test_port_in_use_on_new_host() -> None:
    c = placed()
    by_name(c, "kb05")["listening_ports"] = [22, 9092]
    one(c, "kb05: kafka_broker_port=9092", "another process", "set kafka_broker_port to a free port")
    by_name(c, "kc1")["listening_ports"] = [9093]
    assert any("kc1: kafka_controller_port=9093" in e for e in errors(c))


def test_port_in_use_ignored_where_kafka_is_installed_or_unneeded() -> None:
    c = placed()
    by_name(c, "kb05").update(listening_ports=[9092, 9093], kafka_installed=True)  # Kafka's own
    by_name(c, "kb06")["listening_ports"] = [9093]  # a broker does not bind the controller port
    by_name(c, "kb07")["listening_ports"] = [9091, 9094]
    assert errors(c) == []


def test_port_in_use_follows_listeners_property() -> None:
    c = placed()
    h = by_name(c, "kb05")
    h["properties"]["listeners"] = "PLAINTEXT://:19092"
    h["listening_ports"] = [9092]
    assert errors(c) == []
    h["listening_ports"] = [19092]
    one(c, "kb05: listeners (kafka_server_properties)=19092", "set listeners to a free port")


def test_port_in_use_of_the_role_listeners() -> None:
    """The role's computed listeners (kafka_listeners): an extra listener's port counts too."""
    c = placed()
    h = by_name(c, "kb05")
    h["listeners"] = ["CLIENT://:9092", "REPLICATION://10.0.0.8:9094"]
    h["listening_ports"] = [9094]
    one(c, "kb05: kafka_listeners (REPLICATION)=9094", "another process")
    h["listening_ports"] = [9092]
    one(c, "kb05: kafka_broker_port=9092")
    h["listening_ports"] = [9093]
    assert errors(c) == []


def test_per_listener_addresses_of_the_host() -> None:
    """kafka_listener_addresses: a listener advertised or bound on an address the host lacks."""
    c = placed()
    h = by_name(c, "kb05")  # own: 192.0.2.15, 10.0.0.8
    h["listeners"] = ["CLIENT://:9092", "REPLICATION://10.0.0.8:9094"]
    h["advertised_listeners"] = "CLIENT://192.0.2.15:9092,REPLICATION://10.0.0.8:9094"
    assert errors(c) == []
    h["advertised_listeners"] = ["CLIENT://192.0.2.15:9092", "REPLICATION://10.1.0.99:9094"]
    one(c, "kb05: listener REPLICATION would advertise 10.1.0.99",
        "kafka_listener_addresses[REPLICATION]", "kafka_preflight_allow_foreign_listener_address")
    h["allow_foreign_address"] = True
    assert errors(c) == []
    h["listeners"] = ["CLIENT://:9092", "REPLICATION://10.1.0.99:9094"]
    one(c, "kb05: listener REPLICATION would bind 10.1.0.99", "bind_address in kafka_listeners")


@pytest.mark.parametrize("line, port", [
    ("LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*", 22), ("LISTEN 0 50 [::]:9092 [::]:*", 9092),
    ("LISTEN 0 50 *:9093 *:*", 9093), ("LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*", 53),
    ("LISTEN 0 128 [fe80::1%eth0]:2181 [::]:*", 2181)])
def test_listening_ports_parses_ss(line: str, port: int) -> None:
    assert hp.listening_ports(line + "\n\n") == [port]


def test_listening_ports_sees_a_real_listener() -> None:
    """The parser against this machine's own `ss -Hltn` while a socket listens (IPv4 and IPv6)."""
    socks = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family)
        try:
            s.bind((addr, 0))
        except OSError:
            continue  # no IPv6 here
        s.listen()
        socks.append(s)
    assert socks
    mine = [s.getsockname()[1] for s in socks]
    try:
        out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
        assert set(mine) <= set(hp.listening_ports(out)), (out, mine)
    finally:
        for s in socks:
            s.close()
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    ports = hp.listening_ports(out)
    assert not set(mine) & set(ports), "closed sockets still listed"
    assert all(1 <= p <= 65535 for p in ports)


# -- listener address not the host's ------------------------------------------------------
def test_listener_address_not_on_host() -> None:
    c = placed()
    by_name(c, "kb03")["addresses"] = ["192.0.2.99", "10.0.0.9"]
    one(c, "kb03: kafka_listener_address=192.0.2.13 is not an address of this host",
        "192.0.2.99", "kafka_preflight_allow_foreign_listener_address: true")


def test_listener_address_nat_opt_out() -> None:
    c = placed()
    by_name(c, "kb03").update(addresses=["10.0.0.9"], allow_foreign_address=True)
    assert errors(c) == []


@pytest.mark.parametrize("resolved, ok", [(["10.0.0.6"], True), (["203.0.113.5"], False),
                                          (["127.0.1.1"], True), ([], True),
                                          (["203.0.113.5", "10.0.0.6"], True)])
def test_listener_name_resolves_to_host(resolved: list[str], ok: bool) -> None:
    """A DNS name: what it resolves to on the host itself must be one of the host's addresses
    (nothing resolved: the resolution rule of check_listeners reports it, not this one)."""
    c = placed()
    h = by_name(c, "kb03")
    h.update(listener_address="kb03.example.com", listener_resolved=resolved)
    for o in c["hosts"]:
        o["resolves"]["kb03.example.com"] = True
    if ok:
        assert errors(c) == []
    else:
        one(c, "kb03: kafka_listener_address=kb03.example.com (it resolves there to 203.0.113.5)")


def test_listener_address_ipv6_spelling() -> None:
    c = placed()
    h = by_name(c, "kb03")
    h.update(listener_address="2001:DB8:0::13", addresses=["2001:db8::13"])
    for o in c["hosts"]:
        o["resolves"]["2001:DB8:0::13"] = True
    assert errors(c) == []


def test_bind_address_not_on_host_even_with_opt_out() -> None:
    c = placed()
    by_name(c, "kb08").update(bind_address="203.0.113.9", allow_foreign_address=True)
    one(c, "kb08: kafka_listener_bind_address=203.0.113.9", "cannot bind", "leave it empty")
    by_name(c, "kb08")["bind_address"] = "0.0.0.0"
    assert errors(c) == []


# -- racks --------------------------------------------------------------------------------
def test_racks_on_some_brokers_only() -> None:
    c = placed()
    by_name(c, "kb02")["rack"] = ""
    by_name(c, "kb09")["rack"] = None
    one(c, "kb02, kb09: no kafka_rack", "Set kafka_rack on these hosts, or remove it from all")


def test_racks_on_no_broker_pass_and_controllers_do_not_count() -> None:
    c = placed()
    for h in c["hosts"]:
        h["rack"] = "" if "broker" in h["roles"] else "rack-a"
    assert errors(c) == []
    by_name(c, "kb01")["properties"]["broker.rack"] = "rack-x"  # a rack set through properties
    one(c, "no kafka_rack")


def test_fewer_racks_than_replication_factor_refused() -> None:
    """Two racks, RF 3: refused by default, naming the racks, the factors and both ways out."""
    c = placed()
    for i, h in enumerate(c["hosts"]):
        h["rack"] = "rack-" + "ab"[i % 2]
    msg = one(c, "2 rack(s) (rack-a, rack-b)", "default.replication.factor=3",
              "offsets.topic.replication.factor=3",
              "kafka_topics_list[0] (deepseek-training-data) replication_factor=3",
              "kafka_rack", "kafka_preflight_rack_policy: warn")
    assert warnings(c) == []
    c["rack_policy"] = "warn"
    assert errors(c) == [] and warnings(c) == [msg]


def test_rack_count_limit() -> None:
    """RF 3 on 3 racks passes; a topic with RF 4 on the same 3 racks is the one past it."""
    c = placed()
    assert errors(c) == []
    c["topics"].append({"name": "wide", "partitions": 3, "replication_factor": 4})
    one(c, "3 rack(s)", "kafka_topics_list[1] (wide) replication_factor=4", "4 racks")


def test_rack_policy_unknown() -> None:
    c = placed()
    c["rack_policy"] = "ignore"
    one(c, "kafka_preflight_rack_policy='ignore'", "refuse", "warn")


# -- transaction log min ISR --------------------------------------------------------------
@pytest.mark.parametrize("isr", [3, 4, 0])
def test_transaction_min_isr_not_below_rf(isr: int) -> None:
    c = placed()
    by_name(c, "kb01")["properties"]["transaction.state.log.min.isr"] = isr
    one(c, f"kb01: transaction.state.log.min.isr={isr}",
        "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2")


def test_transaction_min_isr_default_and_lab() -> None:
    c = placed()
    for h in c["hosts"]:  # Kafka's default min ISR (2) against a replication factor of 2
        h["properties"]["transaction.state.log.replication.factor"] = 2
    one(c, "transaction.state.log.min.isr=2 with transaction.state.log.replication.factor=2",
        "transaction.state.log.min.isr=1")
    c = lab()
    c["lab"] = True
    c["hosts"] = c["hosts"][:1]
    c["topics"] = []  # a one-host lab cannot hold the article's RF 3 topic
    c["hosts"][0]["properties"] = {"default.replication.factor": 1, "min.insync.replicas": 1,
                                   "offsets.topic.replication.factor": 1,
                                   "transaction.state.log.replication.factor": 1,
                                   "transaction.state.log.min.isr": 1}
    assert errors(c) == []


# -- JBOD below 3.7 in KRaft --------------------------------------------------------------
@pytest.mark.parametrize("version, dirs, mode, migration, bad", [
    ("3.6.2", 2, "kraft", False, True), ("3.7.0", 2, "kraft", False, False),
    ("3.6.2", 1, "kraft", False, False), ("3.6.2", 2, "zookeeper", False, False),
    ("3.6.2", 2, "zookeeper", True, True), ("3.9.2", 6, "zookeeper", True, False)])
def test_jbod_needs_3_7_in_kraft(version: str, dirs: int, mode: str, migration: bool,
                                 bad: bool) -> None:
    c = zk() if mode == "zookeeper" else placed()
    c["migration"] = migration
    if migration:
        c["hosts"] += [dict(c["hosts"][0], name=f"kc{i}", node_id=100 + i, roles=["controller"],
                            listener_address=f"192.0.2.{100 + i}", data_dirs=["/var/lib/kafka/m"])
                       for i in (1, 2, 3)]
    for h in c["hosts"]:
        h["version"] = version
        if "broker" in h["roles"]:
            h["data_dirs"] = [f"/data/{i}/kafka" for i in range(1, dirs + 1)]
    if bad:
        msg = one(c, "several kafka_data_dirs (JBOD) with kafka_version below 3.7", "KIP-858",
                  "Raise kafka_version")
        assert "kc1" not in msg and "kb01" in msg
    else:
        assert errors(c) == []


# -- ZooKeeper and Kafka heaps on one host ------------------------------------------------
@pytest.mark.parametrize("kafka, zk_heap, bad", [
    ("7g", "512m", False), ("7g", "1g", True), ("7680m", "512m", True), ("7679m", "512m", False)])
def test_colocated_heaps(kafka: str, zk_heap: str, bad: bool) -> None:
    """16 GiB host: 8192 MB is half; the sum must stay below it (8192 MB exactly is one past)."""
    c = zk()
    h = c["hosts"][0]
    h.update(heap_size=kafka, zookeeper_heap_size=zk_heap, memtotal_mb=16384)
    if bad:
        one(c, "kb01: runs ZooKeeper and Kafka", f"kafka_heap_size={kafka}",
            f"zookeeper_heap_size={zk_heap}", "below 8192m")
    else:
        assert errors(c) == []


def test_colocated_heap_unreadable_and_kafka_alone_too_big() -> None:
    c = zk()
    c["hosts"][0]["zookeeper_heap_size"] = "lots"
    one(c, "kb01: zookeeper_heap_size='lots' is not a JVM size")
    c = zk()
    c["hosts"][0].update(heap_size="40g", zookeeper_heap_size="512m")
    one(c, "kb01: kafka_heap_size=40g")  # the heap rule alone, not twice


# -- hosts with Kafka variables outside the Kafka groups ----------------------------------
def inventory() -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    groups = {"all": ["kb1", "kb2", "kc1", "typo", "prom", "zk1"], "kafka_broker": ["kb1", "kb2"],
              "kafka_controller": ["kc1"], "kafka_brokers": ["typo"], "monitoring": ["prom"],
              "zookeeper": ["zk1"], "ungrouped": []}
    hostvars: dict[str, dict[str, Any]] = {
        n: {"group_names": [g for g, m in groups.items() if n in m and g != "all"],
            "kafka_listener_address": "x"}  # group_vars/all: every host has it
        for n in groups["all"]}
    for n, nid in (("kb1", 1), ("kb2", 2), ("kc1", 101)):
        hostvars[n].update(kafka_node_id=nid, kafka_rack="rack-a")
    hostvars["zk1"]["zookeeper_id"] = 1
    return groups, hostvars


def test_orphans_good_inventory_passes() -> None:
    groups, hostvars = inventory()
    hostvars["typo"].pop("kafka_listener_address")
    assert hp.kafka_preflight_orphans(groups, hostvars, ["kafka_broker", "kafka_controller"]) == []


def test_orphan_with_mistyped_group() -> None:
    groups, hostvars = inventory()
    hostvars["typo"].update(kafka_node_id=3, kafka_rack="rack-b")
    hostvars["prom"]["kafka_server_properties_host"] = {"num.io.threads": 8}
    errs = hp.kafka_preflight_orphans(groups, hostvars, ["kafka_broker", "kafka_controller"])
    assert errs == [
        "prom: sets kafka_server_properties_host but is in none of the groups kafka_broker, "
        "kafka_controller (its groups: monitoring), so no Kafka play deploys it. A mistyped group "
        "name? List the host under kafka_broker or kafka_controller, or remove its Kafka variables.",
        "typo: sets kafka_node_id, kafka_rack but is in none of the groups kafka_broker, "
        "kafka_controller (its groups: kafka_brokers), so no Kafka play deploys it. A mistyped "
        "group name? List the host under kafka_broker or kafka_controller, or remove its Kafka "
        "variables."]


def test_orphan_follows_group_variables() -> None:
    """kafka_broker_group renamed: membership is read from the configured group names."""
    groups, hostvars = inventory()
    groups["brokers"] = groups.pop("kafka_broker")
    errs = hp.kafka_preflight_orphans(groups, hostvars, ["brokers", "kafka_controller"])
    assert errs == []
    errs = hp.kafka_preflight_orphans(groups, hostvars, ["kafka_broker", "kafka_controller"])
    assert [e.split(":")[0] for e in errs] == ["kb1", "kb2"]


# -- every new rule at once, in random order of hosts -------------------------------------
def test_all_new_messages_at_once_in_any_host_order() -> None:
    """One broken inventory: every problem reported in one run, the same set in any host order."""
    def broken() -> dict[str, Any]:
        c = placed()
        by_name(c, "kb01")["broker_port"] = 70000
        by_name(c, "kb02")["listening_ports"] = [9092]
        by_name(c, "kb03")["addresses"] = ["10.9.9.9"]
        by_name(c, "kb04")["rack"] = ""
        by_name(c, "kb05")["properties"]["transaction.state.log.min.isr"] = 3
        return c
    want = sorted(errors(broken()))
    assert len(want) == 5, want
    rng = random.Random(9)
    for _ in range(20):
        c = broken()
        rng.shuffle(c["hosts"])
        assert sorted(errors(c)) == want


def test_resolved_counts_a_name_with_several_addresses_as_resolved() -> None:
    """IPv4 + IPv6 (or several NICs) is a name that resolves (the per-name getent module run
    this replaced counted addresses through the bool filter: 2 addresses read as False)."""
    out = ("== kb01.example.com\n10.0.0.1 STREAM kb01.example.com\n10.0.0.1 DGRAM\n"
           "2001:db8::1 STREAM\n2001:db8::1 RAW\n== kb02.example.com\n== 10.0.0.3\n10.0.0.3 STREAM 10.0.0.3\n")
    r = hp.resolved(out, "kb01.example.com")
    assert r == {"resolves": {"kb01.example.com": True, "kb02.example.com": False, "10.0.0.3": True},
                 "listener_resolved": ["10.0.0.1", "2001:db8::1"]}
    assert hp.resolved(out, None)["listener_resolved"] == []
    assert hp.resolved("", "x") == {"resolves": {}, "listener_resolved": []}


def test_the_resolver_task_runs_here_as_written() -> None:
    """roles/kafka/tasks/preflight.yml's resolver script, rendered and run on this machine:
    the names that resolve here resolve, an unresolvable one does not, and the script exits 0."""
    tasks = yaml.safe_load((REPO / "roles/kafka/tasks/preflight.yml").read_text())
    task = next(t for t in tasks if t.get("name") == "Resolve every Kafka host's listener address")
    env = jinja2.Environment()
    env.filters["quote"] = shlex.quote
    names = ["localhost", "127.0.0.1", "no-such-host.invalid"]
    script = env.from_string(task["ansible.builtin.shell"]).render(__names=names)
    run = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    r = hp.resolved(run.stdout, "127.0.0.1")
    assert r == {"resolves": {"localhost": True, "127.0.0.1": True, "no-such-host.invalid": False},
                 "listener_resolved": ["127.0.0.1"]}
