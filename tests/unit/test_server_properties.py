"""server.properties as the kafka role renders it, for each KRaft role of a host.

The test runs the real role code: ansible-playbook on localhost loads roles/kafka (defaults, vars,
filter plugins) through include_role and renders the real template with the real template module
for a small inventory of dedicated controllers, dedicated brokers and a combined host. Nothing of
the role is re-implemented here, so a change in its merge order or its computed keys shows up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from render_role import parse_properties, render

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
    kafka_server_properties:
      num.partitions: 50
      compression.type: lz4
      log.cleaner.enable: true
    kafka_data_dirs: [/data/1/kafka, /data/2/kafka]
  children:
    kafka_controller:
      hosts:
        ctl-1: {{kafka_node_id: 101, kafka_listener_address: 192.0.2.101}}
        ctl-2: {{kafka_node_id: 102, kafka_listener_address: 192.0.2.102}}
        ctl-3: {{kafka_node_id: 103, kafka_listener_address: 192.0.2.103}}
        both-1: {{kafka_node_id: 9, kafka_listener_address: 192.0.2.9}}
    kafka_broker:
      hosts:
        brk-1:
          kafka_node_id: 1
          kafka_listener_address: 192.0.2.11
          kafka_rack: rack-a
          kafka_server_properties_host: {{num.partitions: 12, min.insync.replicas: 1}}
        brk-2: {{kafka_node_id: 2, kafka_listener_address: 192.0.2.12}}
        both-1:
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Load the kafka role (defaults, vars, filters) and publish the address facts
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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[str, dict[str, str]]]:
    files = render(tmp_path_factory.mktemp("render"), INVENTORY.format(python=sys.executable),
                   PLAYBOOK)
    return {Path(name).stem: (text, parse_properties(text)) for name, text in files.items()
            if name.endswith(".properties")}


# The default quorum form of a new cluster is dynamic (KIP-853): every node finds the
# controllers through controller.quorum.bootstrap.servers, never controller.quorum.voters.
BOOTSTRAP = "192.0.2.101:9093,192.0.2.102:9093,192.0.2.103:9093,192.0.2.9:9093"


def test_every_host_rendered(rendered):
    assert sorted(rendered) == ["both-1", "brk-1", "brk-2", "ctl-1", "ctl-2", "ctl-3"]


def test_dedicated_controller(rendered):
    _, props = rendered["ctl-1"]
    assert props["process.roles"] == "controller"
    assert props["node.id"] == "101"
    assert props["listeners"] == "CONTROLLER://:9093"
    assert props["controller.quorum.bootstrap.servers"] == BOOTSTRAP
    assert "controller.quorum.voters" not in props
    # A controller advertises its controller listener only (so --bootstrap-controller and the
    # roll gates reach it at the inventory's address) and has no inter-broker listener.
    assert props["advertised.listeners"] == "CONTROLLER://192.0.2.101:9093"
    assert "inter.broker.listener.name" not in props
    # Topic defaults stay: in KRaft the controller creates topics and elects leaders.
    assert props["unclean.leader.election.enable"] == "false"
    assert props["default.replication.factor"] == "3"


def test_dedicated_broker(rendered):
    _, props = rendered["brk-2"]
    assert props["process.roles"] == "broker"
    assert props["node.id"] == "2"
    # The role's default profile is secure: SASL_SSL with SCRAM-SHA-512 between clients and
    # brokers and between brokers, TLS with client certificates to the controllers, an authorizer
    # that denies what no ACL allows (docs/security.md).
    assert props["listeners"] == "SASL_SSL://:9092"
    assert props["advertised.listeners"] == "SASL_SSL://192.0.2.12:9092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert props["controller.quorum.bootstrap.servers"] == BOOTSTRAP
    assert "controller.quorum.voters" not in props
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "broker.rack" not in props  # no kafka_rack, no broker.rack


def test_combined_host(rendered):
    _, props = rendered["both-1"]
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "SASL_SSL://:9092,CONTROLLER://:9093"
    assert props["advertised.listeners"] == "SASL_SSL://192.0.2.9:9092,CONTROLLER://192.0.2.9:9093"


def test_group_and_host_settings_win_in_order(rendered):
    _, brk1 = rendered["brk-1"]
    _, brk2 = rendered["brk-2"]
    assert brk2["num.partitions"] == "50"  # group_vars over the role
    assert brk1["num.partitions"] == "12"  # host_vars over group_vars
    assert brk1["min.insync.replicas"] == "1"  # host_vars over the role's defaults
    assert brk2["min.insync.replicas"] == "2"
    assert brk1["broker.rack"] == "rack-a"


def test_values_printed_as_kafka_reads_them(rendered):
    _, props = rendered["brk-2"]
    assert props["log.cleaner.enable"] == "true"  # YAML boolean -> lower case
    assert props["log.dirs"] == "/data/1/kafka,/data/2/kafka"  # list -> comma-separated


def test_keys_sorted_and_managed_header(rendered):
    text, _ = rendered["brk-1"]
    assert text.splitlines()[0].startswith("#")
    keys = [l.split("=", 1)[0] for l in text.splitlines() if l and not l.startswith("#")]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))
