"""Traffic of the day2 scenario: an idempotent acks=all producer and a consumer running while the
cluster is upgraded, grown, drained and hurt; the totals checked at the end. Run with the venv's
Python (confluent-kafka).

  loadgen.py produce --bootstrap B --stop-file F --out produced.json [--rate 100]
  loadgen.py consume --bootstrap B --stop-file F --out consumed.json
  loadgen.py wait-isr --bootstrap B [--timeout 300]     every partition's ISR = its replicas
  loadgen.py leader --bootstrap B                       node id leading partition 0
  loadgen.py check --bootstrap B --produced P --consumed C --out totals.json

Each record's value is a unique id ("r-4242"). The producer retries until delivery.timeout.ms
(10 minutes, longer than any fault here): every record it reports acknowledged must be read back
exactly once by a reader from the beginning (check). The consumer is a group member committing
after it has written what it read (at least once: a record may be seen twice across a fault,
never lost); check reports its duplicates apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "day2-traffic"
PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "delivery.timeout.ms": 600000, "request.timeout.ms": 30000}


def _topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(TOPIC, num_partitions=6, replication_factor=3,
                                       config={"min.insync.replicas": "2"})])
    for f in fs.values():
        try:
            f.result(60)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def produce(a) -> int:
    _topic(a.bootstrap)
    acked: list[str] = []
    failed: list[str] = []
    sent = 0

    def done(err, msg) -> None:
        (failed if err else acked).append(msg.value().decode())

    producer = Producer({"bootstrap.servers": a.bootstrap, **PRODUCER})
    payload = b"x" * a.size
    while not os.path.exists(a.stop_file):
        rid = f"r-{sent}"
        while True:
            try:
                producer.produce(TOPIC, value=rid.encode(), key=payload, on_delivery=done)
                break
            except BufferError:
                producer.poll(0.5)
        sent += 1
        producer.poll(0)
        time.sleep(1.0 / a.rate)
    remaining = producer.flush(660)
    json.dump({"sent": sent, "acked": acked, "failed": failed, "undelivered": remaining}, open(a.out, "w"))
    return 0


def consume(a) -> int:
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "day2-feed",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    seen: list[str] = []
    last_commit = time.time()
    idle_since = None
    while True:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            seen.append(msg.value().decode())
            idle_since = None
        elif os.path.exists(a.stop_file):
            # stop once the producer has stopped and nothing came for 15 s
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 15:
                break
        if time.time() - last_commit > 1:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException:
                pass  # nothing to commit yet, or a coordinator move: the next commit covers it
            last_commit = time.time()
    consumer.close()
    json.dump({"read": seen}, open(a.out, "w"))
    return 0


def wait_isr(a) -> int:
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    deadline = time.time() + a.timeout
    short: list[str] = []
    while time.time() < deadline:
        try:
            topics = admin.list_topics(timeout=10).topics
        except KafkaException:
            time.sleep(2)
            continue
        short = [f"{t}-{p}" for t, md in topics.items() for p, pm in md.partitions.items()
                 if sorted(pm.isrs) != sorted(pm.replicas) or pm.leader < 0]
        if not short:
            print(json.dumps({"full_isr": True, "waited_s": round(a.timeout - (deadline - time.time()), 1)}))
            return 0
        time.sleep(2)
    print(json.dumps({"full_isr": False, "short": short[:20]}))
    return 1


def leader(a) -> int:
    md = AdminClient({"bootstrap.servers": a.bootstrap}).list_topics(TOPIC, timeout=30)
    print(md.topics[TOPIC].partitions[0].leader)
    return 0


def check(a) -> int:
    produced = json.load(open(a.produced))
    live = json.load(open(a.consumed))["read"]
    acked = produced["acked"]
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"day2-check-{time.time()}",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(TOPIC, timeout=30).topics[TOPIC]
    ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1] for p in meta.partitions}
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in ends])
    seen: Counter = Counter()
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.time() + 300
    while len(done) < len(ends) and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        seen[msg.value().decode()] += 1
        if msg.offset() + 1 >= ends[msg.partition()]:
            done.add(msg.partition())
    consumer.close()
    live_seen = Counter(live)
    totals = {
        "sent": produced["sent"], "acked": len(acked), "failed": len(produced["failed"]),
        "undelivered": produced["undelivered"],
        "read_back": sum(seen.values()),
        "duplicated": sum(c - 1 for c in seen.values() if c > 1),
        "lost": sum(1 for r in acked if r not in seen),
        "lost_sample": [r for r in acked if r not in seen][:10],
        "live_read": len(live), "live_duplicated": sum(c - 1 for c in live_seen.values() if c > 1),
        "live_missed": sum(1 for r in acked if r not in live_seen),
    }
    json.dump(totals, open(a.out, "w"))
    print(json.dumps(totals))
    return 0 if totals["lost"] == 0 and totals["duplicated"] == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("produce", "consume", "wait-isr", "leader", "check"):
        sub.add_parser(name).add_argument("--bootstrap", required=True)
    for name in ("produce", "consume"):
        sub.choices[name].add_argument("--stop-file", required=True)
        sub.choices[name].add_argument("--out", required=True)
    sub.choices["produce"].add_argument("--rate", type=float, default=100.0)
    sub.choices["produce"].add_argument("--size", type=int, default=1024)
    sub.choices["wait-isr"].add_argument("--timeout", type=float, default=300.0)
    sub.choices["check"].add_argument("--produced", required=True)
    sub.choices["check"].add_argument("--consumed", required=True)
    sub.choices["check"].add_argument("--out", required=True)
    a = p.parse_args()
    return {"produce": produce, "consume": consume, "wait-isr": wait_isr, "leader": leader,
            "check": check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
