"""The listener model (roles/kafka/filter_plugins/kafka_listeners.py), every shape.

Pure-function tests of the filters (combined, dedicated, ZooKeeper mode, migration, multi-NIC,
secure profile, bad input), plus one render through the real role with ``--limit``: a host
rendered alone must get exactly the file a full run gives it, from an inventory of IP addresses
and names that do not resolve.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from render_role import ANSIBLE_PLAYBOOK, REPO, parse_properties

_PATH = REPO / "roles/kafka/filter_plugins/kafka_listeners.py"
_spec = importlib.util.spec_from_file_location("kafka_listeners", _PATH)
kl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kl)


def hostvars(**hosts: dict) -> dict[str, dict]:
    return hosts


def cluster(controllers, brokers, hv, **kw):
    return kl.kafka_cluster_hosts(hv, controllers, brokers, **kw)


PLAIN = kl.kafka_listener_model([], "plaintext")
SECURE = kl.kafka_listener_model([], "secure")

HV = hostvars(
    c1={"kafka_node_id": 1, "kafka_listener_address": "192.0.2.1"},
    c2={"kafka_node_id": 2, "ansible_host": "192.0.2.2"},  # address from ansible_host
    c3={"kafka_node_id": 3},                                # no address: its inventory name
    b1={"kafka_node_id": 11, "kafka_listener_address": "192.0.2.11", "kafka_broker_port": 9192},
    b2={"kafka_node_id": 12, "kafka_listener_address": "192.0.2.12"},
)
DEDICATED = cluster(["c1", "c2", "c3"], ["b1", "b2"], HV)
COMBINED = cluster(["c1", "c2", "c3"], ["c1", "c2", "c3"], HV)


def test_cluster_hosts_from_inventory_only():
    by = {h["name"]: h for h in DEDICATED}
    assert [h["name"] for h in DEDICATED] == ["c1", "c2", "c3", "b1", "b2"]
    assert (by["c1"]["address"], by["c2"]["address"], by["c3"]["address"]) == ("192.0.2.1", "192.0.2.2", "c3")
    assert by["b1"]["broker_port"] == 9192 and by["b2"]["broker_port"] == 9092
    assert by["c1"]["roles"] == ["controller"] and by["b1"]["roles"] == ["broker"]
    assert {h["name"]: h["roles"] for h in COMBINED}["c2"] == ["broker", "controller"]


def test_voters_on_the_controller_listener():
    assert kl.kafka_quorum_voters(DEDICATED, PLAIN) == "1@192.0.2.1:9093,2@192.0.2.2:9093,3@c3:9093"


def test_plaintext_dedicated_controller_advertises_its_controller_listener():
    p = kl.kafka_listener_properties(DEDICATED, PLAIN, "c1")
    assert p == {
        "listeners": ["CONTROLLER://:9093"],
        "advertised.listeners": ["CONTROLLER://192.0.2.1:9093"],
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": "1@192.0.2.1:9093,2@192.0.2.2:9093,3@c3:9093",
    }


def test_plaintext_dedicated_broker():
    p = kl.kafka_listener_properties(DEDICATED, PLAIN, "b1")
    assert p["listeners"] == ["PLAINTEXT://:9192"]
    assert p["advertised.listeners"] == ["PLAINTEXT://192.0.2.11:9192"]
    assert p["inter.broker.listener.name"] == "PLAINTEXT"
    assert p["controller.listener.names"] == "CONTROLLER"


def test_plaintext_combined_advertises_both():
    p = kl.kafka_listener_properties(COMBINED, PLAIN, "c2", bind_address="0.0.0.0")
    assert p["listeners"] == ["PLAINTEXT://0.0.0.0:9092", "CONTROLLER://0.0.0.0:9093"]
    assert p["advertised.listeners"] == ["PLAINTEXT://192.0.2.2:9092", "CONTROLLER://192.0.2.2:9093"]
    assert p["inter.broker.listener.name"] == "PLAINTEXT"


def test_secure_profile():
    assert [(l["name"], l["protocol"], l["sasl_mechanisms"]) for l in SECURE["listeners"]] == [
        ("SASL_SSL", "SASL_SSL", ["SCRAM-SHA-512"]), ("CONTROLLER", "SSL", [])]
    p = kl.kafka_listener_properties(COMBINED, SECURE, "c1")
    assert p["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert p["advertised.listeners"] == ["SASL_SSL://192.0.2.1:9092", "CONTROLLER://192.0.2.1:9093"]
    assert p["inter.broker.listener.name"] == "SASL_SSL"


def test_zookeeper_mode_broker_plaintext_keeps_kafkas_defaults():
    hv = hostvars(b1={"kafka_node_id": 1, "kafka_listener_address": "192.0.2.11"})
    hosts = cluster([], ["b1"], hv)
    p = kl.kafka_listener_properties(hosts, PLAIN, "b1", mode="zookeeper")
    assert p == {"listeners": ["PLAINTEXT://:9092"], "advertised.listeners": ["PLAINTEXT://192.0.2.11:9092"]}


def test_zookeeper_mode_broker_secure_names_its_listener():
    hosts = cluster([], ["b1"], hostvars(b1={"kafka_node_id": 1}))
    p = kl.kafka_listener_properties(hosts, SECURE, "b1", mode="zookeeper")
    assert p["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL"
    assert p["inter.broker.listener.name"] == "SASL_SSL"
    assert "controller.quorum.voters" not in p and "controller.listener.names" not in p


def test_migration_keys():
    assert kl.kafka_migration_properties(DEDICATED, PLAIN, "c1", "zookeeper", False, "z:2181/k", "3.9") == {}
    ctl = kl.kafka_migration_properties(DEDICATED, PLAIN, "c1", "zookeeper", True, "z:2181/k", "3.9")
    assert ctl == {"zookeeper.metadata.migration.enable": True, "zookeeper.connect": "z:2181/k",
                   "inter.broker.listener.name": "PLAINTEXT"}
    brk = kl.kafka_migration_properties(DEDICATED, PLAIN, "b1", "zookeeper", True, "z:2181/k", "3.9")
    assert brk["controller.quorum.voters"] == "1@192.0.2.1:9093,2@192.0.2.2:9093,3@c3:9093"
    assert brk["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert brk["controller.listener.names"] == "CONTROLLER"
    assert brk["inter.broker.protocol.version"] == "3.9"
    # A broker already moved to KRaft takes none of them.
    assert kl.kafka_migration_properties(DEDICATED, PLAIN, "b1", "kraft", True, "z:2181/k", "3.9") == {}
    # Secure: the controllers name the secure broker listener.
    sec = kl.kafka_migration_properties(DEDICATED, SECURE, "c1", "zookeeper", True, "z:2181/k", "3.9")
    assert sec["inter.broker.listener.name"] == "SASL_SSL"


MULTI_NIC = [
    {"name": "CLIENT", "port": "broker", "protocol": "SASL_SSL"},
    {"name": "REPLICATION", "port": 9094, "protocol": "SASL_SSL", "bind_address": "advertised"},
    {"name": "CONTROLLER", "port": "controller", "protocol": "SSL", "interface": "eth1"},
]


def test_multi_nic_is_one_inventory_change():
    model = kl.kafka_listener_model(MULTI_NIC, "secure", inter_broker_listener="REPLICATION")
    assert (model["inter_broker"], model["client"]) == ("REPLICATION", "REPLICATION")
    model = kl.kafka_listener_model(MULTI_NIC, "secure", inter_broker_listener="replication",
                                    client_listener="CLIENT")
    hv = hostvars(**{f"h{i}": {"kafka_node_id": i, "kafka_listener_address": f"198.51.100.{i}",
                                "kafka_listener_addresses": {"replication": f"10.1.0.{i}",
                                                             "CONTROLLER": f"10.2.0.{i}"}}
                     for i in (1, 2, 3)})
    hosts = cluster(["h1", "h2", "h3"], ["h1", "h2", "h3"], hv)
    facts = {"eth1": {"ipv4": {"address": "10.2.0.1"}}}
    p = kl.kafka_listener_properties(hosts, model, "h1", facts=facts)
    assert p["listeners"] == ["CLIENT://:9092", "REPLICATION://10.1.0.1:9094", "CONTROLLER://10.2.0.1:9093"]
    assert p["advertised.listeners"] == ["CLIENT://198.51.100.1:9092", "REPLICATION://10.1.0.1:9094",
                                         "CONTROLLER://10.2.0.1:9093"]
    assert p["listener.security.protocol.map"] == "CLIENT:SASL_SSL,REPLICATION:SASL_SSL,CONTROLLER:SSL"
    assert p["inter.broker.listener.name"] == "REPLICATION"
    assert p["controller.quorum.voters"] == "1@10.2.0.1:9093,2@10.2.0.2:9093,3@10.2.0.3:9093"
    assert kl.kafka_bootstrap(hosts, model) == "198.51.100.1:9092,198.51.100.2:9092,198.51.100.3:9092"
    assert kl.kafka_bootstrap(hosts, model, "REPLICATION") == "10.1.0.1:9094,10.1.0.2:9094,10.1.0.3:9094"
    assert kl.kafka_bootstrap(hosts, model, "CONTROLLER") == "10.2.0.1:9093,10.2.0.2:9093,10.2.0.3:9093"
    with pytest.raises(AnsibleFilterError, match="h1: listener CONTROLLER binds interface eth1"):
        kl.kafka_listener_properties(hosts, model, "h1", facts={})


def test_bootstrap_lists():
    assert kl.kafka_bootstrap(DEDICATED, PLAIN) == "192.0.2.11:9192,192.0.2.12:9092"
    assert kl.kafka_bootstrap(DEDICATED, PLAIN, "CONTROLLER") == "192.0.2.1:9093,192.0.2.2:9093,c3:9093"


@pytest.mark.parametrize("listeners, kw, message", [
    ([{"name": "client", "port": 9092, "protocol": "TLS"}, {"name": "CONTROLLER", "protocol": "SSL"}], {},
     r"kafka_listeners\[0\] \(CLIENT\).protocol='TLS'"),
    ([{"name": "A", "port": 0, "protocol": "SSL"}, {"name": "CONTROLLER", "protocol": "SSL"}], {},
     r"kafka_listeners\[0\] \(A\).port=0 is outside 1-65535"),
    ([{"name": "A", "port": 65536, "protocol": "SSL"}, {"name": "CONTROLLER", "protocol": "SSL"}], {},
     r"port=65536 is outside"),
    ([{"name": "A", "port": "x", "protocol": "SSL"}], {}, r"port='x' is not a port number"),
    ([{"name": "A", "protocol": "SSL"}, {"name": "a", "protocol": "SSL"}], {}, "listed twice"),
    ([{"name": "my-listener", "protocol": "SSL"}], {}, "use letters, digits and _"),
    ([{"name": "A", "protocol": "SSL", "sasl_mechanisms": ["PLAIN"]}], {}, "sasl_mechanisms needs protocol"),
    ([{"name": "A", "protocol": "SASL_SSL", "sasl_mechanisms": ["GSSAPI"]}], {}, "GSSAPI.*not supported"),
    ([{"name": "A", "protocol": "SSL"}], {}, "kafka_controller_listener_name=CONTROLLER is not among"),
    ([{"name": "CONTROLLER", "protocol": "SSL"}], {}, "no broker listener"),
    ([], {"inter_broker_listener": "NOPE"}, "kafka_inter_broker_listener_name=NOPE is not a broker listener"),
    ([], {"client_listener": "CONTROLLER"}, "kafka_client_listener_name=CONTROLLER is not a broker"),
    (["A"], {}, r"kafka_listeners\[0\] must be a mapping"),
])
def test_bad_listeners_named(listeners, kw, message):
    with pytest.raises(AnsibleFilterError, match=message):
        kl.kafka_listener_model(listeners, "secure", **kw)


def test_bad_profile_and_addresses():
    with pytest.raises(AnsibleFilterError, match="kafka_security_profile='open': use secure or plaintext"):
        kl.kafka_listener_model([], "open")
    with pytest.raises(AnsibleFilterError, match="h1: kafka_listener_addresses must map"):
        cluster(["h1"], ["h1"], {"h1": {"kafka_listener_addresses": ["10.0.0.1"]}})
    with pytest.raises(AnsibleFilterError, match="zz is in neither"):
        kl.kafka_listener_properties(DEDICATED, PLAIN, "zz")


def test_zookeeper_connect():
    hv = {"z1": {"zookeeper_address_fact": "192.0.2.21", "zookeeper_client_port_fact": 2181},
          "z2": {"ansible_host": "192.0.2.22"}, "z3": {"zookeeper_client_address": "zk3", "zookeeper_client_port": 2182}}
    assert kl.kafka_zookeeper_connect(hv, ["z1", "z2", "z3"], 2181, "/kafka") == \
        "192.0.2.21:2181,192.0.2.22:2181,zk3:2182/kafka"
    assert kl.kafka_zookeeper_connect(hv, ["z1"], 2181, "/kafka", "other:2181/x") == "other:2181/x"


def test_random_inventories_every_host_agrees():
    """Property: whatever the shape, every host renders the same voters (static) or bootstrap
    list (dynamic) and never both, each advertised
    endpoint is unique, and a host's advertised listeners are exactly its listeners' names."""
    rng = random.Random(10)
    for _ in range(200):
        n = rng.randint(1, 8)
        names = [f"h{i}" for i in range(n)]
        hv = {h: {"kafka_node_id": i + 1, **({"ansible_host": f"10.0.0.{i}"} if rng.random() < 0.5 else {})}
              for i, h in enumerate(names)}
        controllers = rng.sample(names, rng.randint(1, n))
        brokers = rng.sample(names, rng.randint(1, n))
        model = SECURE if rng.random() < 0.5 else PLAIN
        hosts = cluster(controllers, brokers, hv)
        seen: set[str] = set()
        voters = set()
        quorum = rng.choice(["static", "dynamic"])
        for h in hosts:
            p = kl.kafka_listener_properties(hosts, model, h["name"], quorum=quorum)
            voters.add(p["controller.quorum.voters" if quorum == "static" else "controller.quorum.bootstrap.servers"])
            assert ("controller.quorum.voters" in p) != ("controller.quorum.bootstrap.servers" in p)
            for endpoint in p["advertised.listeners"]:
                assert endpoint.split("//")[1] not in seen
                seen.add(endpoint.split("//")[1])
            assert [e.split(":")[0] for e in p["advertised.listeners"]] == \
                   [e.split(":")[0] for e in p["listeners"]]
            assert ("inter.broker.listener.name" in p) == (h["name"] in brokers)
        assert len(voters) == 1


# ---- through the real role, with --limit -------------------------------------------------

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
  children:
    kafka_controller:
      hosts:
        ctl-a.invalid: {{kafka_node_id: 101, ansible_host: 127.0.0.1, kafka_listener_address: 192.0.2.101}}
        ctl-b.invalid: {{kafka_node_id: 102, ansible_host: 127.0.0.1, kafka_listener_address: 192.0.2.102}}
        both.invalid: {{kafka_node_id: 9, ansible_host: 127.0.0.1, kafka_listener_address: 192.0.2.9}}
    kafka_broker:
      hosts:
        brk.invalid: {{kafka_node_id: 1, ansible_host: 127.0.0.1, kafka_listener_address: 192.0.2.11}}
        both.invalid:
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Load the kafka role (defaults, vars, filters); under --limit only this host runs it
      ansible.builtin.include_role:
        name: kafka
        tasks_from: address.yml
        public: true
    - name: Render server.properties with the role's template
      ansible.builtin.template:
        src: {repo}/roles/kafka/templates/etc/kafka/server.properties.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.properties"
        mode: "0644"
"""


def _render(work: Path, limit: str | None) -> dict[str, dict[str, str]]:
    out = work / "out"
    out.mkdir(parents=True)
    (work / "hosts.yml").write_text(INVENTORY.format(python=sys.executable))
    (work / "render.yml").write_text(PLAYBOOK.format(repo=REPO, out=out))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1")
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(work / "hosts.yml"), str(work / "render.yml")]
    result = subprocess.run(cmd + (["--limit", limit] if limit else []), capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {p.stem: parse_properties(p.read_text()) for p in out.iterdir()}


def test_limit_renders_what_a_full_run_renders(tmp_path):
    full = _render(tmp_path / "full", None)
    alone = _render(tmp_path / "alone", "both.invalid")
    assert sorted(full) == ["both.invalid", "brk.invalid", "ctl-a.invalid", "ctl-b.invalid"]
    assert list(alone) == ["both.invalid"]
    assert alone["both.invalid"] == full["both.invalid"]
    props = alone["both.invalid"]
    # The default quorum form (dynamic): every controller, also those the limit leaves out.
    assert props["controller.quorum.bootstrap.servers"] == "192.0.2.101:9093,192.0.2.102:9093,192.0.2.9:9093"
    assert props["advertised.listeners"] == "SASL_SSL://192.0.2.9:9092,CONTROLLER://192.0.2.9:9093"  # the secure default
    assert full["ctl-a.invalid"]["advertised.listeners"] == "CONTROLLER://192.0.2.101:9093"


# ---- security keys (filter_plugins/kafka_security.py) ------------------------------------

_SPATH = REPO / "roles/kafka/filter_plugins/kafka_security.py"
_sspec = importlib.util.spec_from_file_location("kafka_security", _SPATH)
ks = importlib.util.module_from_spec(_sspec)
_sspec.loader.exec_module(ks)

SETTINGS = {"mode": "kraft", "keystore": "/etc/kafka/tls/keystore.pem", "truststore": "/etc/kafka/tls/truststore.pem",
            "credentials_file": "/etc/kafka/credentials.properties", "broker_user": "kafka-broker",
            "admin_user": "admin", "super_users": ["User:ops"], "principal_mapping_rules": "RULE:x", "authorizer": True}


def test_plaintext_adds_no_security_key():
    assert ks.kafka_security_properties(PLAIN, COMBINED, dict(SETTINGS, authorizer=False)) == {}


def test_secure_keys():
    p = ks.kafka_security_properties(SECURE, COMBINED, SETTINGS)
    assert p["ssl.keystore.type"] == p["ssl.truststore.type"] == "PEM"
    assert p["ssl.endpoint.identification.algorithm"] == "https"
    assert p["listener.name.controller.ssl.client.auth"] == "required"
    assert p["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == ["SCRAM-SHA-512"]
    assert p["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    # The brokers' password is read from the credentials file, never written here.
    assert p["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == \
        "${file:/etc/kafka/credentials.properties:broker.jaas}"
    assert p["config.providers.file.class"] == "org.apache.kafka.common.config.provider.FileConfigProvider"
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] is False
    assert p["super.users"] == "User:c1;User:c2;User:c3;User:kafka-broker;User:admin;User:ops"
    zk = ks.kafka_security_properties(SECURE, COMBINED, dict(SETTINGS, mode="zookeeper"))
    assert zk["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"


def test_secure_multi_nic_logs_in_on_the_replication_listener():
    model = kl.kafka_listener_model(MULTI_NIC, "secure", inter_broker_listener="REPLICATION")
    p = ks.kafka_security_properties(model, COMBINED, SETTINGS)
    assert "listener.name.replication.scram-sha-512.sasl.jaas.config" in p
    assert p["listener.name.client.sasl.enabled.mechanisms"] == ["SCRAM-SHA-512"]


def test_certificate_sans():
    hosts = cluster(["h1"], ["h1"], {"h1": {"kafka_listener_address": "198.51.100.1",
                                            "kafka_listener_addresses": {"REPLICATION": "kb01-repl.example"}}})
    assert ks.kafka_tls_sans(hosts, "h1", ["DNS:lb.example"]) == [
        "DNS:h1", "IP:198.51.100.1", "DNS:kb01-repl.example", "DNS:lb.example"]
    assert ks.kafka_tls_sans(DEDICATED, "c3") == ["DNS:c3"]


def test_client_properties():
    assert ks.kafka_client_properties(PLAIN) == {"security.protocol": "PLAINTEXT"}
    admin = ks.kafka_client_properties(SECURE, "", "admin", "pw", "/t.pem")
    assert admin == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                     "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                         'username="admin" password="pw";',
                     "ssl.truststore.type": "PEM", "ssl.truststore.location": "/t.pem"}
    ctl = ks.kafka_client_properties(SECURE, "CONTROLLER", truststore="/t.pem", keystore="/k.pem")
    assert ctl["security.protocol"] == "SSL" and ctl["ssl.keystore.location"] == "/k.pem"
    with pytest.raises(AnsibleFilterError, match="needs a SCRAM user and password"):
        ks.kafka_client_properties(SECURE)


def test_librdkafka_properties_are_what_kcat_reads():
    assert ks.kafka_librdkafka_properties(PLAIN) == {"security.protocol": "PLAINTEXT"}
    admin = ks.kafka_librdkafka_properties(SECURE, "", "admin", 'p"w', "/ca.pem")
    assert admin == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                     "sasl.username": "admin", "sasl.password": 'p"w', "ssl.ca.location": "/ca.pem"}
    # No Java-only key: kcat refuses sasl.jaas.config and ssl.truststore.* (the lab test runs kcat).
    assert not [k for k in admin if k.startswith(("sasl.jaas", "ssl.truststore", "ssl.keystore"))]
    with pytest.raises(AnsibleFilterError, match="needs a SCRAM user and password"):
        ks.kafka_librdkafka_properties(SECURE)


def test_client_files_per_user_in_both_formats():
    files = ks.kafka_client_files(SECURE, [{"name": "admin", "password": "a"}, {"name": "reader", "password": "r"}],
                                  "h1:9092,h2:9092", "/kit/ca/ca.pem", "/kit/clients/")
    assert [f["dest"] for f in files] == ["/kit/clients/admin.properties", "/kit/clients/admin.librdkafka.properties",
                                          "/kit/clients/reader.properties", "/kit/clients/reader.librdkafka.properties"]
    java, rdk = files[2]["properties"], files[3]["properties"]
    assert java["bootstrap.servers"] == rdk["bootstrap.servers"] == "h1:9092,h2:9092"
    assert 'username="reader" password="r"' in java["sasl.jaas.config"] and java["ssl.truststore.location"] == "/kit/ca/ca.pem"
    assert rdk["sasl.username"] == "reader" and rdk["sasl.password"] == "r" and rdk["ssl.ca.location"] == "/kit/ca/ca.pem"
    plain = ks.kafka_client_files(PLAIN, [{"name": "admin", "password": ""}], "h1:9092", "", "/d")
    assert [f["properties"] for f in plain] == [{"bootstrap.servers": "h1:9092", "security.protocol": "PLAINTEXT"}] * 2


# ---- ZooKeeper mode's SCRAM users (tasks/scram_zookeeper.yml) -----------------------------

# What Kafka 3.9.2's ConfigCommand --zookeeper --describe printed for a user after
# `--add-config 'SCRAM-SHA-512=[iterations=8192,password=abc123]'` (recorded from a real
# ZooKeeper): the filter must recognise that password and no other.
_ZK_DESCRIBE = (
    "Warning: --zookeeper is deprecated and will be removed in a future version of Kafka.\n"
    "Configs for user-principal 'admin' are SCRAM-SHA-512=salt=MTllbzY4cjByZnhsb3d6YXBrM3Qxb2t5a2c=,"
    "stored_key=XytsSDqqGAHzEKPLgCQ1Qi+SvYTP2yOTSGxHx5Wsb8tGOQN08bj0Ja0sBl+HlOSN71Fd+jTgGZ1gv00p9fwsQA==,"
    "server_key=r8QDtNzZvZOTJsNhzm39873yT0CxBwq+dnQEoj3+789s1jHLgmuPBiX8EY/zbmAh0zWoFa4/ig1w5WpAJa8zHw==,"
    "iterations=8192\n")


def test_scram_credential_matches_the_password_it_was_made_from():
    assert ks.kafka_scram_credential_matches(_ZK_DESCRIBE, "SCRAM-SHA-512", "abc123") is True
    for wrong in ("abc1234", "ABC123", "", "abc12"):
        assert ks.kafka_scram_credential_matches(_ZK_DESCRIBE, "SCRAM-SHA-512", wrong) is False


def test_scram_credential_missing_or_of_another_mechanism_is_written():
    assert ks.kafka_scram_credential_matches("Configs for user-principal 'admin' are \n",
                                             "SCRAM-SHA-512", "abc123") is False
    assert ks.kafka_scram_credential_matches(_ZK_DESCRIBE, "SCRAM-SHA-256", "abc123") is False
    broken = _ZK_DESCRIBE.replace("salt=MTll", "salt=!!!!")
    assert ks.kafka_scram_credential_matches(broken, "SCRAM-SHA-512", "abc123") is False
    with pytest.raises(AnsibleFilterError, match="SCRAM mechanism 'PLAIN'"):
        ks.kafka_scram_credential_matches(_ZK_DESCRIBE, "PLAIN", "abc123")


def test_scram_credential_round_trip_for_both_mechanisms():
    """The filter against credentials computed as RFC 5802 (and Kafka's ScramFormatter) makes them."""
    import base64
    import hashlib
    import hmac
    for mechanism, algorithm in (("SCRAM-SHA-256", "sha256"), ("SCRAM-SHA-512", "sha512")):
        rng = random.Random(mechanism)
        for _ in range(5):
            password = "".join(rng.choice("abcXYZ019-_.") for _ in range(rng.randint(1, 40)))
            salt, iterations = rng.randbytes(rng.randint(8, 32)), rng.choice([4096, 8192])
            salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), salt, iterations)
            stored = hashlib.new(algorithm, hmac.new(salted, b"Client Key", algorithm).digest()).digest()
            server = hmac.new(salted, b"Server Key", algorithm).digest()
            line = (f"{mechanism}=salt={base64.b64encode(salt).decode()},stored_key="
                    f"{base64.b64encode(stored).decode()},server_key={base64.b64encode(server).decode()},"
                    f"iterations={iterations}")
            assert ks.kafka_scram_credential_matches(line, mechanism, password)
            assert not ks.kafka_scram_credential_matches(line, mechanism, password + "x")


@pytest.mark.parametrize("connect, servers, levels", [
    ("zk1:2181,zk2:2181/kafka", "zk1:2181,zk2:2181", ["/kafka"]),
    ("zk1:2181/a/b", "zk1:2181", ["/a", "/a/b"]),
    ("zk1:2181,zk2:2181", "zk1:2181,zk2:2181", []),
    ("  zk1:2181/kafka/ \n", "zk1:2181", ["/kafka"]),
])
def test_zookeeper_chroot_levels(connect, servers, levels):
    assert kl.kafka_zookeeper_chroot(connect) == {"servers": servers, "levels": levels}
