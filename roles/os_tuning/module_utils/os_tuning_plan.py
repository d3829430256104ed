# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tuning plan: what each kernel/NIC setting is now and what it should be.

`build_plan(host, config)` returns a list of items (plain dicts, JSON-ready):
  id, kind, target   what is tuned ("sysctl", "irq", "rings", "channels", "rps", "xps", ...)
  current, desired   text as the kernel shows it
  state              "ok" (already right), "change", "blocked" (cannot be written here,
                     e.g. read-only /proc/sys in a container) or "skip" (not applicable)
  reason             why blocked/skipped, or a note
  action             how to apply: {"write": path, "value": v} | {"writes": [[path, v], ...]}
                     | {"run": argv} | {"fstab": mount point, "run": argv}
Nothing here writes; `os_tuning_apply` does.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

try:
    from ansible.module_utils.os_tuning_sysfs import (
        Host, Nic, Topology, cpumask, disk_of, format_cpulist, parse_cpulist,
        parse_cpumask, parse_interrupts, parse_mounts, parse_scheduler, physical_nics)
except ImportError:  # installed on a host as plain modules, or imported by the unit tests
    from os_tuning_sysfs import (  # type: ignore[no-redef]
        Host, Nic, Topology, cpumask, disk_of, format_cpulist, parse_cpulist,
        parse_cpumask, parse_interrupts, parse_mounts, parse_scheduler, physical_nics)

Item = Dict[str, Any]
STATE_FILE = "run/kafka-kit/os-tuning-state.json"
IRQBALANCE_ENV = "run/kafka-kit/irqbalance.env"


def item(kind: str, target: str, current: Any, desired: Any, action: Optional[Dict[str, Any]],
         same: Optional[bool] = None, reason: str = "") -> Item:
    current_text = "" if current is None else str(current)
    desired_text = str(desired)
    if same is None:
        same = current_text.split() == desired_text.split()
    return {"id": "%s:%s" % (kind, target), "kind": kind, "target": target,
            "current": current_text, "desired": desired_text,
            "state": "ok" if same else "change", "reason": reason, "action": action}


def block_unwritable(host: Host, entry: Item) -> Item:
    """Mark a pending write that the host forbids (read-only /proc/sys, /proc/irq, /sys)."""
    action = entry.get("action") or {}
    paths = [action["write"]] if "write" in action else [p for p, _v in action.get("writes", [])]
    if entry["state"] == "change" and paths and not all(host.writable(p) for p in paths):
        entry["state"] = "blocked"
        entry["reason"] = "read-only here (container or missing file): %s" % paths[0]
    return entry


def load_state(host: Host) -> Dict[str, Any]:
    try:
        return json.loads(host.read(STATE_FILE, "{}") or "{}")
    except ValueError:
        return {}


# --- sysctl -----------------------------------------------------------------------------

def effective_sysctl(host: Host, config: Dict[str, Any]) -> Dict[str, str]:
    """Desired sysctl values; keys in sysctl_raise_only never lower what the kernel has
    (element-wise for vectors such as tcp_rmem), so a newer kernel's larger default stays."""
    raise_only = set(config.get("sysctl_raise_only", []))
    result: Dict[str, str] = {}
    for key, value in sorted(config.get("sysctl", {}).items()):
        desired = str(value).split()
        current = (host.read("proc/sys/" + key.replace(".", "/")) or "").split()
        if key in raise_only and len(current) == len(desired) and all(
                w.isdigit() for w in current + desired):
            desired = [str(max(int(c), int(d))) for c, d in zip(current, desired)]
        result[key] = " ".join(desired)
    return result


def plan_sysctl(host: Host, config: Dict[str, Any]) -> List[Item]:
    items = []
    for key, value in effective_sysctl(host, config).items():
        path = "proc/sys/" + key.replace(".", "/")
        current = host.read(path)
        entry = item("sysctl", key, current, value, {"write": path, "value": value})
        if current is None:
            entry.update(state="skip", reason="this kernel has no %s" % key)
        items.append(block_unwritable(host, entry))
    return items


# --- NICs -------------------------------------------------------------------------------

def plan_nic(host: Host, nic: Nic, topo: Topology, config: Dict[str, Any],
             refused: List[int]) -> List[Item]:
    items: List[Item] = []
    local_cores = topo.physical_cores(None if nic.numa_node < 0 else [nic.numa_node]) \
        or topo.physical_cores()
    if config.get("nic_rings", True):
        rings = nic.rings
        if rings.get("max") and rings.get("current"):
            keys = [k for k in ("RX", "TX") if k in rings["max"] and k in rings["current"]]
            cur = " ".join("%s %d" % (k.lower(), rings["current"][k]) for k in keys)
            want = " ".join("%s %d" % (k.lower(), rings["max"][k]) for k in keys)
            items.append(item("rings", nic.name, cur, want,
                              {"run": ["ethtool", "-G", nic.name] + want.split()},
                              reason="ring buffers to the hardware maximum"))
        else:
            items.append(item("rings", nic.name, "unknown", "max", None, same=False,
                              reason="ethtool -g not supported by %s" % nic.driver))
            items[-1]["state"] = "skip"
    combined = nic.channels.get("max", {}).get("Combined")
    keep = None  # queues left after ethtool -L; the IRQs of removed queues are not planned
    if config.get("nic_channels", True):
        if combined:
            want_ch = min(combined, len(local_cores))
            cur_ch = nic.channels.get("current", {}).get("Combined")
            keep = want_ch
            items.append(item("channels", nic.name, "combined %s" % cur_ch, "combined %d" % want_ch,
                              {"run": ["ethtool", "-L", nic.name, "combined", str(want_ch)]},
                              reason="min(driver max %d, %d physical cores of NUMA node %d)"
                              % (combined, len(local_cores), nic.numa_node)))
        else:
            entry = item("channels", nic.name, "n/a", "n/a", None,
                         reason="no combined channels reported by ethtool -l")
            entry["state"] = "skip"
            items.append(entry)
    if config.get("irq_affinity", True):
        items += plan_irqs(host, nic, topo, refused, keep)
    if config.get("rps_xps", True):
        items += plan_rps_xps(host, nic, topo, local_cores, config)
    return items


def plan_irqs(host: Host, nic: Nic, topo: Topology, refused: List[int],
              keep: Optional[int] = None) -> List[Item]:
    """Queue IRQ i -> i-th CPU of Topology.irq_order (wrapping when queues outnumber CPUs)."""
    order = topo.irq_order(nic.numa_node)
    items = []
    if not nic.queue_irqs:
        entry = item("irq", nic.name, "", "", None, reason="no queue IRQs recognized (driver %s, "
                     "msi_irqs %s)" % (nic.driver, format_cpulist(nic.msi_irqs) or "none"))
        entry["state"] = "skip"
        return [entry]
    for position, (_queue, irq, label) in enumerate(nic.queue_irqs):
        if keep is not None and position >= keep:
            entry = item("irq", "%d %s" % (irq, label), host.read("proc/irq/%d/smp_affinity_list"
                                                                  % irq), "-", None, same=True,
                         reason="queue removed by ethtool -L combined %d" % keep)
            items.append(dict(entry, state="skip"))
            continue
        cpu = order[position % len(order)]
        path = "proc/irq/%d/smp_affinity_list" % irq
        current = host.read(path)
        entry = item("irq", "%d %s" % (irq, label), current, str(cpu), {"write": path, "value": str(cpu)},
                     same=parse_cpulist(current) == [cpu],
                     reason="node %d, %s core" % (topo.node_of[cpu],
                                                  "physical" if topo.is_primary(cpu) else "sibling"))
        if entry["state"] == "change" and irq in refused:
            entry.update(state="skip", reason="kernel-managed IRQ: affinity write refused (EIO)")
        items.append(block_unwritable(host, entry))
    return items


def plan_rps_xps(host: Host, nic: Nic, topo: Topology, local_cores: List[int],
                 config: Dict[str, Any]) -> List[Item]:
    """RPS/RFS/XPS per networking/scaling.rst, only where hardware queues are fewer than the
    local physical cores (otherwise RSS already spreads the load and RPS only adds IPIs)."""
    rx, tx = nic.rx_queues, nic.tx_queues
    if not rx or len(rx) >= len(local_cores):
        return []
    local = topo.local_cpus(nic.numa_node)
    items = []
    entries = int(config.get("rps_sock_flow_entries", 32768))
    path = "proc/sys/net/core/rps_sock_flow_entries"
    items.append(block_unwritable(host, item("sysctl", "net.core.rps_sock_flow_entries",
                                             host.read(path), entries,
                                             {"write": path, "value": str(entries)},
                                             reason="RFS table (scaling.rst)")))
    for queue in rx:
        base = "sys/class/net/%s/queues/%s/" % (nic.name, queue)
        mask = cpumask(local)
        cur = host.read(base + "rps_cpus")
        items.append(block_unwritable(host, item(
            "rps", "%s/%s" % (nic.name, queue), cur, mask, {"write": base + "rps_cpus", "value": mask},
            same=parse_cpumask(cur) == parse_cpumask(mask), reason="%d rx queues < %d cores"
            % (len(rx), len(local_cores)))))
        flows = str(entries // len(rx))
        items.append(block_unwritable(host, item(
            "rfs", "%s/%s" % (nic.name, queue), host.read(base + "rps_flow_cnt"), flows,
            {"write": base + "rps_flow_cnt", "value": flows})))
    for index, queue in enumerate(tx):
        base = "sys/class/net/%s/queues/%s/" % (nic.name, queue)
        cpus = [c for n, c in enumerate(local) if n % len(tx) == index]
        if not cpus:
            continue
        mask = cpumask(cpus)
        cur = host.read(base + "xps_cpus")
        items.append(block_unwritable(host, item(
            "xps", "%s/%s" % (nic.name, queue), cur, mask, {"write": base + "xps_cpus", "value": mask},
            same=parse_cpumask(cur) == parse_cpumask(mask))))
    return items


# --- memory, CPU frequency, disks -------------------------------------------------------

def plan_thp(host: Host, mode: str) -> List[Item]:
    items = []
    for knob in ("enabled", "defrag"):
        path = "sys/kernel/mm/transparent_hugepage/" + knob
        current, choices = parse_scheduler(host.read(path))
        if current is None or mode not in choices:
            continue
        items.append(block_unwritable(host, item("thp", knob, current, mode,
                                                 {"write": path, "value": mode})))
    return items


def plan_governor(host: Host, topo: Topology, governor: str) -> List[Item]:
    paths, current = [], {}
    for cpu in topo.cpus:
        base = "sys/devices/system/cpu/cpu%d/cpufreq/" % cpu
        available = (host.read(base + "scaling_available_governors") or "").split()
        if governor in available:
            paths.append(base + "scaling_governor")
            gov = host.read(base + "scaling_governor") or "?"
            current.setdefault(gov, []).append(cpu)
    if not paths:
        return []
    cur = " ".join("%s:%s" % (g, format_cpulist(c)) for g, c in sorted(current.items()))
    want = "%s:%s" % (governor, format_cpulist(sum(current.values(), [])))
    return [block_unwritable(host, item("governor", "cpufreq", cur, want,
                                        {"writes": [[p, governor] for p in paths]}))]


def data_disks(host: Host, config: Dict[str, Any]) -> Dict[str, str]:
    """Data disks named in data_devices or found under data_mounts -> why they are listed."""
    disks = {d: "listed" for d in config.get("data_devices", [])}
    mounts = parse_mounts(host.read("proc/mounts"))
    for point in config.get("data_mounts", []):
        if point in mounts:
            disk = disk_of(host, mounts[point][0])
            if disk:
                disks.setdefault(disk, "holds " + point)
    return disks


def plan_io_scheduler(host: Host, config: Dict[str, Any]) -> List[Item]:
    wanted = config.get("io_scheduler") or {}
    items = []
    for disk, why in sorted(data_disks(host, config).items()):
        path = "sys/block/%s/queue/scheduler" % disk
        current, choices = parse_scheduler(host.read(path))
        kind = "nvme" if disk.startswith("nvme") else (
            "hdd" if host.read("sys/block/%s/queue/rotational" % disk) == "1" else "ssd")
        want = wanted.get(kind)
        if not want or current is None:
            continue
        entry = item("scheduler", disk, current, want, {"write": path, "value": want},
                     reason="%s, %s" % (kind, why))
        if want not in choices:
            entry.update(state="skip", reason="%s not offered by the kernel (%s)" % (want, choices))
        items.append(block_unwritable(host, entry))
    return items


def plan_noatime(host: Host, config: Dict[str, Any]) -> List[Item]:
    mounts = parse_mounts(host.read("proc/mounts"))
    items = []
    for point in config.get("data_mounts", []):
        if point not in mounts:
            continue
        opts = mounts[point][1]
        entry = item("noatime", point, ",".join(o for o in opts if "atime" in o) or "(default)",
                     "noatime", {"fstab": point, "run": ["mount", "-o", "remount,noatime", point]},
                     same="noatime" in opts)
        if entry["state"] == "change" and not config.get("noatime_remount", False):
            entry.update(state="skip", reason="report only: set os_tuning_noatime_remount to change")
        items.append(entry)
    return items


# --- the whole plan ---------------------------------------------------------------------

def build_plan(host: Host, config: Dict[str, Any]) -> List[Item]:
    topo = Topology(host)
    state = load_state(host)
    refused = [int(i) for i in state.get("refused_irqs", [])]
    items: List[Item] = []
    if config.get("sysctl"):
        items += plan_sysctl(host, config)
    if config.get("thp"):
        items += plan_thp(host, config["thp"])
    if config.get("cpu_governor"):
        items += plan_governor(host, topo, config["cpu_governor"])
    if config.get("io_scheduler"):
        items += plan_io_scheduler(host, config)
    if config.get("noatime", True):
        items += plan_noatime(host, config)
    if config.get("nic", True):
        interrupts = parse_interrupts(host.read("proc/interrupts"))
        queue_irqs: List[int] = []
        for name in config.get("nics") or physical_nics(host):
            if not host.exists("sys/class/net/" + name):
                items.append(dict(item("nic", name, "absent", "present", None, same=False),
                                  state="skip", reason="no such interface"))
                continue
            nic = Nic(host, name, interrupts)
            queue_irqs += [irq for _q, irq, _l in nic.queue_irqs]
            items += plan_nic(host, nic, topo, config, refused)
        if config.get("irqbalance_ban") and config.get("irq_affinity", True):
            text = 'IRQBALANCE_ARGS="%s"\n' % " ".join("--banirq=%d" % i for i in sorted(queue_irqs))
            items.append(item("irqbalance", "banned IRQs", host.read(IRQBALANCE_ENV, ""),
                              text.strip(), {"write": IRQBALANCE_ENV, "value": text},
                              reason="irqbalance leaves the pinned queue IRQs alone"))
    return items


def summary(items: List[Item]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for entry in items:
        counts[entry["state"]] = counts.get(entry["state"], 0) + 1
    return counts
