"""Listener model of the kafka role: listeners as data, and every property derived from them.

The role's vars/main.yml calls these filters instead of nesting Jinja:

* ``kafka_cluster_hosts`` reads each Kafka host's identity and addresses from the inventory
  (``hostvars``) only, never from facts another host published at run time, so a play run with
  ``--limit`` renders exactly what a full run renders.
* ``kafka_listener_model`` turns ``kafka_listeners`` (or the security profile's default) into a
  checked list of listeners.
* ``kafka_listener_properties`` derives listeners, advertised.listeners, the protocol map, the
  controller and inter-broker listener names and the quorum voters of one host.
* ``kafka_migration_properties`` adds the ZooKeeper-to-KRaft migration keys.
* ``kafka_bootstrap`` lists host:port of the brokers (a listener) or of the controllers.
* ``kafka_directory_id``, ``kafka_initial_controllers`` and ``kafka_running_quorum``: the dynamic
  KRaft quorum (KIP-853) of a new cluster: each controller's metadata directory id, derived from
  the cluster id and node id (the same on every run and every host), the ``--initial-controllers``
  value of the storage format, and the quorum form a rendered server.properties runs.

A host's address on a listener: ``kafka_listener_addresses[<listener name>]`` (multi-NIC hosts:
a replication network beside the client network), else ``kafka_listener_address``, else
``ansible_host``, else the inventory name.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

Host = dict[str, Any]
Listener = dict[str, Any]


def _get(hv: Any, key: str, default: Any = None) -> Any:
    try:
        value = hv[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def kafka_cluster_hosts(hostvars: Mapping[str, Any], controllers: Sequence[str],
                        brokers: Sequence[str], broker_port: Any = 9092,
                        controller_port: Any = 9093) -> list[Host]:
    """Every Kafka host, controllers first then brokers (inventory order), as plain data.

    Only inventory variables are read (role defaults are invisible in hostvars, facts of other
    hosts are missing under --limit); the ports default to the role's.
    """
    hosts: list[Host] = []
    for name in list(dict.fromkeys(list(controllers) + list(brokers))):
        hv = hostvars[name]
        address = str(_get(hv, "kafka_listener_address", "") or _get(hv, "ansible_host", "")
                      or name).strip()
        roles = (["broker"] if name in brokers else []) + (["controller"] if name in controllers else [])
        addresses = _get(hv, "kafka_listener_addresses", {}) or {}
        if not isinstance(addresses, Mapping):
            raise AnsibleFilterError(f"{name}: kafka_listener_addresses must map listener names to "
                                     f"addresses, e.g. {{REPLICATION: 10.1.0.11}}; got {addresses!r}")
        hosts.append({
            "name": name,
            "node_id": _get(hv, "kafka_node_id"),
            "roles": roles,
            "address": address,
            "addresses": {str(k).upper(): str(v) for k, v in addresses.items()},
            "broker_port": int(_get(hv, "kafka_broker_port", broker_port)),
            "controller_port": int(_get(hv, "kafka_controller_port", controller_port)),
        })
    return hosts


def _default_listeners(profile: str, mechanism: str) -> list[Listener]:
    if profile == "plaintext":
        return [{"name": "PLAINTEXT", "port": "broker", "protocol": "PLAINTEXT"},
                {"name": "CONTROLLER", "port": "controller", "protocol": "PLAINTEXT"}]
    if profile == "secure":
        # SCRAM credentials live in the metadata log, which a controller reads only once the
        # quorum runs: the controller listener authenticates with TLS client certificates.
        return [{"name": "SASL_SSL", "port": "broker", "protocol": "SASL_SSL",
                 "sasl_mechanisms": [mechanism]},
                {"name": "CONTROLLER", "port": "controller", "protocol": "SSL"}]
    raise AnsibleFilterError(f"kafka_security_profile={profile!r}: use secure or plaintext")


def kafka_listener_model(listeners: Sequence[Mapping[str, Any]] | None, profile: str = "plaintext",
                         controller_listener: str = "CONTROLLER", inter_broker_listener: str = "",
                         client_listener: str = "", sasl_mechanism: str = "SCRAM-SHA-512"
                         ) -> dict[str, Any]:
    """Check and complete the listener list; name the controller, inter-broker, client listeners.

    ``listeners`` empty: the profile's default. Each listener: name (upper case), port (a number,
    or ``broker``/``controller`` for kafka_broker_port/kafka_controller_port), protocol, optional
    sasl_mechanisms (SASL_* only), bind_address ('' = all interfaces, ``advertised`` = the host's
    own address on that listener) or interface (a NIC name of the host).
    """
    source = list(listeners or []) or _default_listeners(profile, sasl_mechanism)
    out: list[Listener] = []
    for i, item in enumerate(source):
        where = f"kafka_listeners[{i}]"
        if not isinstance(item, Mapping):
            raise AnsibleFilterError(f"{where} must be a mapping with name, port and protocol; got {item!r}")
        name = str(item.get("name", "")).upper()
        if not _NAME.match(name):
            raise AnsibleFilterError(f"{where}.name={item.get('name')!r}: use letters, digits and _ "
                                     "(e.g. CLIENT, REPLICATION)")
        if name in (x["name"] for x in out):
            raise AnsibleFilterError(f"{where}.name={name} is listed twice; each listener needs its own name")
        protocol = str(item.get("protocol", "")).upper()
        if protocol not in PROTOCOLS:
            raise AnsibleFilterError(f"{where} ({name}).protocol={item.get('protocol')!r}: use one of "
                                     + ", ".join(PROTOCOLS))
        port = item.get("port", "broker")
        if str(port) not in ("broker", "controller"):
            try:
                port = int(port)
            except (TypeError, ValueError):
                raise AnsibleFilterError(f"{where} ({name}).port={port!r} is not a port number") from None
            if not 1 <= port <= 65535:
                raise AnsibleFilterError(f"{where} ({name}).port={port} is outside 1-65535")
        mechanisms = [str(m).upper() for m in (item.get("sasl_mechanisms") or [])]
        if protocol.startswith("SASL_"):
            mechanisms = mechanisms or [sasl_mechanism]
            bad = [m for m in mechanisms if m not in SASL_MECHANISMS]
            if bad:
                raise AnsibleFilterError(f"{where} ({name}).sasl_mechanisms: {bad} not supported; use "
                                         + ", ".join(SASL_MECHANISMS))
        elif mechanisms:
            raise AnsibleFilterError(f"{where} ({name}): sasl_mechanisms needs protocol SASL_SSL or "
                                     f"SASL_PLAINTEXT, not {protocol}")
        out.append({"name": name, "port": port, "protocol": protocol, "sasl_mechanisms": mechanisms,
                    "bind_address": str(item.get("bind_address", "") or ""),
                    "interface": str(item.get("interface", "") or "")})
    names = [x["name"] for x in out]
    controller = controller_listener.upper()
    if controller not in names:
        raise AnsibleFilterError(f"kafka_controller_listener_name={controller} is not among "
                                 f"kafka_listeners ({', '.join(names)})")
    broker_names = [n for n in names if n != controller]
    if not broker_names:
        raise AnsibleFilterError("kafka_listeners has no broker listener besides the controller "
                                 f"listener {controller}; add one (e.g. SASL_SSL on port 9092)")
    inter = (inter_broker_listener or broker_names[0]).upper()
    client = (client_listener or inter).upper()
    for var, value in (("kafka_inter_broker_listener_name", inter),
                       ("kafka_client_listener_name", client)):
        if value not in broker_names:
            raise AnsibleFilterError(f"{var}={value} is not a broker listener of kafka_listeners "
                                     f"({', '.join(broker_names)})")
    return {"listeners": out, "controller": controller, "inter_broker": inter, "client": client}


def _port(listener: Listener, host: Host) -> int:
    port = listener["port"]
    if port == "broker":
        return host["broker_port"]
    if port == "controller":
        return host["controller_port"]
    return int(port)


def _address(listener: Listener, host: Host) -> str:
    return host["addresses"].get(listener["name"], host["address"])


def _bind(listener: Listener, host: Host, bind_address: str, facts: Mapping[str, Any] | None) -> str:
    if listener["interface"]:
        nic = (facts or {}).get(listener["interface"].replace("-", "_")) or {}
        address = (nic.get("ipv4") or {}).get("address") if isinstance(nic, Mapping) else None
        if not address:
            raise AnsibleFilterError(f"{host['name']}: listener {listener['name']} binds interface "
                                     f"{listener['interface']}, which has no IPv4 address in the "
                                     "host's facts; name an existing NIC or set bind_address")
        return str(address)
    if listener["bind_address"] == "advertised":
        return _address(listener, host)
    return listener["bind_address"] or bind_address


def _host(hosts: Sequence[Host], name: str) -> Host:
    for host in hosts:
        if host["name"] == name:
            return host
    raise AnsibleFilterError(f"{name} is in neither the controller nor the broker group")


def _endpoints(model: Mapping[str, Any], host: Host, names: Sequence[str]) -> list[str]:
    return [f"{l['name']}://{_address(l, host)}:{_port(l, host)}" for l in model["listeners"]
            if l["name"] in names]


def kafka_quorum_voters(hosts: Sequence[Host], model: Mapping[str, Any]) -> str:
    """controller.quorum.voters: id@address:port of every controller on the controller listener."""
    listener = next(l for l in model["listeners"] if l["name"] == model["controller"])
    return ",".join(f"{h['node_id']}@{_address(listener, h)}:{_port(listener, h)}"
                    for h in hosts if "controller" in h["roles"])


def kafka_directory_id(cluster_id: str, node_id: Any) -> str:
    """The metadata directory id of controller ``node_id`` of cluster ``cluster_id``.

    Kafka's format (an Uuid: 16 bytes, base64url without padding, 22 characters), derived instead
    of random so that every controller's format and every rerun uses the same value without the
    hosts having to exchange it: SHA-256 of ``kafka-kit:<cluster id>:<node id>:<n>``, the first
    n (from 0) whose Uuid is valid as Kafka requires (not the reserved zero/one ids, and not
    starting with '-', which the tools would take for an option).
    """
    cluster_id, node = str(cluster_id).strip(), str(node_id).strip()
    if not cluster_id or not node:
        raise AnsibleFilterError("kafka_directory_id needs the cluster id and the node id")
    for n in range(1000):
        raw = hashlib.sha256(f"kafka-kit:{cluster_id}:{node}:{n}".encode()).digest()[:16]
        value = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if int.from_bytes(raw, "big") > 1 and not value.startswith("-"):
            return value
    raise AnsibleFilterError(f"no directory id for node {node}")  # pragma: no cover (2^-1000)


def kafka_initial_controllers(hosts: Sequence[Host], model: Mapping[str, Any], cluster_id: str) -> str:
    """``kafka-storage format --initial-controllers``: id@address:port:directory-id of every
    controller on the controller listener, in inventory order (the same value on every host)."""
    listener = next(l for l in model["listeners"] if l["name"] == model["controller"])
    return ",".join(f"{h['node_id']}@{_address(listener, h)}:{_port(listener, h)}:"
                    f"{kafka_directory_id(cluster_id, h['node_id'])}"
                    for h in hosts if "controller" in h["roles"])


def kafka_running_quorum(server_properties: str) -> str:
    """The quorum form a server.properties text runs: 'dynamic' (controller.quorum.bootstrap.servers),
    'static' (controller.quorum.voters), or '' (none: not a KRaft host, or not configured yet)."""
    keys = {line.split("=", 1)[0].strip() for line in str(server_properties or "").splitlines()
            if "=" in line and not line.lstrip().startswith(("#", "!"))}
    if "controller.quorum.voters" in keys:
        return "static"
    if "controller.quorum.bootstrap.servers" in keys:
        return "dynamic"
    return ""


def kafka_bootstrap(hosts: Sequence[Host], model: Mapping[str, Any], listener_name: str = "") -> str:
    """host:port list of the brokers on a listener (default: the client listener), or of the
    controllers when listener_name is the controller listener."""
    name = (listener_name or model["client"]).upper()
    listener = next((l for l in model["listeners"] if l["name"] == name), None)
    if listener is None:
        raise AnsibleFilterError(f"no listener named {name} in kafka_listeners")
    role = "controller" if name == model["controller"] else "broker"
    return ",".join(f"{_address(listener, h)}:{_port(listener, h)}" for h in hosts if role in h["roles"])


def kafka_listener_properties(hosts: Sequence[Host], model: Mapping[str, Any], name: str,
                              mode: str = "kraft", bind_address: str = "",
                              facts: Mapping[str, Any] | None = None,
                              quorum: str = "static") -> dict[str, Any]:
    """The listener keys of one host's server.properties.

    KRaft: listeners and advertised.listeners (brokers on every broker listener, controllers on
    the controller listener, so --bootstrap-controller works from the advertised address),
    listener.security.protocol.map, controller.listener.names, controller.quorum.voters and,
    on brokers, inter.broker.listener.name. ``quorum`` 'dynamic' puts
    controller.quorum.bootstrap.servers (the controllers on the controller listener) in place of
    the voters (KIP-853). ZooKeeper mode (a broker): the broker listeners, and
    the protocol map and inter-broker name unless the only listener is PLAINTEXT (Kafka's
    defaults are exactly that).
    """
    host = _host(hosts, name)
    roles = host["roles"]
    listeners = model["listeners"]
    controller = model["controller"]
    kraft = mode == "kraft" or "broker" not in roles
    mine = [l for l in listeners if (l["name"] != controller and "broker" in roles)
            or (l["name"] == controller and "controller" in roles and kraft)]
    props: dict[str, Any] = {
        "listeners": [f"{l['name']}://{_bind(l, host, bind_address, facts)}:{_port(l, host)}" for l in mine],
        "advertised.listeners": _endpoints(model, host, [l["name"] for l in mine]),
    }
    protocol_map = ",".join(f"{l['name']}:{l['protocol']}" for l in listeners)
    if kraft:
        props["listener.security.protocol.map"] = protocol_map
        props["controller.listener.names"] = controller
        if quorum == "dynamic":
            props["controller.quorum.bootstrap.servers"] = kafka_bootstrap(hosts, model, controller)
        elif quorum == "static":
            props["controller.quorum.voters"] = kafka_quorum_voters(hosts, model)
        else:
            raise AnsibleFilterError(f"kafka_kraft_quorum is '{quorum}': use 'dynamic' (a new "
                                     "cluster's default) or 'static' (controller.quorum.voters)")
        if "broker" in roles:
            props["inter.broker.listener.name"] = model["inter_broker"]
    elif [(l["name"], l["protocol"]) for l in mine] != [("PLAINTEXT", "PLAINTEXT")]:
        props["listener.security.protocol.map"] = ",".join(
            f"{l['name']}:{l['protocol']}" for l in mine)
        props["inter.broker.listener.name"] = model["inter_broker"]
    return props


def kafka_zookeeper_connect(hostvars: Mapping[str, Any], members: Sequence[str], client_port: Any = 2181,
                            chroot: str = "", override: str = "") -> str:
    """zookeeper.connect: override when set, else every member at the address and port the
    zookeeper role publishes (its facts) or the inventory's, followed by the chroot."""
    if override:
        return override
    parts = []
    for name in members:
        hv = hostvars[name]
        # The zookeeper role's default address is the member's default-route address: its
        # facts, gathered for every member by playbooks/facts.yml (also under --limit).
        facts = _get(hv, "ansible_facts", {}) or {}
        default_ipv4 = (facts.get("default_ipv4") or {}).get("address") if isinstance(facts, Mapping) else None
        address = (_get(hv, "zookeeper_address_fact") or _get(hv, "zookeeper_client_address")
                   or default_ipv4 or _get(hv, "ansible_host") or name)
        port = _get(hv, "zookeeper_client_port_fact") or _get(hv, "zookeeper_client_port") or client_port
        parts.append(f"{address}:{port}")
    return ",".join(parts) + (chroot or "")


def kafka_zookeeper_chroot(connect: str) -> dict[str, Any]:
    """zookeeper.connect split into the ensemble (``servers``, what ZooKeeper's own client takes)
    and the znodes of its chroot from the top (``levels``: /a/b -> [/a, /a/b]; none without one)."""
    servers, _, path = str(connect).strip().partition("/")
    parts = [p for p in path.split("/") if p]
    return {"servers": servers, "levels": ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]}


def kafka_migration_properties(hosts: Sequence[Host], model: Mapping[str, Any], name: str,
                               mode: str, migration: bool, zookeeper_connect: str,
                               inter_broker_protocol_version: str) -> dict[str, Any]:
    """Keys of a ZooKeeper-to-KRaft migration (Kafka 3.9 docs) while ``migration`` is true:
    controllers get the flag, zookeeper.connect and the brokers' listener name; brokers still in
    ZooKeeper mode get the flag, the quorum and inter.broker.protocol.version. KRaft brokers none."""
    if not migration:
        return {}
    roles = _host(hosts, name)["roles"]
    if "broker" not in roles:
        return {"zookeeper.metadata.migration.enable": True, "zookeeper.connect": zookeeper_connect,
                "inter.broker.listener.name": model["inter_broker"]}
    if mode != "zookeeper":
        return {}
    return {"zookeeper.metadata.migration.enable": True,
            "controller.quorum.voters": kafka_quorum_voters(hosts, model),
            "controller.listener.names": model["controller"],
            "listener.security.protocol.map": ",".join(f"{l['name']}:{l['protocol']}"
                                                       for l in model["listeners"]),
            "inter.broker.protocol.version": inter_broker_protocol_version}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kafka_cluster_hosts": kafka_cluster_hosts,
            "kafka_listener_model": kafka_listener_model,
            "kafka_listener_properties": kafka_listener_properties,
            "kafka_quorum_voters": kafka_quorum_voters,
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_directory_id": kafka_directory_id,
            "kafka_initial_controllers": kafka_initial_controllers,
            "kafka_running_quorum": kafka_running_quorum,
            "kafka_zookeeper_connect": kafka_zookeeper_connect,
            "kafka_zookeeper_chroot": kafka_zookeeper_chroot,
            "kafka_migration_properties": kafka_migration_properties,
        }
