# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only view of /proc and /sys (and ethtool) under a root path.

Every read of the planner goes through `Host`, so unit tests point it at a recorded
fixture tree (``tests/os_tuning/fixtures/<machine>/``) and the real tool at ``/``.
Writes also go through `Host` (root-relative), so a test can never touch the machine
that runs it. Standard library only: this file is installed on the hosts as is.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Callable, Dict, List, Optional, Tuple

Runner = Callable[[List[str]], Tuple[int, str, str]]


def run_command(argv: List[str]) -> Tuple[int, str, str]:
    """Run a command, return (rc, stdout, stderr); a missing binary is rc 127."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


class Host:
    """Files of a host below `root`; ethtool answers from the host or from recorded text."""

    def __init__(self, root: str = "/", runner: Optional[Runner] = None) -> None:
        self.root = root
        self.runner = runner or run_command

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel.lstrip("/"))

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel))

    def read(self, rel: str, default: Optional[str] = None) -> Optional[str]:
        try:
            with open(self.path(rel), encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return default

    def listdir(self, rel: str) -> List[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def writable(self, rel: str) -> bool:
        """False on a read-only mount (containers) or a missing file."""
        return os.access(self.path(rel), os.W_OK)

    def write(self, rel: str, value: str) -> None:
        with open(self.path(rel), "w", encoding="utf-8") as handle:
            handle.write(value)

    def ethtool(self, flag: str, nic: str) -> Optional[str]:
        """`ethtool -g|-l NIC` output; under a fixture root the recorded ethtool/NIC-g.txt."""
        if self.root != "/":
            return self.read("ethtool/%s%s.txt" % (nic, flag))
        rc, out, _err = self.runner(["ethtool", flag, nic])
        return out if rc == 0 else None


# --- CPU and NUMA topology --------------------------------------------------------------

def parse_cpulist(text: Optional[str]) -> List[int]:
    """'0-11,24-35' -> [0..11, 24..35]."""
    cpus: List[int] = []
    for part in (text or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            cpus.extend(range(int(low), int(high) + 1))
        else:
            cpus.append(int(part))
    return sorted(set(cpus))


def format_cpulist(cpus: List[int]) -> str:
    """[0,1,2,5] -> '0-2,5'."""
    out: List[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else "%d-%d" % (ordered[i], ordered[j]))
        i = j + 1
    return ",".join(out)


def cpumask(cpus: List[int]) -> str:
    """CPUs as the kernel's cpumask text: 32-bit hex groups separated by commas."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    groups = []
    while True:
        groups.append("%08x" % (value & 0xFFFFFFFF))
        value >>= 32
        if not value:
            break
    return ",".join(reversed(groups))


def parse_cpumask(text: Optional[str]) -> int:
    return int((text or "0").replace(",", "") or "0", 16)


class Topology:
    """Online CPUs with their NUMA node, physical core and hyperthread siblings."""

    def __init__(self, host: Host) -> None:
        base = "sys/devices/system/cpu"
        self.cpus = parse_cpulist(host.read(base + "/online")) or [0]
        self.node_of: Dict[int, int] = {}
        for name in host.listdir("sys/devices/system/node"):
            if re.match(r"^node\d+$", name):
                for cpu in parse_cpulist(host.read("sys/devices/system/node/%s/cpulist" % name)):
                    self.node_of[cpu] = int(name[4:])
        self.core_of: Dict[int, Tuple[int, int]] = {}
        self.siblings: Dict[int, List[int]] = {}
        for cpu in self.cpus:
            topo = "%s/cpu%d/topology/" % (base, cpu)
            package = int(host.read(topo + "physical_package_id", "0") or 0)
            core = int(host.read(topo + "core_id", str(cpu)) or cpu)
            self.core_of[cpu] = (package, core)
            self.siblings[cpu] = parse_cpulist(host.read(topo + "thread_siblings_list")) or [cpu]
            self.node_of.setdefault(cpu, 0)

    @property
    def nodes(self) -> List[int]:
        return sorted(set(self.node_of.values()))

    def is_primary(self, cpu: int) -> bool:
        """The first online thread of its physical core."""
        online = [c for c in self.siblings[cpu] if c in self.core_of]
        return cpu == min(online or [cpu])

    def physical_cores(self, nodes: Optional[List[int]] = None) -> List[int]:
        """First thread of each physical core of `nodes` (all nodes when None)."""
        return [c for c in self.cpus if self.is_primary(c) and (nodes is None or self.node_of[c] in nodes)]

    def irq_order(self, node: int) -> List[int]:
        """CPUs for queue IRQs: local physical cores, remote physical cores, local siblings,
        remote siblings. Node -1 (no locality known) makes every node local."""
        local = self.nodes if node < 0 or node not in self.nodes else [node]
        primary = [c for c in self.cpus if self.is_primary(c)]
        secondary = [c for c in self.cpus if not self.is_primary(c)]
        order: List[int] = []
        for group in (primary, secondary):
            order += [c for c in group if self.node_of[c] in local]
            order += [c for c in group if self.node_of[c] not in local]
        return order

    def local_cpus(self, node: int) -> List[int]:
        if node < 0 or node not in self.nodes:
            return list(self.cpus)
        return [c for c in self.cpus if self.node_of[c] == node]


# --- interrupts and NICs ----------------------------------------------------------------

def parse_interrupts(text: Optional[str]) -> Dict[int, str]:
    """/proc/interrupts -> {irq: action name} for numbered IRQs (the last column)."""
    irqs: Dict[int, str] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^\s*(\d+):\s.*?(\S+)\s*$", line)
        if match:
            irqs[int(match.group(1))] = match.group(2)
    return irqs


def queue_irq_patterns(nic: str, pci: Optional[str]) -> List["re.Pattern[str]"]:
    """Queue IRQ names by driver convention; group 1 is the queue index.

    ixgbe/igb/ixgbevf: eth0-TxRx-3 (eth0-rx-3/eth0-tx-3 when not paired);
    i40e/ice/iavf: i40e-eth0-TxRx-3; mlx5: mlx5_comp3@pci:0000:3b:00.0 (by PCI address,
    since mlx5 names no interface); bnxt_en: eth0-TxRx-3 as well.
    """
    name = re.escape(nic)
    patterns = [re.compile(r"^(?:[a-z0-9_]+-)?%s-(?:TxRx|txrx|rx|tx|fp)-(\d+)$" % name)]
    if pci:
        patterns.append(re.compile(r"^mlx[45]_comp(\d+)@pci:%s$" % re.escape(pci)))
    return patterns


class Nic:
    """A physical NIC: PCI address, NUMA node, MSI IRQs, queue IRQs, rings and channels."""

    def __init__(self, host: Host, name: str, interrupts: Dict[int, str]) -> None:
        base = "sys/class/net/%s/device/" % name
        self.name = name
        uevent = host.read(base + "uevent", "") or ""
        slot = re.search(r"^PCI_SLOT_NAME=(\S+)$", uevent, re.M)
        self.pci = slot.group(1) if slot else None
        driver = re.search(r"^DRIVER=(\S+)$", uevent, re.M)
        self.driver = driver.group(1) if driver else "unknown"
        self.numa_node = int(host.read(base + "numa_node", "-1") or -1)
        msi = host.listdir(base + "msi_irqs")
        self.msi_irqs = sorted(int(i) for i in msi if i.isdigit())
        self.queue_irqs = self._queue_irqs(interrupts)
        self.rings = parse_ethtool(host.ethtool("-g", name))
        self.channels = parse_ethtool(host.ethtool("-l", name))
        queues = host.listdir("sys/class/net/%s/queues" % name)
        self.rx_queues = sorted(q for q in queues if q.startswith("rx-"))
        self.tx_queues = sorted(q for q in queues if q.startswith("tx-"))

    def _queue_irqs(self, interrupts: Dict[int, str]) -> List[Tuple[int, int, str]]:
        """(queue index, irq, name) sorted by queue; limited to msi_irqs when known."""
        found = []
        for irq, label in interrupts.items():
            if self.msi_irqs and irq not in self.msi_irqs:
                continue
            for pattern in queue_irq_patterns(self.name, self.pci):
                match = pattern.match(label)
                if match:
                    found.append((int(match.group(1)), irq, label))
                    break
        return sorted(found)


def parse_ethtool(text: Optional[str]) -> Dict[str, Dict[str, int]]:
    """`ethtool -g`/`-l` -> {'max': {'RX': 4096, ...}, 'current': {...}}; 'n/a' is left out."""
    result: Dict[str, Dict[str, int]] = {}
    section = None
    for line in (text or "").splitlines():
        lower = line.strip().lower()
        if lower.startswith("pre-set maximums"):
            section = "max"
        elif lower.startswith("current hardware settings"):
            section = "current"
        elif section and ":" in line:
            key, _sep, value = line.partition(":")
            value = value.strip()
            if value.isdigit():
                result.setdefault(section, {})[key.strip()] = int(value)
    return result


def physical_nics(host: Host) -> List[str]:
    """Interfaces backed by a PCI device (veth, bridges, bonds and lo have none)."""
    names = []
    for name in host.listdir("sys/class/net"):
        uevent = host.read("sys/class/net/%s/device/uevent" % name) or ""
        if "PCI_SLOT_NAME=" in uevent:
            names.append(name)
    return names


# --- block devices and mounts -----------------------------------------------------------

def parse_mounts(text: Optional[str]) -> Dict[str, Tuple[str, List[str]]]:
    """/proc/mounts -> {mount point: (source, options)}; the last mount on a point wins."""
    mounts: Dict[str, Tuple[str, List[str]]] = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts[fields[1].replace("\\040", " ")] = (fields[0], fields[3].split(","))
    return mounts


def disk_of(host: Host, source: str) -> Optional[str]:
    """/dev/nvme0n1p1 -> nvme0n1; a whole disk -> itself; None when not a plain disk."""
    name = os.path.basename(source)
    disks = host.listdir("sys/block")
    if name in disks:
        return name
    for disk in disks:
        if host.exists("sys/block/%s/%s/partition" % (disk, name)):
            return disk
    return None


def parse_scheduler(text: Optional[str]) -> Tuple[Optional[str], List[str]]:
    """'[none] mq-deadline kyber' -> ('none', ['none', 'mq-deadline', 'kyber'])."""
    words = (text or "").split()
    current = next((w.strip("[]") for w in words if w.startswith("[")), None)
    return current, [w.strip("[]") for w in words]
