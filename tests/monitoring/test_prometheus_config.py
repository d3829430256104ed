"""prometheus.yml as the monitoring role writes it from an inventory: every Kafka host and
ZooKeeper member a target with its labels, hosts with the agent off left out, a host that did
not publish its endpoint refused by name, and `promtool check config` accepting the result.
The real roles run through ansible-playbook on localhost (playbooks/monitoring.yml's first
plays, then the role's assert and template)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from render_role import REPO, render

PROMTOOL = shutil.which("promtool")

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
    # /metrics over HTTP (plaintext); the secure profile's HTTPS targets are the next test's.
    kafka_security_profile: plaintext
  children:
    kafka_controller:
      hosts:
        ctl-1: {{kafka_node_id: 101, kafka_listener_address: 192.0.2.101}}
        both-1: {{kafka_node_id: 9, kafka_listener_address: 192.0.2.9, kafka_jmx_exporter_bind_address: 10.0.0.9}}
    kafka_broker:
      hosts:
        brk-1: {{kafka_node_id: 1, kafka_listener_address: 192.0.2.11}}
        brk-2: {{kafka_node_id: 2, kafka_listener_address: 192.0.2.12, kafka_jmx_exporter_enabled: false}}
        both-1:
    zookeeper:
      hosts:
        zk-1: {{zookeeper_id: 1, zookeeper_client_address: 192.0.2.201}}
    monitoring:
      hosts:
        mon-1:
          monitoring_kafka_basic_auth_username: prometheus
          monitoring_kafka_basic_auth_password: s3cret
          monitoring_pyclient_targets: ["gpu-1:9464"]
"""

PLAYBOOK = """
- hosts: kafka_controller:kafka_broker
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: kafka, tasks_from: jmx_exporter_target.yml}}
      when: inventory_hostname != {skip!r}
- hosts: zookeeper
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: zookeeper, tasks_from: jmx_exporter_target.yml}}
- hosts: monitoring
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: monitoring, tasks_from: assert.yml, public: true}}
    - ansible.builtin.template:
        src: {repo}/roles/monitoring/templates/etc/prometheus/prometheus.yml.j2
        dest: "{out}/prometheus.yml"
        mode: "0644"
"""


def _render(work: Path, skip: str = "none") -> str:
    playbook = PLAYBOOK.replace("{skip!r}", repr(skip))
    return render(work, INVENTORY.format(python=sys.executable), playbook)["prometheus.yml"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    return yaml.safe_load(_render(tmp_path_factory.mktemp("prom")))


def _job(config: dict, name: str) -> dict:
    return next(j for j in config["scrape_configs"] if j["job_name"] == name)


def test_kafka_targets_from_the_inventory(config):
    kafka = _job(config, "kafka")
    targets = {sc["labels"]["instance"]: (sc["targets"], sc["labels"]) for sc in kafka["static_configs"]}
    assert set(targets) == {"ctl-1", "both-1", "brk-1"}  # brk-2 runs no agent
    assert targets["ctl-1"][0] == ["192.0.2.101:9404"]
    assert targets["both-1"][0] == ["10.0.0.9:9404"]  # the bind address wins
    assert targets["ctl-1"][1] == {"instance": "ctl-1", "node_id": "101", "process_roles": "controller"}
    assert targets["both-1"][1]["process_roles"] == "broker,controller"
    assert targets["brk-1"][1]["process_roles"] == "broker"
    assert kafka["basic_auth"] == {"username": "prometheus", "password": "s3cret"}
    node = _job(config, "node")
    assert sorted(t for sc in node["static_configs"] for t in sc["targets"]) == \
        ["10.0.0.9:9100", "192.0.2.101:9100", "192.0.2.11:9100"]


def test_zookeeper_and_pyclient_targets(config):
    zk = _job(config, "zookeeper")
    assert zk["static_configs"] == [{"targets": ["192.0.2.201:9405"], "labels": {"instance": "zk-1", "myid": "1"}}]
    assert _job(config, "pyclient")["static_configs"] == [{"targets": ["gpu-1:9464"]}]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool: apt-get install prometheus (make deps)")
def test_promtool_accepts_the_config(config, tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_host_without_its_published_endpoint_is_refused_by_name(tmp_path):
    with pytest.raises(AssertionError) as err:
        _render(tmp_path, skip="brk-1")
    assert "kafka_jmx_exporter_target_fact" in str(err.value) and "brk-1" in str(err.value)


def _render_secure(work: Path, extra_host_vars: str = "", zookeeper_ca: bool = True) -> str:
    """The inventory with the secure profile on every host: each Kafka host publishes https and
    its truststore's CA (HTTPS on /metrics, roles/kafka/tasks/jmx_exporter_tls.yml), the
    ZooKeeper member https and the CA file it was given (roles/zookeeper/tasks/jmx_exporter_tls.yml;
    with zookeeper_ca False that file is missing, as before the members' first converge)."""
    tls = work / "tls"
    tls.mkdir(parents=True)
    (tls / "truststore.pem").write_text("-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n")
    (tls / "zk-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nZKCA\n-----END CERTIFICATE-----\n")
    zk_ca = tls / ("zk-ca.pem" if zookeeper_ca else "missing.pem")
    inventory = INVENTORY.format(python=sys.executable).replace(
        "    kafka_security_profile: plaintext\n", "").replace(
        "    ansible_connection: local\n",
        f"    ansible_connection: local\n    kafka_security_profile: secure\n    kafka_tls_dir: {tls}\n"
        f"    zookeeper_jmx_exporter_tls_ca_mode: user\n    zookeeper_jmx_exporter_tls_user_ca_file: {zk_ca}\n")
    inventory = inventory.replace("brk-1: {kafka_node_id: 1, kafka_listener_address: 192.0.2.11}",
                                  "brk-1: {kafka_node_id: 1, kafka_listener_address: 192.0.2.11" + extra_host_vars + "}")
    return render(work, inventory, PLAYBOOK.replace("{skip!r}", "'none'"))["prometheus.yml"]


def test_https_targets_are_scraped_with_the_published_ca(tmp_path):
    kafka = _job(yaml.safe_load(_render_secure(tmp_path)), "kafka")
    assert kafka["scheme"] == "https"
    assert kafka["tls_config"] == {"ca_file": "/etc/prometheus/kafka-metrics-ca.pem"}
    assert len(kafka["static_configs"]) == 3


def test_mixed_http_and_https_kafka_hosts_are_refused(tmp_path):
    with pytest.raises(AssertionError) as err:
        _render_secure(tmp_path, ", kafka_jmx_exporter_tls: false")
    assert "['http', 'https']" in str(err.value) and "kafka_jmx_exporter_tls" in str(err.value)


def test_https_zookeeper_members_are_scraped_with_their_ca(tmp_path):
    config = yaml.safe_load(_render_secure(tmp_path))
    zk = _job(config, "zookeeper")
    assert zk["scheme"] == "https"   # on with the kafka role's secure profile
    assert zk["tls_config"] == {"ca_file": "/etc/prometheus/zookeeper-metrics-ca.pem"}
    assert zk["static_configs"] == [{"targets": ["192.0.2.201:9405"], "labels": {"instance": "zk-1", "myid": "1"}}]


def test_https_zookeeper_member_without_its_ca_is_refused(tmp_path):
    with pytest.raises(AssertionError) as err:
        _render_secure(tmp_path, zookeeper_ca=False)
    assert "ZooKeeper members' /metrics schemes are ['https']" in str(err.value)
    assert "zookeeper_jmx_exporter_tls" in str(err.value)
