"""Preflight rules of the kafka role: pure functions over the inventory, as data.

Each rule takes the cluster (a dict built by roles/kafka/tasks/preflight.yml, documented in
``kafka_preflight_errors``) and returns a list of messages. A message names the host(s), the
variable and the fix, so that a failed preflight says what to change without reading code.
Nothing here talks to a host: the tasks collect the facts, these functions judge them.

The file has no Ansible import at module level, so pytest imports it directly
(tests/unit/test_preflight.py).
"""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Host = dict[str, Any]
Cluster = dict[str, Any]

# Kafka's topic name rules (org.apache.kafka.common.internals.Topic): 1..249 characters of
# [a-zA-Z0-9._-], never "." or "..".
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
# Sizes as the JVM reads -Xmx: a number with an optional k/m/g/t suffix.
_JVM_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)\s*$")
_JVM_UNIT_MB = {"": 1 / 1048576, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1048576}
# Kafka's own defaults for the keys the rules read when the inventory does not set them.
KAFKA_DEFAULTS = {
    "default.replication.factor": 1,
    "min.insync.replicas": 1,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "message.max.bytes": 1048588,
    "replica.fetch.max.bytes": 1048576,
    "replica.fetch.response.max.bytes": 10485760,
}


def _int(value: Any) -> int | None:
    """Integer value of an inventory value (int or digit string), else None. Booleans are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _names(hosts: Iterable[str]) -> str:
    return ", ".join(sorted(hosts))


def _prop(host: Host, key: str) -> Any:
    return (host.get("properties") or {}).get(key, KAFKA_DEFAULTS.get(key))


def _by_value(hosts: Iterable[Host], key: str) -> dict[Any, list[str]]:
    """Group host names by the effective value of one server property."""
    out: dict[Any, list[str]] = defaultdict(list)
    for h in hosts:
        out[_prop(h, key)].append(h["name"])
    return out


def jvm_size_mb(value: Any) -> float | None:
    """Megabytes of a JVM size such as ``8g``, ``384m`` or ``1073741824``; None if unreadable."""
    m = _JVM_SIZE.match(str(value))
    if not m:
        return None
    return int(m.group(1)) * _JVM_UNIT_MB[m.group(2).lower()]


def _version(value: Any) -> tuple[int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)", str(value))
    return (int(m.group(1)), int(m.group(2))) if m else None


def _brokers(cluster: Cluster) -> list[Host]:
    return [h for h in cluster["hosts"] if "broker" in h.get("roles", [])]


def _controllers(cluster: Cluster) -> list[Host]:
    return [h for h in cluster["hosts"] if "controller" in h.get("roles", [])]


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

def check_roles(cluster: Cluster) -> list[str]:
    """Every host has a role; the cluster has brokers (and, in KRaft mode, controllers)."""
    errors = []
    idle = [h["name"] for h in cluster["hosts"] if not h.get("roles")]
    if idle:
        errors.append(f"{_names(idle)}: in neither group kafka_broker nor kafka_controller; add the "
                      "host to one of them (both runs combined mode) or remove it from the play.")
    if not _brokers(cluster):
        errors.append("group kafka_broker is empty: list the broker hosts under kafka_broker in the "
                      "inventory's hosts.yml.")
    return errors


def _mode(cluster: Cluster) -> str:
    """The cluster's kafka_mode: the cluster-level value, else zookeeper when any host says so."""
    if cluster.get("mode"):
        return str(cluster["mode"])
    modes = {str(h.get("mode", "kraft")) for h in cluster["hosts"]}
    return "zookeeper" if "zookeeper" in modes else "kraft"


def check_quorum(cluster: Cluster) -> list[str]:
    """The metadata quorum (KRaft controllers, or ZooKeeper) is odd and at least 3."""
    errors = []
    if _mode(cluster) == "zookeeper":
        errors += _quorum_size(int(cluster.get("zookeeper_count", 0)),
                               cluster.get("zookeeper_group", "zookeeper"), cluster)
        if cluster.get("migration"):  # the KRaft quorum the cluster migrates to
            errors += _quorum_size(len(_controllers(cluster)), "kafka_controller", cluster)
        return errors
    return _quorum_size(len(_controllers(cluster)), "kafka_controller", cluster)


def check_kraft_quorum(cluster: Cluster) -> list[str]:
    """kafka_kraft_quorum is a quorum form Kafka has, and dynamic only where Kafka supports it."""
    if "kraft_quorum" not in cluster:  # the preflight play always passes kafka_kraft_quorum
        return []
    quorum = str(cluster["kraft_quorum"])
    if quorum not in ("dynamic", "static"):
        return [f"kafka_kraft_quorum={quorum!r}: set dynamic (controller.quorum.bootstrap.servers, "
                "the default of a new cluster) or static (controller.quorum.voters)."]
    if quorum == "dynamic" and _mode(cluster) == "kraft":
        # Below 3.3 check_version_mode already refuses KRaft itself.
        old = sorted({h["name"] for h in cluster["hosts"]
                      if (3, 3) <= (_version(h.get("version")) or (4, 0)) < (3, 9)})
        if old:
            return [f"{_names(old)}: kafka_kraft_quorum=dynamic needs kafka_version >= 3.9 "
                    "(KIP-853); set kafka_kraft_quorum: static or raise kafka_version."]
    return []


def _quorum_size(size: int, group: str, cluster: Cluster) -> list[str]:
    if size == 0:
        return [f"group {group} is empty: the cluster has no metadata quorum; list 3 (or 5) hosts "
                f"under {group} in the inventory."]
    if size == 1 and cluster.get("lab"):
        return []
    if size < 3 or size % 2 == 0:
        return [f"group {group} has {size} host(s): a quorum needs an odd number, at least 3 "
                f"(3 survives one failure, 5 two; an even size survives no more than the odd size "
                f"below it). List 3 or 5 hosts under {group}; a single one is only allowed with "
                f"kafka_preflight_lab: true."]
    return []


def check_node_ids(cluster: Cluster) -> list[str]:
    """kafka_node_id is an integer >= 0, unique, and equal to the one in meta.properties."""
    errors = []
    seen: dict[int, list[str]] = defaultdict(list)
    for h in cluster["hosts"]:
        raw = h.get("node_id")
        nid = _int(raw)
        if raw is None or raw == "":
            errors.append(f"{h['name']}: kafka_node_id is not set; give the host its own integer "
                          "id in the inventory (host var, e.g. `kafka_node_id: 4`), never reused.")
            continue
        if nid is None or nid < 0:
            errors.append(f"{h['name']}: kafka_node_id={raw!r} is not a non-negative integer; set an "
                          "integer such as `kafka_node_id: 4`.")
            continue
        seen[nid].append(h["name"])
        stored = h.get("stored_node_ids") or []
        for sid in sorted({_int(s) for s in stored if _int(s) is not None}):
            if sid != nid:
                errors.append(f"{h['name']}: kafka_node_id={nid} but its storage "
                              f"(meta.properties) belongs to node.id={sid}; the id is the identity "
                              f"of the host's data: set kafka_node_id: {sid} back, or wipe "
                              f"{', '.join(h.get('data_dirs') or [])} if this host is meant to "
                              "join as a new node.")
    for nid, names in sorted(seen.items()):
        if len(names) > 1:
            errors.append(f"{_names(names)}: share kafka_node_id={nid}; node ids must be unique in "
                          "the cluster: give each host its own.")
    return errors


def check_cluster_id(cluster: Cluster) -> list[str]:
    """Hosts with formatted storage all belong to one cluster (and to kafka_cluster_id if set)."""
    stored: dict[str, list[str]] = defaultdict(list)
    for h in cluster["hosts"]:
        for cid in set(h.get("stored_cluster_ids") or []):
            stored[cid].append(h["name"])
    want = cluster.get("cluster_id") or ""
    if len(stored) > 1:
        parts = "; ".join(f"{cid} on {_names(n)}" for cid, n in sorted(stored.items()))
        return [f"the hosts' meta.properties hold different cluster ids ({parts}): remove hosts of "
                "another cluster from this inventory, or wipe the leftover host's log.dirs."]
    if want and stored and want not in stored:
        return [f"kafka_cluster_id={want} but the hosts' storage belongs to cluster "
                f"{next(iter(stored))}: set kafka_cluster_id to that id (or leave it empty)."]
    return []


def check_replication(cluster: Cluster) -> list[str]:
    """Replication factors fit the brokers; min.insync.replicas is below the replication factor."""
    errors = []
    n = len(_brokers(cluster))
    lab = bool(cluster.get("lab"))
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        for value, names in _by_value(cluster["hosts"], key).items():
            rf = _int(value)
            if rf is None or rf < 1:
                errors.append(f"{_names(names)}: {key}={value!r} is not a positive integer; set it "
                              "in kafka_server_properties (group_vars).")
            elif n and rf > n:
                errors.append(f"{_names(names)}: {key}={rf} but the cluster has {n} broker(s): "
                              f"topics cannot be created. Set {key} <= {n} in "
                              "kafka_server_properties, or add brokers.")
    # Each min ISR below its replication factor, or one broker down stops the writers that wait
    # for it: acks=all producers (min.insync.replicas), transactional producers (the txn log).
    for isr_key, rf_key, who in (
            ("min.insync.replicas", "default.replication.factor", "acks=all producer"),
            ("transaction.state.log.min.isr", "transaction.state.log.replication.factor",
             "transactional producer")):
        bad: dict[tuple[Any, Any], list[str]] = defaultdict(list)
        for h in cluster["hosts"]:
            rf, isr = _int(_prop(h, rf_key)), _int(_prop(h, isr_key))
            if rf is None or rf < 1:
                continue  # named above
            if isr is None or isr < 1 or isr > rf or (isr == rf and not (lab and rf == 1)):
                bad[(_prop(h, isr_key), rf)].append(h["name"])
        for (isr, rf), names in sorted(bad.items(), key=str):
            errors.append(f"{_names(names)}: {isr_key}={isr} with {rf_key}={rf}: {isr_key} must be "
                          "at least 1 and below the replication factor, or a single broker down "
                          f"stops every {who}. Set {isr_key}={max(1, rf - 1)} in "
                          "kafka_server_properties.")
    return errors


def check_heap(cluster: Cluster) -> list[str]:
    """kafka_heap_size is readable and below half the host's memory (the rest is page cache)."""
    errors = []
    for h in cluster["hosts"]:
        heap = jvm_size_mb(h.get("heap_size"))
        mem = _int(h.get("memtotal_mb"))
        if heap is None:
            errors.append(f"{h['name']}: kafka_heap_size={h.get('heap_size')!r} is not a JVM size; "
                          "write it like 8g or 6144m.")
        elif mem and heap >= mem / 2:
            errors.append(f"{h['name']}: kafka_heap_size={h.get('heap_size')} ({heap:.0f} MB) is not "
                          f"below half the host's {mem} MB of memory; Kafka serves reads and writes "
                          "from the page cache, not the heap. Set kafka_heap_size below "
                          f"{int(mem / 2)}m (6g-8g suits a broker).")
    return errors


def check_colocated_heap(cluster: Cluster) -> list[str]:
    """On a host that runs ZooKeeper too, both heaps together stay below half the memory."""
    errors = []
    for h in cluster["hosts"]:
        zk = h.get("zookeeper_heap_size")
        if not zk:
            continue  # not a member of the ensemble
        kafka_mb, zk_mb, mem = jvm_size_mb(h.get("heap_size")), jvm_size_mb(zk), _int(h.get("memtotal_mb"))
        if zk_mb is None:
            errors.append(f"{h['name']}: zookeeper_heap_size={zk!r} is not a JVM size; write it "
                          "like 512m or 1g.")
        elif kafka_mb is not None and mem and kafka_mb < mem / 2 <= kafka_mb + zk_mb:
            errors.append(f"{h['name']}: runs ZooKeeper and Kafka, and kafka_heap_size="
                          f"{h.get('heap_size')} plus zookeeper_heap_size={zk} ({kafka_mb + zk_mb:.0f}"
                          f" MB) is not below half the host's {mem} MB: the page cache Kafka "
                          "serves from would shrink. Lower one of them (together below "
                          f"{int(mem / 2)}m), or move ZooKeeper to hosts of its own.")
    return errors


def check_listeners(cluster: Cluster) -> list[str]:
    """Advertised addresses set, resolvable from every host, unique; controller port != broker port."""
    errors = []
    by_endpoint: dict[str, list[str]] = defaultdict(list)
    for h in cluster["hosts"]:
        addr = str(h.get("listener_address") or "").strip()
        if not addr:
            errors.append(f"{h['name']}: kafka_listener_address is empty; set it to the host's "
                          "data-network address or a DNS name that resolves to it.")
            continue
        bport, cport = _int(h.get("broker_port")), _int(h.get("controller_port"))
        if bport is not None and bport == cport:
            errors.append(f"{h['name']}: kafka_controller_port and kafka_broker_port are both "
                          f"{bport}; give them different ports (defaults 9093 and 9092).")
        roles = h.get("roles", [])
        if "broker" in roles:
            by_endpoint[f"{addr}:{bport}"].append(h["name"])
        if "controller" in roles:
            by_endpoint[f"{addr}:{cport}"].append(h["name"])
        missing = [s["name"] for s in cluster["hosts"] if (s.get("resolves") or {}).get(addr) is False]
        if missing:
            errors.append(f"{h['name']}: kafka_listener_address={addr} does not resolve on "
                          f"{_names(missing)}; other brokers and clients connect to it: add it "
                          "to DNS (or /etc/hosts) or use an IP address.")
    for endpoint, names in sorted(by_endpoint.items()):
        if len(set(names)) > 1:
            errors.append(f"{_names(set(names))}: advertise the same endpoint {endpoint}; each "
                          "host needs its own kafka_listener_address (the default is the address "
                          "of the default route; set it per host when hosts share a NAT address).")
    return errors


def check_log_dirs(cluster: Cluster) -> list[str]:
    """log.dirs are absolute, not `/`, not repeated and not nested in each other."""
    errors = []
    for h in cluster["hosts"]:
        dirs = [str(d) for d in (h.get("data_dirs") or [])]
        if not dirs:
            errors.append(f"{h['name']}: kafka_data_dirs is empty; list one directory per data disk.")
            continue
        for d in dirs:
            if not d.startswith("/"):
                errors.append(f"{h['name']}: kafka_data_dirs entry {d!r} is not an absolute path; "
                              "write it from the root, e.g. /data/1/kafka.")
            elif d.rstrip("/") == "":
                errors.append(f"{h['name']}: kafka_data_dirs contains '/'; Kafka would own the "
                              "root file system. Use a directory on a data disk, e.g. /data/1/kafka.")
        norm = [d.rstrip("/") for d in dirs if d.startswith("/") and d.rstrip("/")]
        if len(set(norm)) != len(norm):
            errors.append(f"{h['name']}: kafka_data_dirs lists a directory twice; list each data "
                          "disk once.")
        for a in set(norm):
            for b in set(norm):
                if a != b and b.startswith(a + "/"):
                    errors.append(f"{h['name']}: kafka_data_dirs entry {b} is inside {a}; Kafka "
                                  "would read one log dir as a partition of the other. Use "
                                  "sibling directories, one per disk.")
    return errors


def check_message_sizes(cluster: Cluster) -> list[str]:
    """replica.fetch.max.bytes covers message.max.bytes; the response limit covers the fetch."""
    errors = []
    for h in cluster["hosts"]:
        props = h.get("properties") or {}
        if not any(k in props for k in ("message.max.bytes", "replica.fetch.max.bytes",
                                        "replica.fetch.response.max.bytes")):
            continue  # Kafka's own defaults are consistent enough (KIP-74 fetches never stall)
        mmb, rfb, rfr = (_int(_prop(h, k)) for k in ("message.max.bytes", "replica.fetch.max.bytes",
                                                       "replica.fetch.response.max.bytes"))
        if None in (mmb, rfb, rfr):
            errors.append(f"{h['name']}: message.max.bytes, replica.fetch.max.bytes and "
                          "replica.fetch.response.max.bytes must be integers (bytes).")
            continue
        if rfb < mmb:  # type: ignore[operator]
            errors.append(f"{h['name']}: replica.fetch.max.bytes={rfb} is below message.max.bytes="
                          f"{mmb}; followers would fetch the largest batches one at a time. Set "
                          f"replica.fetch.max.bytes >= {mmb} in kafka_server_properties.")
        if rfr < rfb:  # type: ignore[operator]
            errors.append(f"{h['name']}: replica.fetch.response.max.bytes={rfr} is below "
                          f"replica.fetch.max.bytes={rfb}; set it >= {rfb}.")
    return errors


def check_topics(cluster: Cluster) -> list[str]:
    """Declared topics (kafka_topics_list) have valid names, partitions, replication and min ISR."""
    errors = []
    n = len(_brokers(cluster))
    hosts = _brokers(cluster) or cluster["hosts"]
    default_rf = min((_int(_prop(h, "default.replication.factor")) or 1) for h in hosts) if hosts else 1
    # Only where the inventory sets replica.fetch.max.bytes: with Kafka's defaults a topic at
    # message.max.bytes (1048588) is above it (1048576), and followers still fetch it (KIP-74:
    # the limit is not absolute), as check_message_sizes accepts.
    fetch_set = [_int((h.get("properties") or {})["replica.fetch.max.bytes"]) or 0 for h in hosts
                 if "replica.fetch.max.bytes" in (h.get("properties") or {})]
    fetch_max = min(fetch_set) if fetch_set else 0
    topics = cluster.get("topics") or []
    if not isinstance(topics, list):
        return ["kafka_topics_list must be a list of {name, partitions, replication_factor, configs}."]
    collide: dict[str, list[str]] = defaultdict(list)
    for i, t in enumerate(topics):
        if not isinstance(t, dict):
            errors.append(f"kafka_topics_list[{i}] is not a mapping; write {{name: ..., partitions: ...}}.")
            continue
        name = str(t.get("name") or "")
        where = f"kafka_topics_list[{i}] ({name or 'no name'})"
        if not _TOPIC_NAME.match(name) or name in (".", ".."):
            errors.append(f"{where}: the name must be 1-249 characters of a-z A-Z 0-9 . _ - "
                          "and not '.' or '..' (Kafka's topic name rules); rename the topic.")
        else:
            collide[name.replace(".", "_")].append(name)
        parts = t.get("partitions")
        if parts is not None and (_int(parts) is None or _int(parts) < 1):  # type: ignore[operator]
            errors.append(f"{where}: partitions={parts!r}; set an integer >= 1.")
        rf_raw = t.get("replication_factor")
        rf = _int(rf_raw) if rf_raw is not None else default_rf
        if rf is None or rf < 1:
            errors.append(f"{where}: replication_factor={rf_raw!r}; set an integer >= 1.")
            continue
        if n and rf > n:
            errors.append(f"{where}: replication_factor={rf} but the cluster has {n} broker(s); "
                          f"set replication_factor <= {n}.")
        configs = t.get("configs") or {}
        isr_raw = configs.get("min.insync.replicas") if isinstance(configs, dict) else None
        if isr_raw is not None:
            isr = _int(isr_raw)
            if isr is None or isr < 1 or (isr >= rf and not (cluster.get("lab") and rf == 1)):
                errors.append(f"{where}: configs min.insync.replicas={isr_raw} with replication "
                              f"factor {rf}: it must be >= 1 and below the replication factor; "
                              f"set it to {max(1, rf - 1)}.")
        mmb = _int(configs.get("max.message.bytes")) if isinstance(configs, dict) else None
        if mmb is not None and fetch_max and mmb > fetch_max:
            errors.append(f"{where}: configs max.message.bytes={mmb} exceeds the brokers' "
                          f"replica.fetch.max.bytes={fetch_max}; raise replica.fetch.max.bytes "
                          "(and message.max.bytes) in kafka_server_properties or lower the topic's.")
    for key, names in sorted(collide.items()):
        if len(names) > 1:
            errors.append(f"kafka_topics_list: {', '.join(names)} "
                          f"{'are declared twice' if len(set(names)) == 1 else 'collide'}: Kafka "
                          "treats '.' and '_' alike in metric names and refuses such pairs; keep "
                          "one name.")
    return errors


def check_version_mode(cluster: Cluster) -> list[str]:
    """kafka_version and kafka_mode agree, and are the same on every host."""
    errors = []
    versions = defaultdict(list)
    modes = defaultdict(list)
    for h in cluster["hosts"]:
        versions[str(h.get("version"))].append(h["name"])
        modes[str(h.get("mode"))].append(h["name"])
    if len(versions) > 1:
        parts = "; ".join(f"{v} on {_names(n)}" for v, n in sorted(versions.items()))
        errors.append(f"kafka_version differs between hosts ({parts}): set one version in "
                      "group_vars; the rolling playbook moves hosts to it one at a time.")
    if len(modes) > 1:
        parts = "; ".join(f"{m} on {_names(n)}" for m, n in sorted(modes.items()))
        errors.append(f"kafka_mode differs between hosts ({parts}): set one mode in group_vars.")
    for v, vnames in sorted(versions.items()):
        ver = _version(v)
        if ver is None:
            errors.append(f"{_names(vnames)}: kafka_version={v!r} is not a version such as 4.4.0.")
            continue
        for m, mnames in sorted(modes.items()):
            names = sorted(set(vnames) & set(mnames))
            if not names:
                continue
            if m == "kraft" and ver < (3, 3):
                errors.append(f"{_names(names)}: kafka_mode=kraft needs kafka_version >= 3.3 "
                              f"(KRaft is production-ready from 3.3); got {v}. Raise kafka_version.")
            elif m == "zookeeper" and ver >= (4, 0):
                errors.append(f"{_names(names)}: kafka_mode=zookeeper with kafka_version={v}: "
                              "Kafka 4.x has no ZooKeeper mode; set kafka_mode: kraft, or "
                              "kafka_version 3.9.x.")
            elif m not in ("kraft", "zookeeper"):
                errors.append(f"{_names(names)}: kafka_mode={m!r}; set kraft (or zookeeper with "
                              "Kafka 3.x).")
    if "zookeeper" in modes and not int(cluster.get("zookeeper_count", 0)):
        errors.append(f"kafka_mode=zookeeper but group {cluster.get('zookeeper_group', 'zookeeper')} "
                      "is empty; list the ZooKeeper hosts in the inventory (or use kraft).")
    return errors


# Keys that only a KRaft node has, and keys that only a ZooKeeper-mode broker has. The role sets
# them itself from kafka_mode (and kafka_zookeeper_migration); set by hand they mix the modes.
KRAFT_KEYS = ("process.roles", "node.id", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
              "controller.listener.names")
ZOOKEEPER_KEYS = ("zookeeper.connect", "zookeeper.metadata.migration.enable")


def check_mode_mixture(cluster: Cluster) -> list[str]:
    """No KRaft settings in a ZooKeeper-mode cluster and no ZooKeeper settings in a KRaft one.

    ZooKeeper mode (Kafka 3.x): the brokers are kafka_broker hosts and ZooKeeper is the metadata
    quorum; kafka_controller hosts exist only as the target quorum of a migration
    (kafka_zookeeper_migration: true), never combined with a broker (Kafka's migration runs
    dedicated controllers). KRaft mode: ZooKeeper keys only while the controllers still migrate.
    """
    errors = []
    mode, migration = _mode(cluster), bool(cluster.get("migration"))
    for h in cluster["hosts"]:
        props = h.get("properties") or {}
        if mode == "zookeeper":
            mixed = sorted(k for k in KRAFT_KEYS if k in props)
            if mixed:
                errors.append(f"{h['name']}: {', '.join(mixed)} set in kafka_server_properties but "
                              "kafka_mode is zookeeper: these are KRaft settings; remove them (the "
                              "role writes broker.id and zookeeper.connect in ZooKeeper mode, and the "
                              "migration keys itself when kafka_zookeeper_migration is true).")
        else:
            mixed = sorted(k for k in ZOOKEEPER_KEYS if k in props)
            if mixed:
                errors.append(f"{h['name']}: {', '.join(mixed)} set in kafka_server_properties but "
                              "kafka_mode is kraft: remove them; during a migration the role adds "
                              "them to the controllers itself (kafka_zookeeper_migration: true).")
    if mode == "zookeeper":
        controllers = [h["name"] for h in _controllers(cluster)]
        combined = [h["name"] for h in _controllers(cluster) if "broker" in h.get("roles", [])]
        if combined:
            errors.append(f"{_names(combined)}: in both kafka_broker and kafka_controller with "
                          "kafka_mode zookeeper; a ZooKeeper-mode broker cannot be a KRaft "
                          "controller (and a migration needs dedicated controllers): keep the "
                          "brokers in kafka_broker only.")
        elif controllers and not migration:
            errors.append(f"{_names(controllers)}: in group kafka_controller but kafka_mode is "
                          "zookeeper and no migration is under way: KRaft controllers have no "
                          "place in a ZooKeeper cluster. Remove them from kafka_controller, or set "
                          "kafka_zookeeper_migration: true to migrate to KRaft (docs/zookeeper.md).")
    if migration:
        bad = sorted({str(h.get("version")) for h in cluster["hosts"]
                      if (_version(h.get("version")) or (0, 0)) < (3, 6)
                      or (_version(h.get("version")) or (0, 0)) >= (4, 0)})
        if bad:
            errors.append(f"kafka_zookeeper_migration is true with kafka_version {', '.join(bad)}: "
                          "migrate from Kafka 3.9.x (the migration is production-ready from 3.6, "
                          "and 4.x has no ZooKeeper support to migrate from); upgrade to 3.9 first.")
        if not _controllers(cluster):
            errors.append("kafka_zookeeper_migration is true but group kafka_controller is empty: "
                          "list the new KRaft controllers (3 or 5 dedicated hosts) under "
                          "kafka_controller.")
        if not int(cluster.get("zookeeper_count", 0)):
            errors.append(f"kafka_zookeeper_migration is true but group "
                          f"{cluster.get('zookeeper_group', 'zookeeper')} is empty: the migration "
                          "reads the cluster from ZooKeeper; list the ensemble's hosts.")
    return errors


def _sibling(name: str) -> Any:
    """A module beside this one, loaded by path (Ansible loads filter plugins without a package)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_kafka_kit_{name}", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The rules about ports, addresses, racks and disks: kafka_preflight_hosts.py.
hosts_rules = _sibling("kafka_preflight_hosts")

RULES: list[Callable[[Cluster], list[str]]] = [
    check_roles, check_version_mode, check_mode_mixture, check_quorum, check_kraft_quorum, check_node_ids, check_cluster_id,
    check_replication, check_heap, check_colocated_heap, check_listeners, check_log_dirs,
    check_message_sizes, check_topics, *hosts_rules.RULES,
]


def kafka_preflight_errors(cluster: Cluster) -> list[str]:
    """All rule messages for one cluster; empty when the inventory is fit to deploy.

    ``cluster`` keys: ``hosts`` (list of per-host dicts: name, roles ["broker", "controller"],
    node_id, stored_node_ids, stored_cluster_ids, listener_address, broker_port,
    controller_port, resolves {address: bool, what this host resolved}, data_dirs, heap_size, memtotal_mb, version,
    mode, properties {server.properties keys the user set, merged}), ``lab`` (bool),
    ``topics`` (kafka_topics_list), ``cluster_id``, ``zookeeper_group``, ``zookeeper_count``,
    ``mode`` (kafka_mode; default: from the hosts), ``migration`` (kafka_zookeeper_migration),
    ``kraft_quorum`` (kafka_kraft_quorum).
    """
    errors: list[str] = []
    for rule in RULES:
        errors.extend(rule(cluster))
    return errors + hosts_rules.soft_messages(cluster)[0]


def kafka_preflight_warnings(cluster: Cluster) -> list[str]:
    """Messages of the rules a policy switch turned into warnings (kafka_preflight_rack_policy: warn)."""
    return hosts_rules.soft_messages(cluster)[1]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kafka_preflight_errors": kafka_preflight_errors,
                "kafka_preflight_warnings": kafka_preflight_warnings,
                "kafka_jvm_size_mb": jvm_size_mb}
