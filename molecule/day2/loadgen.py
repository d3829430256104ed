"""Traffic of the day2 scenario: an idempotent acks=all producer and a consumer running while the
cluster is upgraded, grown, drained and hurt; the totals checked at the end. Run with the venv's
Python (confluent-kafka).

  loadgen.py produce --bootstrap B --stop-file F --out produced.json [--rate 100]
  loadgen.py consume --bootstrap B --stop-file F --out consumed.json
  loadgen.py wait-isr --bootstrap B [--timeout 300]     every partition's ISR = its replicas
  loadgen.py leader --bootstrap B                       node id leading partition 0
  loadgen.py check --bootstrap B --produced P --consumed C --out totals.json
  loadgen.py feed-fill --bootstrap B [--docs 5000]      the training feed's fixed topic
  loadgen.py feed --bootstrap B --work W --stop-file F  the training feed, resumed when killed
  loadgen.py feed-check --bootstrap B --work W --out feed.json

Each record's value is a unique id ("r-4242"). The producer retries until delivery.timeout.ms
(10 minutes, longer than any fault here): every record it reports acknowledged must be read back
exactly once by a reader from the beginning (check). The consumer is a group member committing
after it has written what it read (at least once: a record may be seen twice across a fault,
never lost); check reports its duplicates apart.

The training feed (pyclient's KafkaTokenDataset, byte tokens, epoch after epoch) reads a fixed
topic of --docs documents throughout, a batch every --step-s seconds. After each batch it
appends the batch's sha256 to W/feed.log and then saves its state to W/feed.state (replaced
atomically). day2.sh kills it with kill -9 (W/feed.pid) at its faults and steps; the supervisor
starts it again at once, from the saved state, and the child cuts the log back to the state's
batch count (a batch logged but not saved is delivered again, as a training loop resumed from
its checkpoint would take it again). feed-check reads the same number of batches with one
uninterrupted dataset from the start and compares them batch by batch.
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


def _topic(bootstrap: str, name: str = TOPIC) -> bool:
    """Create ``name`` (6 partitions, RF 3, min ISR 2) unless it exists; True when created."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=3,
                                       config={"min.insync.replicas": "2"})])
    for f in fs.values():
        try:
            f.result(60)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
            return False
    return True


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


FEED_TOPIC = "day2-feed"
FEED = {"seq_len": 512, "batch_size": 4}


def feed_fill(a) -> int:
    if not _topic(a.bootstrap, FEED_TOPIC):  # a rerun: the topic must hold exactly the documents
        c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "day2-feed-fill"})
        parts = c.list_topics(FEED_TOPIC, timeout=30).topics[FEED_TOPIC].partitions
        n = sum(c.get_watermark_offsets(TopicPartition(FEED_TOPIC, q), timeout=30)[1] for q in parts)
        c.close()
        print(json.dumps({"docs": n, "existed": True}))
        return 0 if n == a.docs else 1
    producer = Producer({"bootstrap.servers": a.bootstrap, **PRODUCER})
    for i in range(a.docs):
        text = f"day2 feed document {i}: " + " ".join(f"w{i * 7 + j}" for j in range(20 + i % 180))
        producer.produce(FEED_TOPIC, value=text.encode())
        producer.poll(0)
    left = producer.flush(120)
    print(json.dumps({"docs": a.docs, "undelivered": left}))
    return 1 if left else 0


def _dataset(bootstrap: str):
    from pyclient.dataset import KafkaTokenDataset

    return KafkaTokenDataset(bootstrap, FEED_TOPIC, **FEED, settings={"group.id": "day2-train"})


def _digest(batch) -> str:
    import hashlib

    ids = batch["input_ids"]
    ids = ids.tolist() if hasattr(ids, "tolist") else ids
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def _batches(ds):
    """The dataset's batches, epoch after epoch, forever."""
    while True:
        yield from ds
        ds.set_epoch(ds.epoch + 1)


def feed_child(a) -> int:
    work = a.work
    open(os.path.join(work, "feed.pid"), "w").write(str(os.getpid()))
    ds = _dataset(a.bootstrap)
    state_file, log_file = os.path.join(work, "feed.state"), os.path.join(work, "feed.log")
    k = 0
    if os.path.exists(state_file):
        saved = json.load(open(state_file))
        ds.load_state_dict(saved["dataset"])
        k = saved["batches"]
    lines = open(log_file).read().splitlines() if os.path.exists(log_file) else []
    if len(lines) < k:
        raise SystemExit(f"feed.log has {len(lines)} batches, the state {k}: the log lost some")
    with open(log_file, "w") as f:  # what was logged after the last saved state is taken again
        f.writelines(line + "\n" for line in lines[:k])
    with open(log_file, "a") as log:
        for batch in _batches(ds):
            k += 1
            log.write(f"{k} {ds.epoch} {_digest(batch)}\n")
            log.flush()
            tmp = state_file + ".tmp"
            json.dump({"batches": k, "dataset": ds.state_dict()}, open(tmp, "w"))
            os.replace(tmp, state_file)
            if os.path.exists(a.stop_file):
                return 0
            time.sleep(a.step_s)
    return 0


def feed(a) -> int:
    """Supervisor: run the feed child until the stop file; start it again whenever it ends
    otherwise (killed, or failed on a fault), from its saved state."""
    import subprocess

    runs: list[dict] = []
    while True:
        t0 = time.time()
        r = subprocess.run([sys.executable, __file__, "feed-child", "--bootstrap", a.bootstrap,
                            "--work", a.work, "--stop-file", a.stop_file, "--step-s", str(a.step_s)],
                           stderr=subprocess.PIPE, text=True)
        runs.append({"rc": r.returncode, "seconds": round(time.time() - t0, 1),
                     "stderr": r.stderr.strip().splitlines()[-3:]})
        if r.returncode == 0 and os.path.exists(a.stop_file):
            break
        time.sleep(1)
    json.dump({"runs": runs}, open(os.path.join(a.work, "feed-runs.json"), "w"))
    return 0


def feed_check(a) -> int:
    got = [line.split() for line in open(os.path.join(a.work, "feed.log")).read().splitlines()]
    runs = json.load(open(os.path.join(a.work, "feed-runs.json")))["runs"]
    ref = []
    for batch in _batches(_dataset(a.bootstrap)):
        ref.append(_digest(batch))
        if len(ref) == len(got):
            break
    mismatch = next((i for i, (g, r) in enumerate(zip(got, ref)) if g[2] != r), None)
    totals = {"batches": len(got), "epochs": int(got[-1][1]) + 1 if got else 0,
              "tokens": len(got) * FEED["seq_len"] * FEED["batch_size"],
              "runs": len(runs), "killed": sum(1 for r in runs if r["rc"] == -9),
              "failed": [r for r in runs if r["rc"] not in (0, -9)],
              "equal": mismatch is None and len(ref) == len(got) and bool(got),
              "first_mismatch": mismatch}
    json.dump(totals, open(a.out, "w"))
    print(json.dumps(totals))
    return 0 if totals["equal"] else 1


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
    for name in ("feed-fill", "feed", "feed-child", "feed-check"):
        sub.add_parser(name).add_argument("--bootstrap", required=True)
    sub.choices["feed-fill"].add_argument("--docs", type=int, default=5000)
    for name in ("feed", "feed-child", "feed-check"):
        sub.choices[name].add_argument("--work", required=True)
    for name in ("feed", "feed-child"):
        sub.choices[name].add_argument("--stop-file", required=True)
        sub.choices[name].add_argument("--step-s", type=float, default=0.05)
    sub.choices["feed-check"].add_argument("--out", required=True)
    a = p.parse_args()
    return {"produce": produce, "consume": consume, "wait-isr": wait_isr, "leader": leader,
            "check": check, "feed-fill": feed_fill, "feed": feed, "feed-child": feed_child,
            "feed-check": feed_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
