"""Security keys of the kafka role, derived from the listener model (kafka_listeners.py).

* ``kafka_security_properties``: TLS (PEM keystore and truststore, hostname verification,
  client certificates on SSL listeners such as the controller's, principals from the
  certificate's CN), SASL per listener, the inter-broker SCRAM login (read from a credentials
  file through Kafka's FileConfigProvider, so server.properties holds no secret and its diff can
  be shown), the authorizer and super users.
* ``kafka_tls_sans``: the subject alternative names of a host's certificate.
* ``kafka_client_properties``: a Kafka client properties file's keys as Kafka's Java clients
  name them (the Java tools' --command-config, pyclient --command-config).
* ``kafka_librdkafka_properties``: the same settings as librdkafka names them (kcat -F,
  pyclient). Two files, because kcat refuses a Java file: "Java JAAS configuration is not
  supported" for sasl.jaas.config, "No such configuration property" for ssl.truststore.*.
* ``kafka_scram_credential_matches``: whether a SCRAM credential stored in ZooKeeper is the one
  of a password (tasks/scram_zookeeper.yml writes it only when not).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
KRAFT_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ZK_AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"


def _tls(protocol: str) -> bool:
    return protocol in ("SSL", "SASL_SSL")


def kafka_security_properties(model: Mapping[str, Any], hosts: Sequence[Mapping[str, Any]],
                              settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keys added to server.properties for the listeners of ``model``.

    settings: mode (kraft|zookeeper), keystore, truststore, credentials_file, broker_user,
    admin_user, super_users (extra principals), principal_mapping_rules, authorizer (bool).
    Nothing is added for listeners that use neither TLS nor SASL.
    """
    listeners = model["listeners"]
    props: dict[str, Any] = {}
    if any(_tls(l["protocol"]) for l in listeners):
        props.update({
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": settings["keystore"],
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": settings["truststore"],
            # Kafka's default, written down: clients and brokers check the peer's name or
            # address against its certificate's SANs.
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.principal.mapping.rules": settings.get("principal_mapping_rules") or "DEFAULT",
        })
    for l in listeners:
        prefix = f"listener.name.{l['name'].lower()}."
        if l["protocol"] == "SSL":
            # No password on an SSL listener: the peer proves who it is with its certificate.
            props[prefix + "ssl.client.auth"] = "required"
        if l["sasl_mechanisms"]:
            props[prefix + "sasl.enabled.mechanisms"] = l["sasl_mechanisms"]
    inter = next(l for l in listeners if l["name"] == model["inter_broker"])
    if inter["sasl_mechanisms"]:
        mechanism = inter["sasl_mechanisms"][0]
        if not mechanism.startswith("SCRAM-"):
            raise AnsibleFilterError(f"inter-broker listener {inter['name']} uses {mechanism}; the role "
                                     "logs brokers in with SCRAM: list SCRAM-SHA-512 first")
        props["sasl.mechanism.inter.broker.protocol"] = mechanism
        props[f"listener.name.{inter['name'].lower()}.{mechanism.lower()}.sasl.jaas.config"] = \
            "${file:" + settings["credentials_file"] + ":broker.jaas}"
        props["config.providers"] = "file"
        props["config.providers.file.class"] = "org.apache.kafka.common.config.provider.FileConfigProvider"
    if settings.get("authorizer"):
        principals = [f"User:{h['name']}" for h in hosts]
        principals += [f"User:{settings['broker_user']}", f"User:{settings['admin_user']}"]
        principals += [str(p) for p in settings.get("super_users") or []]
        props["authorizer.class.name"] = KRAFT_AUTHORIZER if settings.get("mode", "kraft") == "kraft" \
            else ZK_AUTHORIZER
        props["allow.everyone.if.no.acl.found"] = False
        props["super.users"] = ";".join(dict.fromkeys(principals))
    return props


def kafka_tls_sans(hosts: Sequence[Mapping[str, Any]], name: str, extra: Sequence[str] = ()) -> list[str]:
    """SANs of a host's certificate: its inventory name and every address it advertises
    (IP: for addresses, DNS: for names), plus ``extra`` (written as DNS:x or IP:x)."""
    host = next((h for h in hosts if h["name"] == name), None)
    if host is None:
        raise AnsibleFilterError(f"{name} is in neither the controller nor the broker group")
    sans: list[str] = []
    for value in [host["name"], host["address"], *host.get("addresses", {}).values()]:
        try:
            sans.append(f"IP:{ipaddress.ip_address(str(value))}")
        except ValueError:
            sans.append(f"DNS:{value}")
    sans += [str(x) for x in extra]
    return list(dict.fromkeys(sans))


def kafka_client_properties(model: Mapping[str, Any], listener: str = "", user: str = "",
                            password: str = "", truststore: str = "", keystore: str = "") -> dict[str, str]:
    """Client settings for ``listener`` (default: the client listener): security.protocol, and
    the SCRAM login (user/password) and PEM truststore (keystore for SSL listeners that ask for
    a client certificate) it needs."""
    name = (listener or model["client"]).upper()
    l = next((x for x in model["listeners"] if x["name"] == name), None)
    if l is None:
        raise AnsibleFilterError(f"no listener named {name} in kafka_listeners")
    props = {"security.protocol": l["protocol"]}
    if l["sasl_mechanisms"]:
        if not user or not password:
            raise AnsibleFilterError(f"listener {name} needs a SCRAM user and password for its client file")
        props["sasl.mechanism"] = l["sasl_mechanisms"][0]
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')
        props["sasl.jaas.config"] = f'{SCRAM_LOGIN} required username="{user}" password="{escaped}";'
    if _tls(l["protocol"]):
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = truststore
        if l["protocol"] == "SSL" and keystore:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = keystore
    return props


def kafka_librdkafka_properties(model: Mapping[str, Any], listener: str = "", user: str = "",
                                password: str = "", ca_location: str = "") -> dict[str, str]:
    """``kafka_client_properties`` in librdkafka's keys: security.protocol, sasl.mechanism,
    sasl.username, sasl.password, ssl.ca.location (a PEM CA file)."""
    java = kafka_client_properties(model, listener, user, password, ca_location)
    props = {"security.protocol": java["security.protocol"]}
    if "sasl.mechanism" in java:
        props.update({"sasl.mechanism": java["sasl.mechanism"], "sasl.username": user, "sasl.password": password})
    if "ssl.truststore.location" in java:
        props["ssl.ca.location"] = ca_location
    return props


def kafka_client_files(model: Mapping[str, Any], users: Sequence[Mapping[str, Any]], bootstrap: str,
                       ca_location: str, directory: str) -> list[dict[str, Any]]:
    """For each user ({name, password}): ``<dir>/<name>.properties`` (Java keys) and
    ``<dir>/<name>.librdkafka.properties`` (librdkafka keys), both with bootstrap.servers; a list of
    {dest, properties} as the client properties template takes it."""
    files = []
    for u in users:
        name, password = str(u["name"]), str(u.get("password") or "")
        for suffix, derive in ((".properties", kafka_client_properties),
                               (".librdkafka.properties", kafka_librdkafka_properties)):
            files.append({"dest": f"{directory.rstrip('/')}/{name}{suffix}",
                          "properties": {"bootstrap.servers": bootstrap,
                                         **derive(model, "", name, password, ca_location)}})
    return files


_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def kafka_scram_credential_matches(describe: str, mechanism: str, password: str) -> bool:
    """Whether the SCRAM credential ``kafka-configs --describe --entity-type users`` printed
    (``MECH=salt=..,stored_key=..,server_key=..,iterations=N``, base64 as ZooKeeper stores it) is
    the one of ``password``: RFC 5802's StoredKey = H(HMAC(PBKDF2(password, salt, i), "Client
    Key")). False when the user has no credential of ``mechanism``, so the caller writes it."""
    algorithm = _SCRAM_HASHES.get(str(mechanism).upper())
    if algorithm is None:
        raise AnsibleFilterError(f"SCRAM mechanism {mechanism!r}: use one of {', '.join(_SCRAM_HASHES)}")
    m = re.search(re.escape(str(mechanism).upper()) + r"=salt=([^,\s]+),stored_key=([^,\s]+),"
                  r"server_key=[^,\s]+,iterations=(\d+)", str(describe))
    if not m:
        return False
    try:
        salt, stored = base64.b64decode(m.group(1), validate=True), base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        return False
    salted = hashlib.pbkdf2_hmac(algorithm, str(password).encode(), salt, int(m.group(3)))
    client_key = hmac.new(salted, b"Client Key", algorithm).digest()
    return hmac.compare_digest(hashlib.new(algorithm, client_key).digest(), stored)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kafka_security_properties": kafka_security_properties,
            "kafka_tls_sans": kafka_tls_sans,
            "kafka_client_properties": kafka_client_properties,
            "kafka_librdkafka_properties": kafka_librdkafka_properties,
            "kafka_client_files": kafka_client_files,
            "kafka_scram_credential_matches": kafka_scram_credential_matches,
        }
