"""Records for the migration scenario: written before the migration, written during it, all
read back after it. Run with the venv's Python (confluent-kafka).

  loadgen.py seed  --bootstrap B --topic T --count N --out seed.json
  loadgen.py run   --bootstrap B --topic T --stop-file F --out run.json [--rate 50]
  loadgen.py check --bootstrap B --topic T --seed seed.json --run run.json

Each record's value is a unique id ("seed-17", "live-4242"). The producer is idempotent with
acks=all and retries until delivery.timeout.ms (10 minutes, longer than any broker restart):
a record it reports delivered must be read back, exactly once.
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

PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "delivery.timeout.ms": 600000, "request.timeout.ms": 30000}


def _produce(bootstrap: str, topic: str, ids, stop=lambda: False, rate: float = 0.0) -> dict:
    acked, failed = [], []

    def done(err, msg) -> None:
        (failed if err else acked).append(msg.value().decode())

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    for i, rid in enumerate(ids):
        if stop():
            break
        while True:
            try:
                producer.produce(topic, value=rid.encode(), key=rid.encode(), on_delivery=done)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
        if rate:
            time.sleep(1.0 / rate)
    remaining = producer.flush(660)
    return {"acked": acked, "failed": failed, "undelivered": remaining}


def seed(a) -> int:
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    fs = admin.create_topics([NewTopic(a.topic, num_partitions=6, replication_factor=3,
                                       config={"min.insync.replicas": "2"})])
    for f in fs.values():
        try:
            f.result(60)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    result = _produce(a.bootstrap, a.topic, (f"seed-{i}" for i in range(a.count)))
    json.dump(result, open(a.out, "w"))
    print(json.dumps({"acked": len(result["acked"]), "failed": len(result["failed"])}))
    return 0 if len(result["acked"]) == a.count else 1


def run(a) -> int:
    def ids():
        i = 0
        while True:
            yield f"live-{i}"
            i += 1
    result = _produce(a.bootstrap, a.topic, ids(), stop=lambda: os.path.exists(a.stop_file), rate=a.rate)
    json.dump(result, open(a.out, "w"))
    print(json.dumps({"acked": len(result["acked"]), "failed": len(result["failed"]),
                      "undelivered": result["undelivered"]}))
    return 0


def check(a) -> int:
    expected = []
    for path in (a.seed, a.run):
        expected += json.load(open(path))["acked"]
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"mig-check-{time.time()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    meta = consumer.list_topics(a.topic, timeout=30).topics[a.topic]
    parts = [TopicPartition(a.topic, p) for p in meta.partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in parts}
    consumer.assign([TopicPartition(a.topic, p, 0) for p in ends])
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
    missing = [r for r in expected if r not in seen]
    report = {"expected": len(expected), "read": sum(seen.values()), "missing": len(missing),
              "missing_sample": missing[:10], "duplicates": sum(c - 1 for c in seen.values() if c > 1),
              "seed": sum(1 for r in expected if r.startswith("seed-")),
              "live": sum(1 for r in expected if r.startswith("live-"))}
    print(json.dumps(report))
    return 0 if not missing else 1


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("seed", "run", "check"):
        s = sub.add_parser(name)
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--topic", default="migration-test")
    sub.choices["seed"].add_argument("--count", type=int, default=20000)
    sub.choices["seed"].add_argument("--out", required=True)
    sub.choices["run"].add_argument("--stop-file", required=True)
    sub.choices["run"].add_argument("--out", required=True)
    sub.choices["run"].add_argument("--rate", type=float, default=50.0)
    sub.choices["check"].add_argument("--seed", required=True)
    sub.choices["check"].add_argument("--run", required=True)
    a = p.parse_args()
    return {"seed": seed, "run": run, "check": check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
