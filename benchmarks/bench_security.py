#!/usr/bin/env python3
"""Security cost benchmark: pyclient's producer (corpus ingest) and training feed against a
plaintext cluster and a SASL_SSL (SCRAM-SHA-512) cluster of the same shape, in one run.

Each round runs, for each cluster in turn (alternating, so both see the same background), the
pyclient ingest of ``--records`` JSONL documents of ``--record-size`` bytes into a fresh topic
(``--partitions``, ``--replication-factor``, acks=all, lz4) and then the training feed
(KafkaTokenDataset, byte tokenizer, packed tensors) over that topic; each in its own process.
Printed per side: the median round's records/s and MB/s (ingest), tokens/s (feed), the
client's CPU seconds and the CPU seconds the rest of the machine spent meanwhile (on the lab:
the brokers; read from /proc/stat, minus the client's own); then secure / plaintext ratios.
Where the cost goes: TLS encryption and decryption in the client (librdkafka's OpenSSL) and in
the brokers (each record crosses TLS from the producer, to two followers on the inter-broker
listener, and to the feed), all on the same shared cores in the lab.

  python benchmarks/bench_security.py --plain-servers 10.89.61.11:9092,... \\
      --secure-servers 10.89.60.11:9092,... --secure-config inventories/lab/.kafka-kit/clients/admin.properties
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, make_corpus, run_proc, save_results, table  # noqa: E402

ENV = "KAFKA_KIT_CLIENT_CONFIG"


def _busy_jiffies() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine from /proc/stat's first line."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def child_ingest(a: argparse.Namespace) -> dict[str, Any]:
    from pyclient.producer import Ingestor

    t0 = time.perf_counter()
    res = Ingestor(a.servers, a.topic).run([a.corpus], "jsonl")
    if not res.ok or res.produced != a.records:
        raise SystemExit(f"ingest incomplete: {res.produced} of {a.records}, {res.failures_by_reason}")
    return {"records": res.produced, "bytes": res.bytes_produced, "seconds": time.perf_counter() - t0}


def child_feed(a: argparse.Namespace) -> dict[str, Any]:
    from pyclient.dataset import KafkaTokenDataset
    from pyclient.tokenize import ByteTokenizer

    ds = KafkaTokenDataset(a.servers, a.topic, seq_len=2048, batch_size=8, tokenizer=ByteTokenizer())
    t0 = time.perf_counter()
    tokens = 0
    for b in ds:
        tokens += sum(len(s) for s in b["input_ids"])
    return {"tokens": tokens, "seconds": time.perf_counter() - t0}


def _run(side: dict[str, Any], what: str, a: argparse.Namespace, topic: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(ENV, None)
    if side["config"]:
        env[ENV] = side["config"]
    busy0, _ = _busy_jiffies()
    out, err, ru, wall = run_proc([sys.executable, __file__, "--child", what, "--servers", side["servers"],
                                   "--topic", topic, "--corpus", a.corpus, "--records", str(a.records)], env=env)
    busy1, _ = _busy_jiffies()
    res = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
    client = ru.ru_utime + ru.ru_stime
    machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    return {**res, "client_cpu_s": client, "other_cpu_s": max(machine - client, 0.0), "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=["ingest", "feed"], help=argparse.SUPPRESS)
    ap.add_argument("--servers", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--plain-servers")
    ap.add_argument("--plain-config", default="", help="client properties of the plaintext cluster (none)")
    ap.add_argument("--secure-servers")
    ap.add_argument("--secure-config", default="", help="client properties file of the secure cluster's user "
                    "(it needs create, write and read on topics: the lab's admin)")
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--replication-factor", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    a = ap.parse_args()
    if a.child:
        print(json.dumps({"ingest": child_ingest, "feed": child_feed}[a.child](a)))
        return 0
    if not a.plain_servers or not a.secure_servers or not a.secure_config:
        ap.error("--plain-servers, --secure-servers and --secure-config are required")

    from pyclient.admin import Admin
    from pyclient.client_props import load_client_properties

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    a.corpus = str(make_corpus(out / f"feed-{a.records}x{a.record_size}.jsonl", a.records, a.record_size,
                               jsonl=True))
    sides = [{"name": "plaintext", "servers": a.plain_servers, "config": a.plain_config},
             {"name": "SASL_SSL", "servers": a.secure_servers, "config": a.secure_config}]
    for s in sides:
        s["settings"] = {**(load_client_properties(s["config"]) if s["config"] else {}),
                         "bootstrap.servers": s["servers"]}
        s["runs"] = []
    stamp = int(time.time())
    for r in range(a.repeat):
        for s in sides:
            topic = f"bench-security-{stamp}-{r}"
            with Admin(s["settings"]) as admin:
                admin.ensure_topic(topic, a.partitions, a.replication_factor)
            try:
                ing = _run(s, "ingest", a, topic)
                feed = _run(s, "feed", a, topic)
            finally:
                with Admin(s["settings"]) as admin:
                    admin.delete_topic(topic)
            s["runs"].append({"records_s": ing["records"] / ing["seconds"],
                              "mb_s": ing["bytes"] / ing["seconds"] / 1e6,
                              "ingest_client_cpu_s": ing["client_cpu_s"], "ingest_other_cpu_s": ing["other_cpu_s"],
                              "tokens_s": feed["tokens"] / feed["seconds"],
                              "feed_client_cpu_s": feed["client_cpu_s"], "feed_other_cpu_s": feed["other_cpu_s"]})
            print(f"round {r + 1} {s['name']}: {s['runs'][-1]['records_s']:,.0f} records/s, "
                  f"{s['runs'][-1]['tokens_s']:,.0f} tokens/s", flush=True)
    rows = []
    for s in sides:
        med = sorted(s["runs"], key=lambda x: x["records_s"])[len(s["runs"]) // 2]
        fmed = sorted(s["runs"], key=lambda x: x["tokens_s"])[len(s["runs"]) // 2]
        rows.append({"name": s["name"], "records_s": med["records_s"], "mb_s": med["mb_s"],
                     "ingest_client_cpu_s": med["ingest_client_cpu_s"], "ingest_other_cpu_s": med["ingest_other_cpu_s"],
                     "tokens_s": fmed["tokens_s"], "feed_client_cpu_s": fmed["feed_client_cpu_s"],
                     "feed_other_cpu_s": fmed["feed_other_cpu_s"], "runs": s["runs"]})
    plain, sec = rows
    for key in ("records_s", "tokens_s"):
        sec[f"x_{key}"] = sec[key] / plain[key]
        plain[f"x_{key}"] = 1.0
    print(f"security cost: {a.records:,} docs x ~{a.record_size} B, {a.partitions} partitions, "
          f"RF {a.replication_factor}; median of {a.repeat} alternating rounds")
    print(table(rows, [("name", "cluster", "s"), ("records_s", "ingest records/s", ",.0f"),
                       ("mb_s", "MB/s", ".1f"), ("ingest_client_cpu_s", "client CPU s", ".1f"),
                       ("ingest_other_cpu_s", "rest CPU s", ".1f"), ("tokens_s", "feed tokens/s", ",.0f"),
                       ("feed_client_cpu_s", "client CPU s", ".1f"), ("feed_other_cpu_s", "rest CPU s", ".1f"),
                       ("x_records_s", "ingest x plain", ".2f"), ("x_tokens_s", "feed x plain", ".2f")]))
    pairs = [(q["records_s"] / p["records_s"], q["tokens_s"] / p["tokens_s"])
             for p, q in zip(plain["runs"], sec["runs"])]
    print("SASL_SSL / plaintext per round (ingest, feed): " + ", ".join(f"({i:.2f}, {f:.2f})" for i, f in pairs))
    save_results(out, "security", {k: v for k, v in vars(a).items() if k != "child"}, rows,
                 "SASL_SSL vs plaintext", [("records_s", "ingest records/s"), ("tokens_s", "feed tokens/s")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
