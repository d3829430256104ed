#!/usr/bin/env python3
"""Training-feed benchmark: tokens/s delivered as packed training batches from Kafka
(pyclient.dataset.KafkaTokenDataset) vs the same pipeline reading the same corpus from a
local JSONL file. Target: Kafka >= 0.9x the local file.

Both pipelines tokenize 64 documents per call with the same tokenizer (byte-level by
default, ``--tokenizer-json`` for a Hugging Face tokenizer.json), append EOS, cut
``--seq-len`` sequences and yield ``--batch-size`` sequences per batch. Each runs in its
own process (peak RSS from wait4). Prints a table, writes JSON and a PNG chart.

  python benchmarks/bench_feed.py --bootstrap-servers H1:9092,H2:9092,H3:9092
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, make_corpus, run_child, save_results, table  # noqa: E402


def _tokenizer(a: argparse.Namespace) -> tuple[Any, int | None]:
    from pyclient.tokenize import ByteTokenizer

    if a.tokenizer_json:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(a.tokenizer_json), a.eos_id
    return ByteTokenizer(), None


def child_kafka(a: argparse.Namespace) -> dict[str, Any]:
    from pyclient.dataset import KafkaTokenDataset

    tok, eos = _tokenizer(a)
    ds = KafkaTokenDataset(a.bootstrap_servers, a.topic, seq_len=a.seq_len, batch_size=a.batch_size,
                           tokenizer=tok, eos_id=eos, backend=a.backend)
    t0 = time.perf_counter()
    tokens = batches = 0
    for b in ds:
        batches += 1
        tokens += sum(len(s) for s in b["input_ids"])
    return {"tokens": tokens, "batches": batches, "seconds": time.perf_counter() - t0}


def child_file(a: argparse.Namespace) -> dict[str, Any]:
    """The same pipeline over the local JSONL file: parse, tokenize 64 docs a call, pack."""
    from pyclient.tokenize import as_encoder, eos_of

    tok, eos_arg = _tokenizer(a)
    encode, eos = as_encoder(tok), eos_of(tok, eos_arg)
    need, L = a.seq_len * a.batch_size, a.seq_len
    t0 = time.perf_counter()
    tokens = batches = 0
    buf: list[int] = []
    with open(a.corpus, "rb") as f:
        pending: list[str] = []
        for line in f:
            pending.append(json.loads(line)["text"])
            if len(pending) < 64:
                continue
            for ids in encode(pending):
                buf.extend(ids)
                if eos is not None:
                    buf.append(eos)
            pending = []
            while len(buf) >= need:
                chunk, buf = buf[:need], buf[need:]
                seqs = [chunk[i:i + L] for i in range(0, need, L)]
                batches += 1
                tokens += sum(len(s) for s in seqs)
        for ids in encode(pending):
            buf.extend(ids)
            if eos is not None:
                buf.append(eos)
        while len(buf) >= need:
            chunk, buf = buf[:need], buf[need:]
            seqs = [chunk[i:i + L] for i in range(0, need, L)]
            batches += 1
            tokens += sum(len(s) for s in seqs)
    return {"tokens": tokens, "batches": batches, "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-servers", "-b", required=True)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--replication-factor", type=int, default=3)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backend", default=None, choices=("confluent", "kafka-python"))
    ap.add_argument("--tokenizer-json", default=None, help="Hugging Face tokenizer.json")
    ap.add_argument("--eos-id", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / ".cache" / "bench"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--topic", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_kafka(a) if a.child == "kafka" else child_file(a)))
        return 0

    from pyclient.admin import Admin
    from pyclient.producer import Ingestor

    out = Path(a.out)
    corpus = make_corpus(out / f"feed-{a.records}x{a.record_size}.jsonl", a.records, a.record_size,
                         jsonl=True)
    topic = f"bench-feed-{int(time.time())}"
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        admin.ensure_topic(topic, a.partitions, a.replication_factor)
    try:
        ing = Ingestor(a.bootstrap_servers, topic).run([str(corpus)], "jsonl")
        if not ing.ok or ing.produced != a.records:
            raise SystemExit(f"ingest incomplete: {ing.produced} of {a.records}, {ing.failures_by_reason}")
        common = ["--topic", topic, "--corpus", str(corpus), "-b", a.bootstrap_servers,
                  "--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size)]
        if a.tokenizer_json:
            common += ["--tokenizer-json", a.tokenizer_json]
        if a.eos_id is not None:
            common += ["--eos-id", str(a.eos_id)]
        if a.backend:
            common += ["--backend", a.backend]
        rows = []
        for name in ("file", "kafka"):
            res, ru, wall = run_child([sys.executable, __file__, "--child", name, *common])
            rows.append({"name": f"{name} ({'local JSONL' if name == 'file' else 'pyclient dataset'})",
                         "tokens_s": res["tokens"] / res["seconds"], "tokens": res["tokens"],
                         "batches": res["batches"], "seconds": res["seconds"],
                         "mb_s": a.records * a.record_size / res["seconds"] / 1e6,
                         "rss_mib": ru.ru_maxrss / 1024, "wall_s": wall,
                         "cpu_s": ru.ru_utime + ru.ru_stime})
    finally:
        with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
            admin.delete_topic(topic)
    for r in rows:
        r["x_file"] = r["tokens_s"] / rows[0]["tokens_s"]
    print(f"feed: {a.records:,} docs x ~{a.record_size} B, {a.partitions} partitions, RF="
          f"{a.replication_factor}, seq_len {a.seq_len}, batch {a.batch_size}, {a.bootstrap_servers}")
    print(table(rows, [("name", "pipeline", "s"), ("tokens_s", "tokens/s", ",.0f"),
                       ("mb_s", "MB/s", ".1f"), ("batches", "batches", "d"),
                       ("rss_mib", "peak RSS MiB", ".0f"), ("cpu_s", "CPU s", ".1f"),
                       ("x_file", "x file", ".2f")]))
    save_results(out, "feed", vars(a), rows, "training feed: tokens/s",
                 [("tokens_s", "tokens/s"), ("rss_mib", "peak RSS MiB")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
