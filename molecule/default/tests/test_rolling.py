"""Safe rolling changes on a live cluster (issue 3): one host at a time, no record lost, and a
refusal when a restart would take partitions below min.insync.replicas.

Runs in the default scenario's verify step (MOLECULE_INVENTORY_FILE), after converge and
idempotence; against the lab with KAFKA_KIT_INVENTORY=inventories/lab/hosts.yml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kit_clients import admin_config
from kit_rolls import assert_rolled_one_at_a_time, service_spans

REPO = Path(__file__).resolve().parents[3]
INVENTORY = os.environ.get("KAFKA_KIT_INVENTORY") or os.environ["MOLECULE_INVENTORY_FILE"]
HOSTS = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("kafka_broker")
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


@pytest.fixture(scope="module")
def hosts():
    return {name: _host(name) for name in HOSTS}


@pytest.fixture(scope="module")
def bootstrap(hosts) -> str:
    addresses = []
    for h in hosts.values():
        props = h.file("/etc/kafka/server.properties").content_string
        adv = next(l for l in props.splitlines() if l.startswith("advertised.listeners="))
        # The first advertised listener is the client one (then CONTROLLER on combined hosts).
        addresses.append(adv.split("=", 1)[1].split(",")[0].split("//", 1)[1])
    return ",".join(addresses)


def _playbook(playbook: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", INVENTORY, str(REPO / playbook), *extra],
                          capture_output=True, text=True, env=env, timeout=1800)


def _create_topic(bootstrap: str, name: str, rf: int, min_isr: int, partitions: int) -> AdminClient:
    admin = AdminClient({**admin_config(INVENTORY), "bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, rf, config={"min.insync.replicas": str(min_isr)})])
    futures[name].result(60)
    return admin


def test_roll_refused_when_a_partition_is_at_min_isr(hosts, bootstrap):
    topic = f"roll-refuse-{uuid.uuid4().hex[:8]}"
    admin = _create_topic(bootstrap, topic, rf=2, min_isr=2, partitions=1)
    try:
        time.sleep(3)
        before = service_spans(hosts)
        result = _playbook("playbooks/rolling_restart.yml")
        assert result.returncode != 0, "the roll must refuse to stop a broker of a partition at min ISR"
        assert "are at min.insync.replicas with this node in their ISR" in result.stdout, result.stdout[-3000:]
        assert topic in result.stdout
        # Refused before any stop: the broker the gate protected was not restarted.
        after = service_spans(hosts)
        refused = [n for n in hosts if after[n] == before[n]]
        assert refused, "at least the refused broker must still be running untouched"
    finally:
        admin.delete_topics([topic])[topic].result(60)


def test_config_change_rolls_one_host_at_a_time_without_losing_records(hosts, bootstrap):
    topic = f"roll-{uuid.uuid4().hex[:8]}"
    admin = _create_topic(bootstrap, topic, rf=3, min_isr=2, partitions=3)
    sent: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        producer = Producer({**admin_config(INVENTORY), "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 5, "delivery.timeout.ms": 300000})

        def on_delivery(err, msg) -> None:
            if err is not None:
                failures.append(str(err))
            else:
                sent.append(int(msg.value()))

        seq = 0
        deadline = time.monotonic() + 1500  # bounded, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            producer.produce(topic, str(seq).encode(), on_delivery=on_delivery)
            seq += 1
            producer.poll(0.002)
        producer.flush(120)

    started = time.monotonic_ns() // 1000
    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        time.sleep(3)
        # The Kafka play of site.yml (facts, install/configure, plan, gated roll, preferred
        # leaders): the change touches nothing else, and the other plays cost about 75 s here.
        result = _playbook("playbooks/kafka.yml",
                           "-e", '{"kafka_server_properties": {"log.retention.hours": 170}}')
        time.sleep(3)
    finally:
        stop.set()
        thread.join(300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    # Every host got the setting, and every host was restarted during this test.
    for name, h in hosts.items():
        assert "log.retention.hours=170" in h.file("/etc/kafka/server.properties").content_string, name
    # One at a time: no two hosts were down at the same moment.
    assert_rolled_one_at_a_time(service_spans(hosts), started)

    # Nothing lost: every record the producer sent is acknowledged and read back, once.
    assert failures == []
    assert len(sent) > 100
    consumer = Consumer({**admin_config(INVENTORY), "bootstrap.servers": bootstrap, "group.id": f"roll-check-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        seen: list[int] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 15 and len(seen) < len(sent):
            batch = consumer.consume(10000, timeout=1.0)
            if batch:
                idle_since = time.monotonic()
            for msg in batch:
                if msg.error():
                    raise KafkaException(msg.error())
                seen.append(int(msg.value()))
    finally:
        consumer.close()
        admin.delete_topics([topic])[topic].result(60)
    assert sorted(seen) == sorted(sent)
    assert len(seen) == len(set(seen))
