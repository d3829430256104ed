"""Preflight rules about where the cluster lands: ports, addresses, racks, disks, co-location.

These rules join the table of ``kafka_preflight.py`` (``RULES`` there runs them too); they live
here to keep each module short. Like the rules there, each takes the cluster dict built by
roles/kafka/tasks/preflight.yml and returns messages naming the host, the variable and the fix.
Most read what the read-only probes found on the hosts (own addresses, listening ports); the
inventory-wide check of hosts outside the Kafka groups (``kafka_preflight_orphans``) runs on
localhost from playbooks/preflight.yml, over every host's hostvars.

No Ansible import at module level: pytest imports the file directly (tests/unit/test_preflight.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Host = dict[str, Any]
Cluster = dict[str, Any]

# Host-level variables that only a Kafka host carries: a host that has one of them but sits in
# no Kafka group is almost always a mistyped group name (kafka_brokers), i.e. a host the kafka
# play would silently skip. Group-wide variables (kafka_listener_address in group_vars/all) do
# not count: every host of the inventory has them.
KAFKA_HOST_VARIABLES = ("kafka_node_id", "kafka_rack", "kafka_server_properties_host")
# Listener values of server.properties: NAME://host:port, host empty, a name, IPv4 or [IPv6].
_LISTENER = re.compile(r"^\s*([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:,]*):([^,]*)\s*$")
RACK_POLICIES = ("refuse", "warn")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _names(hosts: Iterable[str]) -> str:
    return ", ".join(sorted(hosts))


def _brokers(cluster: Cluster) -> list[Host]:
    return [h for h in cluster["hosts"] if "broker" in h.get("roles", [])]


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of an IP literal (brackets and %zone stripped), else None (a name)."""
    text = str(value or "").strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _rack(h: Host) -> str:
    """The host's broker.rack: set in kafka_server_properties(_host), else kafka_rack."""
    props = h.get("properties") or {}
    return str(props.get("broker.rack", h.get("rack")) or "").strip()


def listener_ports(value: Any) -> list[tuple[str, str]]:
    """(listener name, port as written) of a listeners / advertised.listeners value."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    out = []
    for item in items:
        m = _LISTENER.match(str(item))
        if m:
            out.append((m.group(1), m.group(3).strip()))
        elif str(item).strip():
            out.append((str(item).strip(), ""))
    return out


def listening_ports(ss_output: str) -> list[int]:
    """TCP ports in LISTEN state from ``ss -Hltn`` output (local address in column 4)."""
    ports = set()
    for line in str(ss_output or "").splitlines():
        cols = line.split()
        if len(cols) >= 4:
            port = _int(cols[3].rsplit(":", 1)[-1])
            if port is not None:
                ports.add(port)
    return sorted(ports)


def resolved(getent_output: str, own_name: Any = None) -> dict[str, Any]:
    """What one host resolves, from the output of roles/kafka/tasks/preflight.yml's resolver run:
    a line ``== NAME`` per name, then ``getent ahosts NAME``'s lines (``ADDRESS TYPE [NAME]``).

    Returns ``resolves`` ({name: whether it resolved to any address}) and ``listener_resolved``
    (the addresses ``own_name``, this host's listener address, resolved to). A name that resolves
    to several addresses (IPv4 and IPv6, several NICs) resolves: one run for all names, not one
    getent module run per name (13 hosts made that 169 module runs per converge)."""
    found: dict[str, set[str]] = {}
    name = None
    for line in str(getent_output or "").splitlines():
        if line.startswith("== "):
            name = line[3:].strip()
            found.setdefault(name, set())
        elif name is not None and (cols := line.split()):
            found[name].add(cols[0])
    return {"resolves": {n: bool(a) for n, a in found.items()},
            "listener_resolved": sorted(found.get(str(own_name), ())) if own_name else []}


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

def check_port_range(cluster: Cluster) -> list[str]:
    """kafka_broker_port, kafka_controller_port and listener ports in properties are 1-65535."""
    errors = []
    for h in cluster["hosts"]:
        for var in ("broker_port", "controller_port"):
            port = _int(h.get(var))
            if port is None or not 1 <= port <= 65535:
                errors.append(f"{h['name']}: kafka_{var}={h.get(var)!r} is not a TCP port; set an "
                              f"integer from 1 to 65535 (defaults: broker 9092, controller 9093).")
        props = h.get("properties") or {}
        for key in ("listeners", "advertised.listeners"):
            if key not in props:
                continue
            for name, raw in listener_ports(props[key]):
                port = _int(raw)
                if port is None or not 1 <= port <= 65535:
                    errors.append(f"{h['name']}: {key} entry {name} has port {raw!r} (set in "
                                  "kafka_server_properties): write NAME://host:PORT with a port "
                                  "from 1 to 65535.")
    return errors


def _needed_ports(h: Host) -> dict[int, str]:
    """The ports this host's Kafka will listen on, each with the variable that sets it."""
    roles = h.get("roles", [])
    ports = {}
    if "broker" in roles:
        ports[_int(h.get("broker_port"))] = "kafka_broker_port"
    if "controller" in roles:
        ports[_int(h.get("controller_port"))] = "kafka_controller_port"
    if h.get("listeners") is not None:  # the role's listeners (kafka_listeners, the profile's)
        ports = {_int(p): ports.get(_int(p), f"kafka_listeners ({name})")
                 for name, p in listener_ports(h["listeners"])}
    listeners = (h.get("properties") or {}).get("listeners")
    if listeners is not None:  # set by hand: these are the ports Kafka binds
        ports = {_int(p): "listeners (kafka_server_properties)" for _, p in listener_ports(listeners)}
    return {p: var for p, var in ports.items() if p is not None}


def check_ports_in_use(cluster: Cluster) -> list[str]:
    """On a host without Kafka yet, no other process listens on a port Kafka needs."""
    errors = []
    for h in cluster["hosts"]:
        if h.get("kafka_installed", True) or h.get("listening_ports") is None:
            continue  # Kafka's own service owns its ports once installed
        used = {_int(p) for p in h["listening_ports"]}
        for port, var in sorted(_needed_ports(h).items()):
            if port in used:
                errors.append(f"{h['name']}: {var}={port} but another process already listens on "
                              f"port {port} (ss -ltn) and Kafka is not installed there yet: Kafka "
                              f"could not bind it. Stop that process, or set {var.split()[0]} to "
                              "a free port.")
    return errors


def check_listener_address(cluster: Cluster) -> list[str]:
    """kafka_listener_address (or the address it resolves to) and the bind address are the host's."""
    errors = []
    for h in cluster["hosts"]:
        own = {a for a in (_ip(x) for x in h.get("addresses") or []) if a is not None}
        if not own:
            continue  # no address facts: nothing to compare with
        addr = str(h.get("listener_address") or "").strip()
        ip = _ip(addr)
        seen = [ip] if ip else [a for a in (_ip(x) for x in h.get("listener_resolved") or []) if a]
        mine = lambda a: a in own or a.is_loopback  # noqa: E731
        if addr and seen and not any(mine(a) for a in seen) and not h.get("allow_foreign_address"):
            via = "" if ip else f" (it resolves there to {', '.join(map(str, seen))})"
            errors.append(f"{h['name']}: kafka_listener_address={addr}{via} is not an address of "
                          f"this host (it has {', '.join(sorted(map(str, own)))}): other hosts "
                          "would reach another machine. Set the host's own data-network address, "
                          "or, behind NAT where the advertised address is not local, set "
                          "kafka_preflight_allow_foreign_listener_address: true for this host.")
        bind = _ip(h.get("bind_address"))
        if bind is not None and not bind.is_unspecified and not mine(bind):
            errors.append(f"{h['name']}: kafka_listener_bind_address={h.get('bind_address')} is not "
                          "an address of this host; Kafka cannot bind it. Use one of "
                          f"{', '.join(sorted(map(str, own)))} or leave it empty (all interfaces).")
        # Per-listener addresses (kafka_listener_addresses, bind_address: advertised): the
        # role's listeners bind them and advertise them; the ones other than the above.
        for key, var in (("listeners", "bind"), ("advertised_listeners", "advertise")):
            if var == "advertise" and h.get("allow_foreign_address"):
                continue
            value = h.get(key) or []
            for item in value if isinstance(value, list) else str(value).split(","):
                m = _LISTENER.match(str(item))
                a = _ip(m.group(2)) if m else None
                if a is None or a.is_unspecified or mine(a) or a in (ip, bind):
                    continue
                errors.append(f"{h['name']}: listener {m.group(1)} would {var} {a}, which is not an "  # type: ignore[union-attr]
                              f"address of this host (it has {', '.join(sorted(map(str, own)))}); "
                              f"set kafka_listener_addresses[{m.group(1)}] (or the listener's "  # type: ignore[union-attr]
                              "bind_address in kafka_listeners) to one of its addresses"
                              + (", or kafka_preflight_allow_foreign_listener_address: true "
                                 "behind NAT." if var == "advertise" else "."))
    return errors


def check_racks(cluster: Cluster) -> list[str]:
    """broker.rack is set on every broker or on none."""
    brokers = _brokers(cluster)
    bare = [h["name"] for h in brokers if not _rack(h)]
    if bare and len(bare) < len(brokers):
        return [f"{_names(bare)}: no kafka_rack while the other brokers have one; Kafka's "
                "rack-aware placement expects a rack on every broker, and the copies of a "
                "partition are not spread as planned otherwise. Set kafka_rack on these hosts, "
                "or remove it from all."]
    return []


def check_rack_count(cluster: Cluster) -> list[str]:
    """With racks, there are at least as many racks as the replication factor."""
    brokers = _brokers(cluster)
    racks = sorted({_rack(h) for h in brokers if _rack(h)})
    if not racks or any(not _rack(h) for h in brokers):
        return []  # no racks, or racks on some brokers only (check_racks says so)
    wants: dict[str, int] = {}
    for key, default in (("default.replication.factor", 1), ("offsets.topic.replication.factor", 3),
                         ("transaction.state.log.replication.factor", 3)):
        rfs = [_int((h.get("properties") or {}).get(key, default)) for h in brokers]
        wants[key] = max((r for r in rfs if r is not None), default=0)
    for i, t in enumerate(cluster.get("topics") or []):
        if isinstance(t, dict) and _int(t.get("replication_factor")) is not None:
            wants[f"kafka_topics_list[{i}] ({t.get('name')}) replication_factor"] = \
                _int(t["replication_factor"])  # type: ignore[assignment]
    over = {k: v for k, v in wants.items() if v > len(racks)}
    if not over:
        return []
    what = ", ".join(f"{k}={v}" for k, v in over.items())
    return [f"the brokers span {len(racks)} rack(s) ({', '.join(racks)}) but {what}: some "
            "partitions keep two copies in one rack, so one rack failure takes both (acks=all "
            "writes to them stop below min.insync.replicas). Put brokers in "
            f"{max(over.values())} racks (kafka_rack), or accept the risk with "
            "kafka_preflight_rack_policy: warn."]


def check_rack_policy(cluster: Cluster) -> list[str]:
    policy = cluster.get("rack_policy", "refuse")
    if policy not in RACK_POLICIES:
        return [f"kafka_preflight_rack_policy={policy!r}; set refuse (the default) or warn."]
    return []


def check_jbod_version(cluster: Cluster) -> list[str]:
    """Several log dirs in KRaft (or for a migration to it) need Kafka 3.7 or newer."""
    # From the lowest version the other rules allow: KRaft from 3.3, a migration from 3.6.
    modes = {str(h.get("mode", "kraft")) for h in cluster["hosts"]}
    mode = cluster.get("mode") or ("zookeeper" if "zookeeper" in modes else "kraft")
    if cluster.get("migration"):
        lowest = (3, 6)
    elif mode == "kraft":
        lowest = (3, 3)
    else:
        return []  # ZooKeeper mode has always had JBOD
    bad = []
    for h in cluster["hosts"]:
        m = re.match(r"^\s*(\d+)\.(\d+)", str(h.get("version")))
        if m and lowest <= (int(m.group(1)), int(m.group(2))) < (3, 7) \
                and len(h.get("data_dirs") or []) > 1:
            bad.append(h["name"])
    if not bad:
        return []
    return [f"{_names(bad)}: several kafka_data_dirs (JBOD) with kafka_version below 3.7 in KRaft: KRaft handles several log dirs from "
            "3.7 (KIP-858; a ZooKeeper migration with JBOD too). Raise kafka_version, or list one "
            "log dir per host."]


RULES: list[Callable[[Cluster], list[str]]] = [
    check_port_range, check_ports_in_use, check_listener_address, check_racks, check_rack_policy,
    check_jbod_version,
]
# Rules whose messages become warnings instead of errors when the cluster's policy says so.
SOFT_RULES: dict[Callable[[Cluster], list[str]], str] = {check_rack_count: "rack_policy"}


def soft_messages(cluster: Cluster) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the rules that a policy switch can turn into warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    for rule, key in SOFT_RULES.items():
        (warnings if cluster.get(key) == "warn" else errors).extend(rule(cluster))
    return errors, warnings


def kafka_preflight_orphans(groups: Mapping[str, Iterable[str]], hostvars: Mapping[str, Any],
                            kafka_groups: Iterable[str]) -> list[str]:
    """Hosts with Kafka host variables (KAFKA_HOST_VARIABLES) that sit in no Kafka group."""
    members = {n for g in kafka_groups for n in (groups.get(g) or [])}
    errors = []
    for name in sorted(set(groups.get("all") or []) - members):
        hv = hostvars[name]
        found = [k for k in KAFKA_HOST_VARIABLES if k in hv]
        if not found:
            continue
        own = sorted(g for g in (hv.get("group_names") or []) if g not in ("all", "ungrouped"))
        where = f"its groups: {', '.join(own)}" if own else "it is in no group"
        errors.append(f"{name}: sets {', '.join(found)} but is in none of the groups "
                      f"{', '.join(sorted(set(kafka_groups)))} ({where}), so no Kafka play "
                      "deploys it. A mistyped group name? List the host under kafka_broker or "
                      "kafka_controller, or remove its Kafka variables.")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kafka_preflight_orphans": kafka_preflight_orphans,
                "kafka_listening_ports": listening_ports,
                "kafka_preflight_resolved": resolved}
