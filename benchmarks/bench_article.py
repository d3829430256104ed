#!/usr/bin/env python3
"""The reference article's table, measured: before vs after, side by side, in one run.

before: Kafka's defaults and the article's client code. The brokers: a cluster of three
        nodes on Kafka's own defaults (the distribution's server.properties and JVM options,
        benchmarks/_defaults_cluster.py, started on this host for the run unless
        --before-servers names one), plaintext as shipped; topics with Kafka's default topic
        settings (RF and min ISR as given, nothing else set). The client: the article's
        producer loop (json.dumps per line, produce + poll(0), a print per delivery,
        batch.size=16384, linger.ms=10, lz4) and its consumer (group, auto commit, poll(1.0)
        one message at a time, json.loads, a train_model stub).
after:  the kit's cluster (-b, with --command-config on a secure one: the lab's profile), a
        topic with the kit's topic settings (lz4, min ISR 2, max.message.bytes) and pyclient
        (Ingestor, FeedConsumer, KafkaTokenDataset).
Beside them Kafka's own tools on the after cluster: ProducerPerformance, ConsumerPerformance,
EndToEndLatency.

Rows: producer throughput (median of --rounds alternating rounds), end-to-end latency
avg/p50/p99 at one fixed offered rate for both sides (--rate, default half of before's median
peak), then pyclient's at EndToEndLatency's own rate (that tool is serial: one record in
flight, so its rate is 1 / its latency), with pyclient's defaults and with linger.ms=0 (the
producer setting EndToEndLatency uses); consumer throughput; and a training-time proxy:
seconds to deliver --tokens tokens of packed batches (seq_len x batch) to a simulated
training step.

  python benchmarks/bench_article.py -b H1:9092,H2:9092,H3:9092 --replication-factor 3 \
      --command-config inventories/lab/.kafka-kit/clients/admin.properties
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_producer as bp  # noqa: E402
from _common import (REPO, make_corpus, parser, percentile, run_child, run_proc,  # noqa: E402
                     save_results, use_command_config)

#: The article's claims [ART], the "claimed" columns of the table.
CLAIMED = {"throughput": ("10 MB/s", "15 MB/s"), "average latency": ("50 ms", "25 ms"),
           "training time": ("12 h", "8.5 h")}
#: The latency rows' first record (not measured, skipped by the consumers).
WARMUP = b"warmup"


# -- children (each in its own process) --------------------------------------------------------

def child_article_consumer(a: argparse.Namespace) -> dict[str, Any]:
    """The article's consumer: poll(1.0) one message at a time, json.loads, train_model(text)."""
    import confluent_kafka as ck

    c = ck.Consumer({"bootstrap.servers": a.bootstrap_servers, "group.id": a.group,
                     "auto.offset.reset": "earliest"})
    start = time.perf_counter()  # the training proxy counts from here (join included)
    c.subscribe([a.topic])
    lat: list[float] = []
    n = nbytes = tokens = 0
    t0 = start if a.tokens else None
    deadline = time.monotonic() + a.max_seconds
    while n < a.n and time.monotonic() < deadline:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        if msg.value() == WARMUP:
            continue
        t0 = t0 or time.perf_counter()
        text = json.loads(msg.value().decode("utf-8"))["text"]
        if a.latency:
            lat.append(time.time() - float(text.split(" ", 1)[0]))
        tokens += len(text.encode()) + 1  # train_model(text): byte tokens + EOS
        n += 1
        nbytes += len(msg.value())
        if a.tokens and tokens >= a.tokens:
            break
    dt = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return {"records": n, "bytes": nbytes, "seconds": dt, "tokens": tokens, **_lat(lat)}


def child_pyclient_consumer(a: argparse.Namespace) -> dict[str, Any]:
    from pyclient.consumer import FeedConsumer

    c = FeedConsumer(a.bootstrap_servers, a.topic, settings={"group.id": a.group},
                     stop_at_end=not a.latency, meta=False)
    lat: list[float] = []
    n = nbytes = 0
    t0 = None
    deadline = time.monotonic() + a.max_seconds
    while n < a.n and time.monotonic() < deadline:
        batch = c.consume(10000, timeout=1.0)  # returns once a record is there
        if not batch:
            if not a.latency and c.at_end():
                break
            continue
        batch = [r for r in batch if r.value != WARMUP]
        t0 = t0 or time.perf_counter()
        if a.latency:
            now = time.time()
            lat.extend(now - float(r.value.split(b" ", 1)[0]) for r in batch if r.value)
        n += len(batch)
        nbytes += sum(len(r.value or b"") for r in batch)
        c.commit()
    dt = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return {"records": n, "bytes": nbytes, "seconds": dt, **_lat(lat)}


def child_pyclient_training(a: argparse.Namespace) -> dict[str, Any]:
    """KafkaTokenDataset: packed (batch x seq_len) batches until --tokens tokens were delivered."""
    from pyclient.dataset import KafkaTokenDataset

    t0 = time.perf_counter()  # as the article's consumer: from before the first connection
    ds = KafkaTokenDataset(a.bootstrap_servers, a.topic, seq_len=a.seq_len, batch_size=a.batch,
                           settings={"group.id": a.group})
    tokens = 0
    for b in ds:
        tokens += a.seq_len * a.batch  # the simulated training step takes the batch
        if tokens >= a.tokens:
            break
    return {"records": 0, "bytes": 0, "seconds": time.perf_counter() - t0, "tokens": tokens}


def child_rate_producer(a: argparse.Namespace, article: bool) -> dict[str, Any]:
    """Offer --rate records/s for --seconds; each value starts with its send time."""
    import confluent_kafka as ck

    from pyclient.config import PRODUCER_DEFAULTS, merged

    cfg = ({"bootstrap.servers": a.bootstrap_servers, "batch.size": 16384, "linger.ms": 10,
            "compression.type": "lz4", "acks": "all"} if article else
           merged(PRODUCER_DEFAULTS, "confluent", a.bootstrap_servers,
                  dict(x.split("=", 1) for x in a.X)))
    p = ck.Producer(cfg)
    # Warm-up: connections, metadata and (idempotence) the producer id before the clock starts;
    # without it the first records of either side waited ~0.5 s for them (the p99 of a short
    # row). The consumers skip this record.
    p.produce(a.topic, WARMUP)
    p.flush(60)
    pad = "x" * max(a.record_size - 40, 0)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < a.seconds:
        due = int(elapsed * a.rate) + 1
        while n < due:
            text = f"{time.time():.6f} {pad}"
            value = json.dumps({"text": text}).encode() if article else text.encode()
            p.produce(a.topic, value)
            p.poll(0)
            n += 1
        time.sleep(0.001)
    p.flush(60)
    return {"records": n, "seconds": time.perf_counter() - t0}


def _lat(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {}
    return {"avg_ms": statistics.fmean(lat) * 1e3, "p50_ms": percentile(lat, 0.5) * 1e3,
            "p99_ms": percentile(lat, 0.99) * 1e3}


# -- orchestration --------------------------------------------------------------------------------

def servers(a: argparse.Namespace, side: str) -> str:
    """The bootstrap list of the side's cluster."""
    return a.before_servers if side == "before" else a.bootstrap_servers


def child(a: argparse.Namespace, name: str, topic: str, side: str, x: tuple[str, ...] = (),
          **kw: Any) -> tuple[dict[str, Any], float]:
    args = [sys.executable, __file__, "--child", name, "--topic", topic, "-b", servers(a, side),
            "--group", kw.pop("group", f"g-{topic}-{time.time_ns()}"), "--record-size",
            str(a.record_size)]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    for setting in (*a.X, *x):
        args += ["-X", setting]
    res, ru, _wall = run_child(args)
    return res, ru.ru_utime + ru.ru_stime


def make_topic(a: argparse.Namespace, side: str) -> str:
    from pyclient.admin import Admin

    topic = f"bench-article-{side}-{time.time_ns()}"
    cfg = {"min.insync.replicas": str(min(2, a.replication_factor))}
    if side == "after":  # the kit's topic settings (inventories/*/group_vars/all/topics.yml)
        cfg.update({"compression.type": "lz4", "max.message.bytes": "1048588"})
    admin = a.admin_config if side == "after" else {"bootstrap.servers": a.before_servers}
    with Admin(admin) as adm:
        adm.ensure_topic(topic, a.partitions, a.replication_factor, cfg)
    time.sleep(1.0)
    return topic


def java_tool(a: argparse.Namespace, tool: str, args: list[str]) -> str:
    """One of Kafka's tools against the after cluster (its client properties file, if any)."""
    from _broker import kafka_home  # tests/pyclient, on the path through bench_producer

    home = Path(a.kafka_home) if a.kafka_home else kafka_home()
    cfg = ["--command-config", a.command_config] if a.command_config else []
    out, err, _ru, _wall = run_proc(["java", "-Xmx1g", "-cp", f"{home}/libs/*",
                                     "-Dlog4j2.configurationFile=" + str(bp._quiet_log4j()),
                                     f"org.apache.kafka.tools.{tool}", *args, *cfg],
                                    env=dict(os.environ))
    return out + err


def _ns(a: argparse.Namespace, side: str, corpus: Path) -> argparse.Namespace:
    return argparse.Namespace(bootstrap_servers=servers(a, side), X=a.X, records=a.records,
                              record_size=a.record_size, kafka_home=a.kafka_home, corpus=corpus,
                              command_config=a.command_config)


def producer_rows(a: argparse.Namespace, corpus: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"article": [], "pyclient": [], "java": []}
    for rnd in range(-a.warmup_rounds, a.rounds):  # alternating: every contender sees the
        for name in runs:                            # same background; rnd < 0: warm-up, not counted
            side = "before" if name == "article" else "after"
            r = bp.run_one(_ns(a, side, corpus), name, make_topic(a, side), corpus)
            if rnd >= 0:
                runs[name].append(r)
            label = f"round {rnd + 1}" if rnd >= 0 else f"warm-up {rnd + a.warmup_rounds + 1}"
            print(f"  {label}: {name}: {r['mb_s']:.1f} MB/s", file=sys.stderr)
    med = {n: sorted(rs, key=lambda r: r["records_s"])[len(rs) // 2] for n, rs in runs.items()}
    ratio = [p["records_s"] / j["records_s"] for p, j in zip(runs["pyclient"], runs["java"])]
    return {"median": med, "runs": runs, "pyclient_over_java": ratio,
            "pyclient_over_java_median": statistics.median(ratio)}


def e2e(a: argparse.Namespace, side: str, rate: float, x: tuple[str, ...] = ()) -> dict[str, Any]:
    """Records offered at ``rate``/s for --seconds to a fresh topic of ``side``'s cluster, read
    by the side's consumer in another process; each latency is receive time - send time."""
    import subprocess

    article = side == "before"
    topic = make_topic(a, side)
    n = int(rate * a.seconds)
    c = subprocess.Popen([sys.executable, __file__, "--child",
                          "article-consumer" if article else "pyclient-consumer",
                          "--topic", topic, "-b", servers(a, side), "--group", f"lat-{topic}",
                          "--n", str(n), "--latency", "--max-seconds", str(a.seconds + 60)],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(5.0)  # the consumer has joined and sits at the end of the empty topic
    prod, _cpu = child(a, "rate-article" if article else "rate-pyclient", topic, side, x,
                       rate=rate, seconds=a.seconds)
    res = json.loads(c.communicate(timeout=a.seconds + 120)[0].strip().splitlines()[-1])
    return {**res, "rate": rate, "offered": prod["records"] / prod["seconds"], "settings": list(x)}


def latency_rows(a: argparse.Namespace, rate: float) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate}
    topic = make_topic(a, "after")
    text = java_tool(a, "EndToEndLatency", ["--bootstrap-server", a.bootstrap_servers, "--topic",
                                           topic, "--num-records", str(a.e2e_records),
                                           "--producer-acks", "all", "--record-size",
                                           str(a.record_size)])
    m = re.search(r"Avg latency: ([\d.]+) ms", text)
    pct = re.search(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+)", text)
    if not (m and pct):
        raise RuntimeError(f"EndToEndLatency output not understood:\n{text[-2000:]}")
    out["java"] = {"avg_ms": float(m[1]), "p50_ms": float(pct[1]), "p99_ms": float(pct[2]),
                   "rate": 1000.0 / float(m[1]), "note": "serial: one record in flight"}
    out["before"] = e2e(a, "before", rate)
    out["after"] = e2e(a, "after", rate)
    out["after_at_java_rate"] = e2e(a, "after", out["java"]["rate"])
    out["after_at_java_rate_linger0"] = e2e(a, "after", out["java"]["rate"], ("linger.ms=0",))
    return out


def consumer_rows(a: argparse.Namespace, corpus: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side, name in (("before", "article"), ("after", "pyclient")):
        topic = make_topic(a, side)
        bp.run_one(_ns(a, side, corpus), name, topic, corpus)  # fill it the side's own way
        res, cpu = child(a, f"{name}-consumer", topic, side, n=a.records, max_seconds=600)
        res2, _ = child(a, "pyclient-training" if side == "after" else "article-consumer", topic,
                        side, tokens=a.tokens, n=a.records, max_seconds=600, seq_len=a.seq_len,
                        batch=a.batch)
        out[side] = {"consume": {**res, "mb_s": res["bytes"] / res["seconds"] / 1e6,
                                 "records_s": res["records"] / res["seconds"], "cpu_s": cpu},
                     "training": res2, "topic": topic}
        if side == "after":
            text = java_tool(a, "ConsumerPerformance", ["--bootstrap-server", a.bootstrap_servers,
                                                        "--topic", topic, "--num-records",
                                                        str(a.records), "--timeout", "60000"])
            m = re.findall(r"^[\d-]+ [\d:.]+, [\d-]+ [\d:.]+, ([\d.]+), ([\d.]+), (\d+), ([\d.]+)",
                           text, re.M)
            out["java"] = ({"mb_s": float(m[-1][1]) * 1.048576, "records_s": float(m[-1][3])}
                           if m else {"raw": text[-2000:]})
    return out


def table(p: dict[str, Any], lat: dict[str, Any], c: dict[str, Any]) -> str:
    med = p["median"]
    b, af, j = med["article"], med["pyclient"], med["java"]

    def ms(d: dict[str, Any]) -> str:
        return (f"{d['avg_ms']:.1f} / {d['p50_ms']:.1f} / {d['p99_ms']:.1f} ms"
                if "avg_ms" in d else "n/a")
    tb, ta = c["before"]["training"], c["after"]["training"]
    lj, l1, l0 = lat["java"], lat["after_at_java_rate"], lat["after_at_java_rate_linger0"]
    rows = [
        "| metric | article claims before -> after | measured before (defaults + article code) "
        "| measured after (kit + pyclient) | after / before | Kafka's own tool |",
        "|---|---|---|---|---|---|",
        f"| producer throughput | 10 -> 15 MB/s | {b['mb_s']:.1f} MB/s, {b['records_s']:,.0f} rec/s "
        f"| {af['mb_s']:.1f} MB/s, {af['records_s']:,.0f} rec/s | {af['records_s'] / b['records_s']:.1f}x "
        f"| ProducerPerformance {j['mb_s']:.1f} MB/s (pyclient/java median "
        f"{p['pyclient_over_java_median']:.2f}x) |",
        f"| end-to-end latency avg / p50 / p99 at {lat['rate']:,.0f} rec/s | 50 -> 25 ms avg "
        f"| {ms(lat['before'])} | {ms(lat['after'])} "
        f"| {lat['before']['avg_ms'] / lat['after']['avg_ms']:.1f}x lower avg | |",
        f"| end-to-end latency avg / p50 / p99 at {lj['rate']:,.0f} rec/s (EndToEndLatency's rate) "
        f"| | | {ms(l1)}; with linger.ms=0: {ms(l0)} | | EndToEndLatency {ms(lj)}: pyclient p99 "
        f"{l1['p99_ms'] / lj['p99_ms']:.2f}x, with linger.ms=0 {l0['p99_ms'] / lj['p99_ms']:.2f}x |",
        f"| consumer throughput | | {c['before']['consume']['mb_s']:.1f} MB/s "
        f"| {c['after']['consume']['mb_s']:.1f} MB/s "
        f"| {c['after']['consume']['records_s'] / c['before']['consume']['records_s']:.1f}x "
        f"| ConsumerPerformance {c['java'].get('mb_s', float('nan')):.1f} MB/s |",
        f"| training-time proxy: {ta['tokens']:,} tokens to the training step | 12 -> 8.5 h "
        f"| {tb['seconds']:.1f} s | {ta['seconds']:.1f} s | {tb['seconds'] / ta['seconds']:.1f}x "
        f"faster | |",
        "",
        f"producer: MB per client CPU-second: article {b['mb_per_cpu_s']:.1f}, pyclient "
        f"{af['mb_per_cpu_s']:.1f}, java {j['mb_per_cpu_s']:.1f} (java includes JVM start-up)",
        "pyclient / ProducerPerformance per round: "
        + ", ".join(f"{x:.2f}" for x in p["pyclient_over_java"]),
        "after / before per round: " + ", ".join(
            f"{x['records_s'] / y['records_s']:.2f}"
            for x, y in zip(p["runs"]["pyclient"], p["runs"]["article"]))]
    return "\n".join(rows)


def main() -> int:
    ap = parser(__doc__, records=200_000)
    ap.add_argument("--before-servers", default=None,
                    help="the before side's cluster (default: start benchmarks/_defaults_cluster.py's "
                         "three nodes on Kafka's defaults on this host for the run)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup-rounds", type=int, default=1,
                    help="unmeasured rounds first: the before cluster is started for the run, and "
                         "its first rounds ran at half the speed of its later ones (JIT warm-up)")
    ap.add_argument("--rate", type=float, default=None, help="records/s for the latency row")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency row duration")
    ap.add_argument("--e2e-records", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=20_000_000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--kafka-home", default=None)
    ap.add_argument("--out", default=str(REPO / ".cache" / "bench"))
    ap.add_argument("-X", action="append", default=[], help="extra pyclient producer setting")
    for hidden in ("--child", "--topic", "--group"):
        ap.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--max-seconds", type=float, default=600, help=argparse.SUPPRESS)
    ap.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        fn = {"article-consumer": child_article_consumer,
              "pyclient-consumer": child_pyclient_consumer,
              "pyclient-training": child_pyclient_training,
              "rate-article": lambda x: child_rate_producer(x, True),
              "rate-pyclient": lambda x: child_rate_producer(x, False)}[a.child]
        print(json.dumps(fn(a)))
        return 0
    if a.command_config:
        a.command_config = str(Path(a.command_config).resolve())
    a.admin_config = use_command_config(a)  # pyclient children read it from the environment
    with contextlib.ExitStack() as stack:
        if not a.before_servers:
            from _defaults_cluster import defaults_cluster

            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-defaults-")))
            a.before_servers = stack.enter_context(defaults_cluster(work))
            a.before_cluster = "Kafka's defaults, 3 nodes on this host (benchmarks/_defaults_cluster.py)"
        else:
            a.before_cluster = a.before_servers
        return run(a)


def run(a: argparse.Namespace) -> int:
    t_start = time.monotonic()
    out = Path(a.out)
    corpus = make_corpus(out / f"corpus-{a.records}x{a.record_size}.txt", a.records, a.record_size)
    p = producer_rows(a, corpus)
    rate = a.rate or 0.5 * p["median"]["article"]["records_s"]
    lat = latency_rows(a, rate)
    c = consumer_rows(a, corpus)
    print(f"the article's table, measured: {a.records:,} records x {a.record_size} B, "
          f"RF {a.replication_factor}, {a.partitions} partitions; before: {a.before_cluster}; "
          f"after: {a.bootstrap_servers}{' with ' + a.command_config if a.command_config else ''}; "
          f"{a.warmup_rounds} warm-up + {a.rounds} alternating rounds, "
          f"{time.monotonic() - t_start:.0f} s")
    print(table(p, lat, c))
    rows = [{"name": "before", "mb_s": p["median"]["article"]["mb_s"],
             "p99_ms": lat["before"].get("p99_ms", 0.0),
             "consume_mb_s": c["before"]["consume"]["mb_s"]},
            {"name": "after", "mb_s": p["median"]["pyclient"]["mb_s"],
             "p99_ms": lat["after"].get("p99_ms", 0.0),
             "consume_mb_s": c["after"]["consume"]["mb_s"]},
            {"name": "kafka tools", "mb_s": p["median"]["java"]["mb_s"],
             "p99_ms": lat["java"].get("p99_ms", 0.0),
             "consume_mb_s": c.get("java", {}).get("mb_s", 0.0)}]
    save_results(out, "article", {k: v for k, v in vars(a).items()
                                  if k not in ("child", "admin_config")},
                 [{**r, "detail": {"producer": p, "latency": lat, "consumer": c}} if i == 0 else r
                  for i, r in enumerate(rows)],
                 "the article's table: before vs after vs Kafka's tools",
                 [("mb_s", "producer MB/s"), ("p99_ms", "e2e p99 ms (fixed rate; tools: serial)"),
                  ("consume_mb_s", "consumer MB/s")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
