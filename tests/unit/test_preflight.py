"""Preflight rules (roles/kafka/filter_plugins/kafka_preflight.py), each shown failing on a bad
inventory given as data, with the message a user would read; plus good inventories that pass
(the prod shape and the lab shape)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

_PATH = Path(__file__).resolve().parents[2] / "roles/kafka/filter_plugins/kafka_preflight.py"
_spec = importlib.util.spec_from_file_location("kafka_preflight", _PATH)
assert _spec and _spec.loader
pf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pf)

PROFILE = {"default.replication.factor": 3, "min.insync.replicas": 2,
           "offsets.topic.replication.factor": 3, "transaction.state.log.replication.factor": 3,
           "message.max.bytes": 10485760, "replica.fetch.max.bytes": 10485760}


def host(name: str, node_id: Any, roles: list[str], addr: str, **kw: Any) -> dict[str, Any]:
    h = {"name": name, "roles": roles, "node_id": node_id, "listener_address": addr,
         "broker_port": 9092, "controller_port": 9093,
         "data_dirs": ["/data/1/kafka", "/data/2/kafka"], "heap_size": "8g",
         "memtotal_mb": 65536, "version": "4.4.0", "mode": "kraft",
         "properties": dict(PROFILE), "stored_node_ids": [], "stored_cluster_ids": [],
         "resolves": {}}
    h.update(kw)
    return h


def prod() -> dict[str, Any]:
    """Ten brokers and three dedicated controllers, as inventories/prod."""
    hosts = [host(f"kc{i}", 100 + i, ["controller"], f"192.0.2.{100 + i}", heap_size="4g",
                  memtotal_mb=16384, data_dirs=["/var/lib/kafka/metadata"]) for i in (1, 2, 3)]
    hosts += [host(f"kb{i:02d}", i, ["broker"], f"192.0.2.{10 + i}") for i in range(1, 11)]
    addrs = [h["listener_address"] for h in hosts]
    for h in hosts:
        h["resolves"] = {a: True for a in addrs}
    return {"hosts": hosts, "lab": False, "cluster_id": "",
            "topics": [{"name": "deepseek-training-data", "partitions": 50,
                        "replication_factor": 3,
                        "configs": {"min.insync.replicas": 2, "max.message.bytes": 10485760}}],
            "zookeeper_group": "zookeeper", "zookeeper_count": 0}


def lab() -> dict[str, Any]:
    """The lab: three combined nodes, heap 384m, the kafka role's defaults."""
    props = {"default.replication.factor": 3, "min.insync.replicas": 2,
             "offsets.topic.replication.factor": 3, "transaction.state.log.replication.factor": 3}
    hosts = [host(f"lab-{i}", i, ["broker", "controller"], f"10.89.60.{10 + i}", heap_size="384m",
                  memtotal_mb=24105, data_dirs=["/var/lib/kafka/data"], properties=dict(props),
                  stored_node_ids=[str(i)], stored_cluster_ids=["AAAAAAAAAAAAAAAAAAAAAA"])
             for i in (1, 2, 3)]
    # The lab inventory's own topics (the article's topic at Kafka's default message size).
    return {"hosts": hosts, "lab": False, "cluster_id": "", "topics": inventory_topics("lab"),
            "zookeeper_group": "zookeeper", "zookeeper_count": 0}


def inventory_topics(name: str) -> list[dict[str, Any]]:
    path = Path(__file__).resolve().parents[2] / "inventories" / name / "group_vars/all/topics.yml"
    return copy.deepcopy(yaml.safe_load(path.read_text())["kafka_topics_list"])


def errors(cluster: dict[str, Any]) -> list[str]:
    return pf.kafka_preflight_errors(cluster)


def one(cluster: dict[str, Any], *needles: str) -> str:
    """The single error message; it must contain every needle (variable, host, fix)."""
    errs = errors(cluster)
    assert len(errs) == 1, errs
    for n in needles:
        assert n in errs[0], (n, errs[0])
    return errs[0]


def test_good_prod_inventory_passes() -> None:
    assert errors(prod()) == []


def test_good_lab_inventory_passes() -> None:
    assert lab()["topics"], "the lab declares the article's topic"
    assert errors(lab()) == []


def test_prod_inventory_topics_pass() -> None:
    c = prod()
    c["topics"] = inventory_topics("prod")
    assert errors(c) == []


def test_topic_at_kafkas_default_message_size_passes_with_default_fetch_size() -> None:
    """max.message.bytes 1048588 (Kafka's message.max.bytes) is above the default
    replica.fetch.max.bytes 1048576, which followers exceed to make progress (KIP-74): only a
    replica.fetch.max.bytes the inventory sets is a limit preflight enforces."""
    c = lab()
    c["topics"] = [{"name": "t", "partitions": 3, "configs": {"max.message.bytes": 1048588}}]
    assert errors(c) == []
    for h in c["hosts"]:
        h["properties"].update({"replica.fetch.max.bytes": 1048576, "message.max.bytes": 1048576})
    one(c, "max.message.bytes=1048588 exceeds the brokers' replica.fetch.max.bytes=1048576")


def test_combined_prod_passes() -> None:
    """The quorum moved onto three brokers: one inventory change, still valid."""
    c = prod()
    c["hosts"] = [h for h in c["hosts"] if "controller" not in h["roles"]]
    for h in c["hosts"][:3]:
        h["roles"] = ["broker", "controller"]
    assert errors(c) == []


# -- roles --------------------------------------------------------------------------------
def test_host_without_role() -> None:
    c = prod()
    c["hosts"][5]["roles"] = []
    one(c, "kb03", "kafka_broker", "kafka_controller")


def test_no_brokers() -> None:
    c = prod()
    c["hosts"] = c["hosts"][:3]
    c["topics"] = []
    assert any("group kafka_broker is empty" in e for e in errors(c))


# -- quorum -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 4])
def test_quorum_even(size: int) -> None:
    c = prod()
    c["hosts"][3 + 0]["roles"] = ["broker", "controller"]  # a fourth voter
    if size == 2:
        c["hosts"] = c["hosts"][1:3] + c["hosts"][3:]
        c["hosts"][2]["roles"] = ["broker"]
    one(c, f"kafka_controller has {size} host(s)", "odd", "3 or 5")


def test_quorum_single_needs_lab_flag() -> None:
    c = prod()
    c["hosts"] = c["hosts"][2:]
    one(c, "kafka_controller has 1 host(s)", "kafka_preflight_lab: true")
    c["lab"] = True
    assert errors(c) == []


def test_quorum_empty() -> None:
    c = prod()
    c["hosts"] = c["hosts"][3:]
    one(c, "kafka_controller is empty")


# -- node ids -----------------------------------------------------------------------------
def test_node_id_missing() -> None:
    c = prod()
    c["hosts"][4]["node_id"] = ""
    one(c, "kb02", "kafka_node_id is not set", "kafka_node_id: 4")


def test_node_id_not_integer() -> None:
    c = prod()
    c["hosts"][4]["node_id"] = "two"
    one(c, "kb02", "kafka_node_id='two'", "integer")


def test_node_id_duplicate() -> None:
    c = prod()
    c["hosts"][4]["node_id"] = 1
    one(c, "kb01, kb02", "share kafka_node_id=1", "unique")


def test_node_id_differs_from_meta_properties() -> None:
    c = lab()
    c["hosts"][1]["node_id"] = 7
    one(c, "lab-2", "kafka_node_id=7", "node.id=2", "kafka_node_id: 2")


def test_cluster_ids_differ() -> None:
    c = lab()
    c["hosts"][2]["stored_cluster_ids"] = ["BBBBBBBBBBBBBBBBBBBBBB"]
    one(c, "different cluster ids", "BBBBBBBBBBBBBBBBBBBBBB on lab-3")


def test_cluster_id_mismatch() -> None:
    c = lab()
    c["cluster_id"] = "CCCCCCCCCCCCCCCCCCCCCC"
    one(c, "kafka_cluster_id=CCCCCCCCCCCCCCCCCCCCCC", "AAAAAAAAAAAAAAAAAAAAAA")


# -- replication --------------------------------------------------------------------------
def test_replication_factor_above_brokers() -> None:
    c = lab()
    c["hosts"] = c["hosts"][:1] + [copy.deepcopy(c["hosts"][1])]
    c["hosts"][1]["roles"] = ["controller"]  # 1 broker, RF 3
    c["lab"] = True
    errs = errors(c)
    assert any("default.replication.factor=3 but the cluster has 1 broker(s)" in e
               and "kafka_server_properties" in e for e in errs), errs
    assert any("offsets.topic.replication.factor=3" in e for e in errs), errs


def test_min_isr_not_below_rf() -> None:
    c = prod()
    for h in c["hosts"]:
        h["properties"]["min.insync.replicas"] = 3
    one(c, "min.insync.replicas=3 with default.replication.factor=3",
        "Set min.insync.replicas=2")


# -- heap ---------------------------------------------------------------------------------
def test_heap_above_half_memory() -> None:
    c = prod()
    c["hosts"][3]["memtotal_mb"] = 12288  # 12 GiB host, 8g heap
    one(c, "kb01", "kafka_heap_size=8g", "half the host's 12288 MB", "below 6144m")


def test_heap_unreadable() -> None:
    c = prod()
    c["hosts"][3]["heap_size"] = "8 GB"
    one(c, "kb01", "kafka_heap_size='8 GB'", "8g or 6144m")


def test_jvm_size() -> None:
    assert pf.jvm_size_mb("8g") == 8192
    assert pf.jvm_size_mb("384m") == 384
    assert pf.jvm_size_mb("1048576k") == 1024
    assert pf.jvm_size_mb("x") is None


# -- listeners ----------------------------------------------------------------------------
def test_listener_empty() -> None:
    c = prod()
    c["hosts"][3]["listener_address"] = ""
    one(c, "kb01", "kafka_listener_address is empty")


def test_listener_duplicate() -> None:
    c = prod()
    c["hosts"][4]["listener_address"] = "192.0.2.11"
    one(c, "kb01, kb02", "same endpoint 192.0.2.11:9092", "kafka_listener_address")


def test_listener_unresolvable() -> None:
    c = prod()
    c["hosts"][3]["listener_address"] = "kb01.typo.example.com"
    for h in c["hosts"]:
        h["resolves"]["kb01.typo.example.com"] = h["name"] == "kb01"
    one(c, "kb01: kafka_listener_address=kb01.typo.example.com does not resolve on",
        "kb02", "kc1", "DNS")


def test_ports_equal() -> None:
    c = prod()
    c["hosts"][0]["controller_port"] = 9092
    c["hosts"][0]["broker_port"] = 9092
    one(c, "kc1", "kafka_controller_port and kafka_broker_port are both 9092")


# -- log dirs -----------------------------------------------------------------------------
@pytest.mark.parametrize("dirs, needle", [
    (["data/kafka"], "not an absolute path"),
    (["/"], "contains '/'"),
    (["/data/1/kafka", "/data/1/kafka/"], "lists a directory twice"),
    (["/data/1", "/data/1/kafka"], "/data/1/kafka is inside /data/1"),
    ([], "kafka_data_dirs is empty"),
])
def test_log_dirs(dirs: list[str], needle: str) -> None:
    c = prod()
    c["hosts"][3]["data_dirs"] = dirs
    one(c, "kb01", "kafka_data_dirs", needle)


# -- message sizes ------------------------------------------------------------------------
def test_replica_fetch_below_message_max() -> None:
    c = prod()
    c["hosts"][3]["properties"]["replica.fetch.max.bytes"] = 1048576
    errs = errors(c)
    assert any("kb01: replica.fetch.max.bytes=1048576 is below message.max.bytes=10485760" in e
               for e in errs), errs


# -- topics -------------------------------------------------------------------------------
@pytest.mark.parametrize("topic, needle", [
    ({"name": "bad name", "partitions": 1}, "Kafka's topic name rules"),
    ({"name": "..", "partitions": 1}, "not '.' or '..'"),
    ({"name": "x" * 250, "partitions": 1}, "1-249 characters"),
    ({"name": "t", "partitions": 0}, "partitions=0; set an integer >= 1"),
    ({"name": "t", "partitions": 3, "replication_factor": 11}, "replication_factor=11 but the cluster has 10"),
    ({"name": "t", "partitions": 3, "replication_factor": 0}, "replication_factor=0"),
    ({"name": "t", "partitions": 3, "replication_factor": 2, "configs": {"min.insync.replicas": 2}},
     "min.insync.replicas=2 with replication factor 2"),
    ({"name": "t", "partitions": 3, "configs": {"max.message.bytes": 20971520}},
     "exceeds the brokers' replica.fetch.max.bytes=10485760"),
])
def test_topics(topic: dict[str, Any], needle: str) -> None:
    c = prod()
    c["topics"].append(topic)
    msg = one(c, "kafka_topics_list[1]", needle)
    assert "set" in msg or "rename" in msg or "raise" in msg


def test_topics_colliding_names() -> None:
    c = prod()
    c["topics"] += [{"name": "a.b", "partitions": 1}, {"name": "a_b", "partitions": 1}]
    one(c, "a.b, a_b collide")


def test_topic_min_isr_uses_default_rf() -> None:
    c = prod()
    c["topics"].append({"name": "t", "partitions": 1, "configs": {"min.insync.replicas": 3}})
    one(c, "min.insync.replicas=3 with replication factor 3")


# -- version and mode ---------------------------------------------------------------------
def test_kraft_needs_3_3() -> None:
    c = prod()
    for h in c["hosts"]:
        h["version"] = "3.2.3"
    one(c, "kafka_mode=kraft needs kafka_version >= 3.3", "3.2.3")


def zk() -> dict[str, Any]:
    """ZooKeeper mode: three Kafka 3.9.2 brokers, a 3-member ensemble, no KRaft controller."""
    c = prod()
    c["hosts"] = [h for h in c["hosts"] if "controller" not in h["roles"]][:3]
    for h in c["hosts"]:
        h["mode"], h["version"] = "zookeeper", "3.9.2"
    c["zookeeper_count"], c["mode"] = 3, "zookeeper"
    return c


def migrating() -> dict[str, Any]:
    """The same cluster during the migration: three dedicated KRaft controllers added."""
    c = zk()
    c["migration"] = True
    c["hosts"] += [host(f"kc{i}", 100 + i, ["controller"], f"192.0.2.{100 + i}", version="3.9.2",
                        mode="zookeeper", resolves=c["hosts"][0]["resolves"]) for i in (1, 2, 3)]
    return c


def test_good_zookeeper_inventory_passes() -> None:
    assert errors(zk()) == []
    assert errors(migrating()) == []


def test_zookeeper_mode_on_4x() -> None:
    c = zk()
    for h in c["hosts"]:
        h["version"] = "4.4.0"
    one(c, "Kafka 4.x has no ZooKeeper mode", "kafka_mode: kraft")


def test_zookeeper_mode_needs_group() -> None:
    c = zk()
    c["zookeeper_count"] = 0
    errs = errors(c)
    assert any("kafka_mode=zookeeper but group zookeeper is empty" in e for e in errs), errs
    assert any("group zookeeper is empty: the cluster has no metadata quorum" in e for e in errs), errs


def test_zookeeper_mode_without_cluster_level_mode() -> None:
    """Older callers pass the mode per host only: the ensemble is still the quorum checked."""
    c = zk()
    del c["mode"]
    assert errors(c) == []
    c["zookeeper_count"] = 2
    one(c, "group zookeeper has 2 host(s)")


def test_zookeeper_mode_rejects_kraft_settings() -> None:
    c = zk()
    c["hosts"][0]["properties"]["process.roles"] = "broker"
    c["hosts"][0]["properties"]["controller.quorum.voters"] = "1@x:9093"
    one(c, "kb01: controller.quorum.voters, process.roles", "kafka_mode is zookeeper")


def test_zookeeper_mode_rejects_controllers_without_migration() -> None:
    c = migrating()
    c["migration"] = False
    one(c, "kc1, kc2, kc3: in group kafka_controller but kafka_mode is zookeeper",
        "kafka_zookeeper_migration: true")


def test_zookeeper_mode_rejects_combined_hosts() -> None:
    c = zk()
    c["hosts"][0]["roles"] = ["broker", "controller"]
    errs = errors(c)
    assert any("kb01: in both kafka_broker and kafka_controller with kafka_mode zookeeper" in e
               for e in errs), errs


def test_kraft_mode_rejects_zookeeper_settings() -> None:
    c = prod()
    c["hosts"][5]["properties"]["zookeeper.connect"] = "zk1:2181/kafka"
    one(c, "zookeeper.connect set in kafka_server_properties but kafka_mode is kraft")


def test_migration_needs_controllers_3_9_and_ensemble() -> None:
    c = migrating()
    c["hosts"] = [h for h in c["hosts"] if "controller" not in h["roles"]]
    errs = errors(c)
    assert any("group kafka_controller is empty: list the new KRaft controllers" in e for e in errs), errs
    c = migrating()
    for h in c["hosts"]:
        h["version"] = "3.5.2"
    one(c, "kafka_zookeeper_migration is true with kafka_version 3.5.2", "upgrade to 3.9 first")
    c = migrating()
    c["zookeeper_count"] = 0
    assert any("the migration reads the cluster from ZooKeeper" in e for e in errors(c))


def test_migration_controllers_quorum_size() -> None:
    c = migrating()
    c["hosts"] = c["hosts"][:-1]
    one(c, "group kafka_controller has 2 host(s)")


def test_kraft_brokers_while_controllers_migrate() -> None:
    """Phase 3: brokers already KRaft, controllers still migrating: no mixture error."""
    c = migrating()
    c["mode"] = "kraft"
    for h in c["hosts"]:
        h["mode"] = "kraft"
    assert errors(c) == []


def test_versions_differ() -> None:
    c = prod()
    c["hosts"][4]["version"] = "4.3.0"
    one(c, "kafka_version differs between hosts", "4.3.0 on kb02", "group_vars")


def test_unknown_mode() -> None:
    c = prod()
    for h in c["hosts"]:
        h["mode"] = "zk"
    one(c, "kafka_mode='zk'")


def test_all_messages_at_once() -> None:
    """A broken inventory reports every problem in one run, not the first one only."""
    c = prod()
    c["hosts"][3]["node_id"] = "x"
    c["hosts"][4]["heap_size"] = "64g"
    c["topics"].append({"name": "bad name", "partitions": 1})
    assert len(errors(c)) == 3
