"""Capacity on paper: the bounds a Kafka cluster puts on producer throughput (docs/capacity.md).

Every produced byte (on the wire, after compression) crosses the network and the disks a fixed
number of times, so each resource gives an upper bound on the cluster's producer throughput P:

- NIC in, per broker: producer traffic plus replica fetches it receives: ``RF * P / B``.
- NIC out, per broker: replica fetches it serves plus consumer reads: ``(RF - 1 + F) * P / B``
  for ``F`` consumer groups (training jobs) each reading everything once.
- Disks, per broker: every replica is written once (``RF * P / B``), and consumer reads that
  miss the page cache are read back: ``(1 - h) * F * P / B``.
- Broker CPU: ``cpu_mb_s_per_core`` per core of produce + replication + fetch traffic (an
  assumption to replace with a measured figure; :func:`scale_lab` makes one from the lab).

Partitions, producer processes and page-cache time follow from the target rate. ``python -m
pyclient.capacity --inventory inventories/prod`` reads the broker count, data disks,
replication factor and partitions from an inventory; hardware figures are options.
The library never prints; :func:`main` is the thin CLI.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

GB = 1e9
MB = 1e6


@dataclass(frozen=True)
class Cluster:
    brokers: int = 10
    cores: int = 24                   #: per broker
    nic_gbit: float = 10.0            #: per broker, each direction (full duplex)
    disks: int = 6                    #: data disks per broker (JBOD, one log dir each)
    disk_mb_s: float = 200.0          #: sequential MB/s per disk (assumption: 7.2k HDD)
    ram_gb: float = 128.0             #: per broker
    heap_gb: float = 8.0              #: Kafka heap (the rest, less ``os_reserve_gb``, is cache)
    os_reserve_gb: float = 4.0
    cpu_mb_s_per_core: float = 150.0  #: broker traffic MB/s one core handles (assumption)
    nic_efficiency: float = 0.95      #: usable share of the line rate (TCP/IP framing)


@dataclass(frozen=True)
class Workload:
    replication_factor: int = 3
    fanout: int = 1                   #: consumer groups reading every record (training jobs)
    cache_hit: float = 1.0            #: share of consumer reads served from the page cache
    partitions: int = 50
    partition_mb_s: float = 50.0      #: one partition's sustained produce rate (assumption)
    client_mb_s: float = 100.0        #: one producer process's rate (measure: make bench)
    consumer_lag_s: float = 60.0      #: how far behind the producers a consumer reads


@dataclass
class Bounds:
    """Producer throughput bounds, bytes/s on the wire (after compression)."""

    network_in: float
    network_out: float
    disk: float
    cpu: float
    binding: str = ""
    limit: float = 0.0
    target: float = 0.0                #: the share of the limit asked for (bytes/s)
    partitions_needed: int = 0
    producers_needed: int = 0
    page_cache_s: float = 0.0          #: seconds of produced data a broker's cache holds
    lag_served_from_cache: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bounds(c: Cluster, w: Workload, target_share: float = 0.7) -> Bounds:
    """Every bound, the binding one, and what reaching ``target_share`` of it takes."""
    if c.brokers < w.replication_factor:
        raise ValueError(f"replication factor {w.replication_factor} needs at least that many "
                         f"brokers, the cluster has {c.brokers}")
    if not 0 <= w.cache_hit <= 1 or not 0 < target_share <= 1:
        raise ValueError("cache_hit must be in [0, 1] and target_share in (0, 1]")
    rf, f, b = w.replication_factor, w.fanout, c.brokers
    nic = c.nic_gbit * 1e9 / 8 * c.nic_efficiency
    net_in = b * nic / rf
    net_out = b * nic / (rf - 1 + f) if rf - 1 + f > 0 else math.inf
    disk_bytes_per_p = rf + (1 - w.cache_hit) * f
    disk = b * c.disks * c.disk_mb_s * MB / disk_bytes_per_p
    # CPU: a broker moves RF*P/B in, (RF-1+F)*P/B out per second.
    cpu = b * c.cores * c.cpu_mb_s_per_core * MB / (rf + rf - 1 + f)
    named = {"network in": net_in, "network out": net_out, "disk": disk, "cpu": cpu}
    binding = min(named, key=lambda k: named[k])
    out = Bounds(net_in, net_out, disk, cpu, binding, named[binding])
    out.target = target_share * out.limit
    out.partitions_needed = max(math.ceil(out.target / (w.partition_mb_s * MB)), 1)
    out.producers_needed = max(math.ceil(out.target / (w.client_mb_s * MB)), 1)
    cache = max(c.ram_gb - c.heap_gb - c.os_reserve_gb, 0) * GB
    # Each broker writes RF * P / B into its page cache per second (leaders and followers).
    out.page_cache_s = cache / (rf * out.target / b) if out.target else math.inf
    out.lag_served_from_cache = w.consumer_lag_s <= out.page_cache_s
    if w.partitions < out.partitions_needed:
        out.notes.append(f"{w.partitions} partitions carry at most "
                         f"{w.partitions * w.partition_mb_s * MB / GB:.2f} GB/s at "
                         f"{w.partition_mb_s:g} MB/s each: declare >= {out.partitions_needed} "
                         "(partitions only grow; a multiple of the brokers keeps leaders even)")
    if not out.lag_served_from_cache:
        out.notes.append(f"consumers {w.consumer_lag_s:g} s behind read from disk (the cache holds "
                         f"{out.page_cache_s:.0f} s): count them with cache_hit < 1")
    if f > 1 and binding == "network out":
        out.notes.append(f"{f} training jobs reading the same corpus make NIC out the limit: "
                         "each job adds one copy of the producer traffic to it")
    return out


def scale_lab(lab_mb_s: float, lab_cores: float, replication_factor: int = 3,
              fanout: int = 0) -> float:
    """Broker MB/s per core implied by a lab run: the lab moved ``lab_mb_s`` of producer traffic
    with ``lab_cores`` cores for all brokers and the client together (so a lower bound)."""
    rf = replication_factor
    return lab_mb_s * (rf + rf - 1 + fanout) / lab_cores


# -- inventories ------------------------------------------------------------------------------

def _yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ValueError("reading an inventory needs PyYAML: pip install pyyaml") from e
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _hosts_of(group: str, node: Any) -> set[str]:
    """Hosts of ``group`` anywhere in an inventory tree (its children's hosts too)."""
    found: set[str] = set()
    if not isinstance(node, dict):
        return found
    for name, child in (node.get("children") or {}).items():
        if name == group:
            found |= _all_hosts(child)
        found |= _hosts_of(group, child)
    return found


def _all_hosts(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    hosts = set((node.get("hosts") or {}).keys())
    for child in (node.get("children") or {}).values():
        hosts |= _all_hosts(child)
    return hosts


def _gb(size: str) -> float:
    units = {"k": 1e-6, "m": 1e-3, "g": 1.0, "t": 1e3}
    s = str(size).strip().lower()
    return float(s[:-1]) * units[s[-1]] if s[-1] in units else float(s) / GB


def from_inventory(path: str | Path, cluster: Cluster = Cluster(),
                   workload: Workload = Workload()) -> tuple[Cluster, Workload]:
    """``cluster``/``workload`` with what the inventory declares: brokers (group kafka_broker),
    data disks (kafka_data_dirs), heap (kafka_heap_size), the largest declared topic's
    replication factor and partitions (kafka_topics_list)."""
    inv = Path(path)
    hosts = _yaml(inv / "hosts.yml")
    if hosts is None:
        raise FileNotFoundError(f"{inv / 'hosts.yml'}: no inventory there")
    brokers = len(_hosts_of("kafka_broker", hosts.get("all", hosts)))
    if not brokers:
        raise ValueError(f"{inv / 'hosts.yml'}: no hosts in group kafka_broker")
    gv = inv / "group_vars"
    merged: dict[str, Any] = {}
    for group in ("all", "kafka_broker"):
        for f in sorted((gv / group).glob("*.yml")) if (gv / group).is_dir() else []:
            merged.update(_yaml(f) or {})
    cluster = replace(cluster, brokers=brokers)
    if merged.get("kafka_data_dirs"):
        cluster = replace(cluster, disks=len(merged["kafka_data_dirs"]))
    if merged.get("kafka_heap_size"):
        cluster = replace(cluster, heap_gb=_gb(merged["kafka_heap_size"]))
    topics = [t for t in merged.get("kafka_topics_list") or [] if isinstance(t, dict)]
    if topics:
        big = max(topics, key=lambda t: int(t.get("partitions") or 0))
        workload = replace(workload, partitions=int(big.get("partitions") or workload.partitions),
                           replication_factor=int(big.get("replication_factor")
                                                  or workload.replication_factor))
    return cluster, workload


# -- CLI --------------------------------------------------------------------------------------

def report(c: Cluster, w: Workload, b: Bounds) -> str:
    rows = [("network in", "RF x P / B per NIC", b.network_in),
            ("network out", f"(RF-1+F) x P / B per NIC, F={w.fanout}", b.network_out),
            ("disk", f"(RF + (1-h) x F) x P / B per broker's disks, h={w.cache_hit:g}", b.disk),
            ("cpu", f"broker CPU at {c.cpu_mb_s_per_core:g} MB/s per core", b.cpu)]
    lines = [f"cluster: {c.brokers} brokers x {c.cores} cores, {c.nic_gbit:g} Gbit/s NIC, "
             f"{c.disks} x {c.disk_mb_s:g} MB/s disks, {c.ram_gb:g} GB RAM (heap {c.heap_gb:g} GB); "
             f"RF {w.replication_factor}, {w.partitions} partitions", "",
             "| bound | traffic | producer GB/s |", "|---|---|---|"]
    lines += [f"| {key}{' **(binding)**' if key == b.binding else ''} | {what} | {v / GB:.2f} |"
              for key, what, v in rows]
    lines += ["", f"target {b.target / b.limit:.0%} of the {b.binding} bound: "
              f"{b.target / GB:.2f} GB/s ({b.target / MB / 15:.0f}x the article's 15 MB/s)",
              f"  partitions needed at {w.partition_mb_s:g} MB/s each: {b.partitions_needed} "
              f"(declared {w.partitions})",
              f"  producer processes at {w.client_mb_s:g} MB/s each: {b.producers_needed}",
              f"  page cache holds {b.page_cache_s:.0f} s of produced data per broker"]
    lines += [f"  note: {n}" for n in b.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the capacity bounds of an inventory (or of the defaults: the article's cluster)."""
    ap = argparse.ArgumentParser(prog="python -m pyclient.capacity", description=main.__doc__)
    ap.add_argument("--inventory", help="inventory directory (hosts.yml, group_vars/)")
    d, dw = Cluster(), Workload()
    for name, val in list(asdict(d).items()) + list(asdict(dw).items()):
        ap.add_argument("--" + name.replace("_", "-"), type=type(val), default=None,
                        help=f"default {val} (the inventory's value where it declares one)")
    ap.add_argument("--target-share", type=float, default=0.7)
    ap.add_argument("--lab-mb-s", type=float, default=None,
                    help="a lab producer measurement (MB/s): sets --cpu-mb-s-per-core from it")
    ap.add_argument("--lab-cores", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        c, w = from_inventory(a.inventory) if a.inventory else (d, dw)
        given = {k: v for k, v in vars(a).items() if v is not None}
        if a.lab_mb_s is not None:
            given["cpu_mb_s_per_core"] = scale_lab(a.lab_mb_s, a.lab_cores, w.replication_factor)
        c = replace(c, **{k: given[k] for k in asdict(c) if k in given})
        w = replace(w, **{k: given[k] for k in asdict(w) if k in given})
        b = bounds(c, w, a.target_share)
    except (ValueError, FileNotFoundError) as e:
        print(f"capacity: {e}", file=sys.stderr)
        return 2
    if a.json:
        import json
        print(json.dumps({"cluster": asdict(c), "workload": asdict(w), "bounds": b.as_dict()},
                         indent=2))
    else:
        print(report(c, w, b))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
