#!/usr/bin/env python3
"""Training-feed benchmark: tokens/s delivered as packed training batches from Kafka
(pyclient.dataset.KafkaTokenDataset) vs the same pipeline reading the same corpus from a
local JSONL file. Target: Kafka >= 0.9x the local file.

Both pipelines tokenize up to 64 documents per call with the same tokenizer, append EOS,
cut ``--seq-len`` sequences and yield ``--batch-size`` sequences per batch. Tokenizer:
byte-level by default (the Kafka side takes the record's UTF-8 bytes as they are, the file
side parses each JSON line first: that is what each source costs), ``--train-bpe N`` trains
a Hugging Face BPE of N tokens on the corpus first (untimed) and both sides decode to str
for it, ``--tokenizer-json`` loads one. Each pipeline runs in its own process, ``--repeat``
times alternating (median shown, min/max beside it); peak RSS is the child's VmHWM.
"1st batch" is the time to the first batch (connect, metadata, first fetch); "gap" is the
time between consecutive batches. ``--shuffle`` adds the feed with ``shuffle_seed=1``
(blocks of ``--shuffle-block``) as a third pipeline and prints shuffled / unshuffled per
run pair. ``--mix`` splits the corpus 0.7/0.2/0.1 over three topics and adds them mixed by
row (``MixedTokenDataset``, ``on_exhausted="stop"``), unshuffled and shuffled, printing
mixed / one topic and shuffled / unshuffled per run pair. ``--pretokenized`` ingests the
corpus a second time tokenized at ingest (token-id records, ``Ingestor(tokenizer=)``), timed
with 1 process and with ``--tokenize-workers``, and adds the feed over that topic
(``records="tokens"``: no tokenizer at read), printing pre-tokenized / tokenize-at-read per
run pair. ``--step-ms S`` adds a training-loop simulation: a DataLoader with ``--workers``
workers over the feed and over the file (lines split across workers), a fixed ``S`` ms of
"compute" per batch (a sleep; ``0``: the DataLoader's own throughput), and the time the loop
waits in ``next()`` for data, as a fraction of the loop's time; ``--prefetch`` adds each
source behind ``pyclient.prefetch.Prefetcher`` (the DataLoader's hand-over in a thread).
``--command-config FILE`` gives every client a Kafka client properties file (a secure
cluster). Prints a table, writes JSON and a PNG chart.

  python benchmarks/bench_feed.py --bootstrap-servers H1:9092,H2:9092,H3:9092 [--train-bpe 8000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import (REPO, _vm_hwm_kib, make_corpus, parser, percentile, run_child,  # noqa: E402
                     save_results, table, use_command_config)


def _tokenizer(a: argparse.Namespace) -> tuple[Any, int | None]:
    from pyclient.tokenize import ByteTokenizer

    if a.tokenizer_json:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(a.tokenizer_json), a.eos_id
    return ByteTokenizer(), None


def child_kafka(a: argparse.Namespace) -> dict[str, Any]:
    ds = _feed(a, pre=a.child == "kafka-tokens", shuffle=a.child == "kafka-shuffle")
    t0 = time.perf_counter()
    tokens = batches = 0
    marks = []
    for b in ds:
        batches += 1
        tokens += sum(len(s) for s in b["input_ids"])
        marks.append(time.perf_counter())
    return _result(t0, marks, tokens, batches)


def _feed(a: argparse.Namespace, pre: bool, shuffle: bool = False) -> Any:
    """The feed over the corpus topic, or (``pre``) over its pre-tokenized twin (token-id
    records: no tokenizer runs), shuffled with ``shuffle_seed=1`` when asked."""
    from pyclient.dataset import KafkaTokenDataset

    tok, eos = _tokenizer(a)
    return KafkaTokenDataset(a.bootstrap_servers, f"{a.topic}-tok" if pre else a.topic,
                             seq_len=a.seq_len, batch_size=a.batch_size, tokenizer=tok,
                             eos_id=eos, backend=a.backend, records="tokens" if pre else "text",
                             shuffle_seed=1 if shuffle else None, shuffle_block=a.shuffle_block)


#: --mix: the corpus split over three topics with these weights (the mix's weights too)
MIX = {"web": 0.7, "code": 0.2, "math": 0.1}


def child_mix(a: argparse.Namespace) -> dict[str, Any]:
    """Three weighted topics through MixedTokenDataset, row by row (units of 1 sequence),
    shuffled with --child mix-shuffle."""
    from pyclient.dataset import KafkaTokenDataset
    from pyclient.feed_mix import MixedTokenDataset

    tok, eos = _tokenizer(a)
    shuffle = 1 if a.child == "mix-shuffle" else None
    src = {n: KafkaTokenDataset(a.bootstrap_servers, f"{a.topic}-{n}", seq_len=a.seq_len,
                                batch_size=1, tokenizer=tok, eos_id=eos, backend=a.backend,
                                shuffle_seed=shuffle, shuffle_block=a.shuffle_block)
           for n in MIX}
    ds = MixedTokenDataset(src, MIX, batch_size=a.batch_size, seed=1, on_exhausted="stop")
    t0 = time.perf_counter()
    tokens = batches = 0
    marks = []
    for b in ds:
        batches += 1
        tokens += sum(len(s) for s in b["input_ids"])
        marks.append(time.perf_counter())
    return {**_result(t0, marks, tokens, batches),
            "shares": {n: round(v["share"], 4) for n, v in ds.report().items()}}


def child_resume(a: argparse.Namespace) -> dict[str, Any]:
    """Resume time: build the dataset, load a saved state (``--state``), take the first batch."""
    from pyclient.dataset import KafkaTokenDataset

    state = json.loads(Path(a.state).read_text())
    tok, eos = _tokenizer(a)
    t0 = time.perf_counter()
    ds = KafkaTokenDataset(a.bootstrap_servers, a.topic, seq_len=a.seq_len, batch_size=a.batch_size,
                           tokenizer=tok, eos_id=eos, backend=a.backend)
    t1 = time.perf_counter()
    ds.load_state_dict(state)
    t2 = time.perf_counter()
    next(iter(ds))
    t3 = time.perf_counter()
    return {"build_s": t1 - t0, "load_s": t2 - t1, "first_s": t3 - t2, "total_s": t3 - t0}


def resume_times(a: argparse.Namespace, common: list[str], out: Path) -> list[dict[str, Any]]:
    """Resume time from states whose cursors sit at 0%, 50% and 90% of every partition."""
    from pyclient.dataset import KafkaTokenDataset

    base = KafkaTokenDataset(a.bootstrap_servers, a.topic, seq_len=a.seq_len,
                             batch_size=a.batch_size, backend=a.backend,
                             eos_id=a.eos_id if a.tokenizer_json else None,
                             tokenizer=None if not a.tokenizer_json else _tokenizer(a)[0]).state_dict()
    rows = []
    for frac in (0.0, 0.5, 0.9):
        st = json.loads(json.dumps(base))
        st["cursor"] = {p: [int(st["start"][p] + frac * (e - st["start"][p])), 0]
                        for p, e in st["end"].items()}
        path = out / f"resume-state-{frac}.json"
        path.write_text(json.dumps(st))
        res, _, _ = run_child([sys.executable, __file__, "--child", "resume", "--state", str(path),
                               *common])
        rows.append({"name": f"resume at {frac:.0%}", **res})
    return rows


def _result(t0: float, marks: list[float], tokens: int, batches: int) -> dict[str, Any]:
    """Totals, time to the first batch, and the gaps between batches (what a training step
    waits for its next batch)."""
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"tokens": tokens, "batches": batches, "seconds": time.perf_counter() - t0,
            "first_s": marks[0] - t0 if marks else None,
            "p50_ms": percentile(gaps, 0.5) * 1e3, "p99_ms": percentile(gaps, 0.99) * 1e3}


def child_file(a: argparse.Namespace) -> dict[str, Any]:
    """The same pipeline over the local JSONL file: parse, tokenize 64 docs a call, pack."""
    from pyclient.dataset import as_batch
    from pyclient.tokenize import as_encoder, eos_of

    tok, eos_arg = _tokenizer(a)
    encode, eos = as_encoder(tok), eos_of(tok, eos_arg)
    need, L = a.seq_len * a.batch_size, a.seq_len
    t0 = time.perf_counter()
    tokens = batches = 0
    marks: list[float] = []
    buf: list[int] = []

    def pack(pending: list[str]) -> None:
        nonlocal buf, tokens, batches
        for ids in encode(pending):
            buf.extend(ids)
            if eos is not None:
                buf.append(eos)
        while len(buf) >= need:
            block, buf = buf[:need], buf[need:]
            seqs = as_batch(block, a.batch_size, L)  # a tensor where torch is installed
            batches += 1
            tokens += sum(len(s) for s in seqs)
            marks.append(time.perf_counter())

    with open(a.corpus, "rb") as f:
        pending: list[str] = []
        for line in f:
            pending.append(json.loads(line)["text"])
            if len(pending) == 64:
                pack(pending)
                pending = []
        pack(pending)
    return _result(t0, marks, tokens, batches)


try:  # the training-loop simulation needs torch; the rest does not
    from torch.utils.data import IterableDataset as _Dataset
except ImportError:  # pragma: no cover
    _Dataset = object  # type: ignore[assignment,misc]


class FileFeed(_Dataset):  # type: ignore[misc,valid-type]
    """The file pipeline as an IterableDataset: worker k of K takes lines i % K == k."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a

    def __iter__(self) -> Any:
        import torch

        from pyclient.dataset import as_batch
        from pyclient.tokenize import as_encoder, eos_of

        info = torch.utils.data.get_worker_info()
        k, nk = (info.id, info.num_workers) if info else (0, 1)
        tok, eos_arg = _tokenizer(self.a)
        encode, eos = as_encoder(tok), eos_of(tok, eos_arg)
        need, buf = self.a.seq_len * self.a.batch_size, []
        with open(self.a.corpus, "rb") as f:
            pending: list[str] = []
            for i, line in enumerate(f):
                if i % nk != k:
                    continue
                pending.append(json.loads(line)["text"])
                if len(pending) < 64:
                    continue
                for ids in encode(pending):
                    buf.extend(ids)
                    buf.append(eos)
                pending = []
                while len(buf) >= need:
                    block, buf = buf[:need], buf[need:]
                    yield {"input_ids": as_batch(block, self.a.batch_size, self.a.seq_len)}


def child_train(a: argparse.Namespace) -> dict[str, Any]:
    """A training loop: DataLoader(workers) -> fixed compute per step; time spent waiting."""
    from torch.utils.data import DataLoader

    src, _, pre = a.source.partition("+")
    if src in ("kafka", "kafka-tokens"):
        ds: Any = _feed(a, pre=src == "kafka-tokens")
    else:
        ds = FileFeed(a)
    loader: Any = DataLoader(ds, batch_size=None, num_workers=a.workers)
    if pre == "prefetch":  # next() off the step's time: pyclient.prefetch.Prefetcher
        from pyclient.prefetch import Prefetcher

        loader = Prefetcher(loader)
    step = a.step_ms / 1e3
    peaks: dict[int, int] = {}  # each DataLoader worker's peak RSS (VmHWM, KiB)
    done = threading.Event()

    def watch() -> None:
        me = os.getpid()
        while not done.wait(0.05):
            for kid in _children(me):
                peaks[kid] = max(peaks.get(kid, 0), _vm_hwm_kib(kid))
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    it = iter(loader)
    wait = 0.0
    first = None
    tokens = batches = 0
    while True:
        w0 = time.perf_counter()
        b = next(it, None)
        w1 = time.perf_counter()
        if b is None:
            break
        if first is None:
            first = w1 - t0
        else:
            wait += w1 - w0
        batches += 1
        tokens += b["input_ids"].numel()
        time.sleep(step)  # the model's step
    total = time.perf_counter() - t0
    done.set()
    watcher.join()
    steady = total - (first or 0)
    return {"worker_rss_mib": max(peaks.values(), default=0) / 1024,
            "batches": batches, "tokens": tokens, "seconds": total, "first_s": first,
            "wait_s": wait, "wait_frac": wait / steady if steady else None,
            "batches_s": batches / total, "tokens_s": tokens / total}


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the DataLoader's workers), from /proc."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def train_bpe(corpus: Path, vocab: int, out: Path) -> tuple[str, int]:
    """A byte-level BPE trained on the corpus (not timed); returns (tokenizer.json, eos id)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = out / f"bpe-{vocab}-{corpus.stem}.json"
    if not path.exists():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<eos>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

        def texts() -> Any:
            with open(corpus, "rb") as f:
                for line in f:
                    yield json.loads(line)["text"]
        tok.train_from_iterator(texts(), trainer)
        tok.save(str(path))
    from tokenizers import Tokenizer as T

    return str(path), T.from_file(str(path)).token_to_id("<eos>")


def main() -> int:
    ap = parser(__doc__, records=200_000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--backend", default=None, choices=("confluent", "kafka-python"))
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each pipeline, alternating; the table shows the median run")
    ap.add_argument("--tokenizer-json", default=None, help="Hugging Face tokenizer.json")
    ap.add_argument("--train-bpe", type=int, default=0, metavar="VOCAB",
                    help="train a byte-level BPE of this vocabulary on the corpus and use it")
    ap.add_argument("--eos-id", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / ".cache" / "bench"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--topic", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--state", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--source", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shuffle", action="store_true",
                    help="add the shuffled feed (shuffle_seed=1) as a third pipeline")
    ap.add_argument("--shuffle-block", type=int, default=1024)
    ap.add_argument("--step-ms", type=float, default=None,
                    help="add the training-loop simulation (DataLoader with --workers) with this "
                         "compute time per batch; 0: the DataLoader's throughput alone")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (--step-ms)")
    ap.add_argument("--prefetch", action="store_true",
                    help="--step-ms: also each source behind pyclient.prefetch.Prefetcher")
    ap.add_argument("--mix", action="store_true",
                    help="also the corpus split over 3 topics (0.7/0.2/0.1) mixed, shuffle off/on")
    ap.add_argument("--pretokenized", action="store_true",
                    help="also ingest the corpus tokenized (token-id records; timed with 1 and "
                         "--tokenize-workers processes) and read it without tokenizing")
    ap.add_argument("--tokenize-workers", type=int, default=2,
                    help="processes of the second tokenized ingest (--pretokenized)")
    a = ap.parse_args()
    if a.child:
        child = {"kafka": child_kafka, "kafka-shuffle": child_kafka, "kafka-tokens": child_kafka,
                 "file": child_file,
                 "mix": child_mix, "mix-shuffle": child_mix,
                 "resume": child_resume, "train": child_train}[a.child]
        print(json.dumps(child(a)))
        return 0

    from pyclient.admin import Admin
    from pyclient.producer import Ingestor

    admin_cfg = use_command_config(a)
    out = Path(a.out)
    corpus = make_corpus(out / f"feed-{a.records}x{a.record_size}.jsonl", a.records, a.record_size,
                         jsonl=True)
    if a.train_bpe:
        a.tokenizer_json, a.eos_id = train_bpe(corpus, a.train_bpe, out)
    topic = f"bench-feed-{int(time.time())}"
    with Admin(admin_cfg) as admin:
        admin.ensure_topic(topic, a.partitions, a.replication_factor)
    mixed = [f"{topic}-{n}" for n in MIX] if a.mix else []
    tokenized = [f"{topic}-tok", f"{topic}-tok{a.tokenize_workers}"] if a.pretokenized else []
    ingests: list[dict[str, Any]] = []
    try:
        ing = Ingestor(a.bootstrap_servers, topic).run([str(corpus)], "jsonl")
        if not ing.ok or ing.produced != a.records:
            raise SystemExit(f"ingest incomplete: {ing.produced} of {a.records}, {ing.failures_by_reason}")
        for t, workers in zip(tokenized, (1, a.tokenize_workers)):
            # tokenize at ingest: the same corpus, once with 1 process and once with N
            with Admin(admin_cfg) as admin:
                admin.ensure_topic(t, a.partitions, a.replication_factor)
            t0 = time.perf_counter()
            got = Ingestor(a.bootstrap_servers, t, tokenizer=a.tokenizer_json or "bytes",
                           tokenize_workers=workers).run([str(corpus)], "jsonl")
            secs = time.perf_counter() - t0
            if not got.ok or got.produced != a.records:
                raise SystemExit(f"tokenized ingest of {t} incomplete: {got.produced}, "
                                 f"{got.failures_by_reason}")
            ingests.append({"name": f"ingest tokenized, {workers} process(es)", "seconds": secs,
                            "records_s": a.records / secs,
                            "mb_s": a.records * a.record_size / secs / 1e6})
        if mixed:  # the corpus's lines split by the weights, one topic each
            lines = corpus.read_text().splitlines(keepends=True)
            cut = [0, int(len(lines) * 0.7), int(len(lines) * 0.9), len(lines)]
            for i, t in enumerate(mixed):
                part = out / f"{corpus.stem}-{t.rsplit('-', 1)[1]}.jsonl"
                part.write_text("".join(lines[cut[i]:cut[i + 1]]))
                with Admin(admin_cfg) as admin:
                    admin.ensure_topic(t, a.partitions, a.replication_factor)
                got = Ingestor(a.bootstrap_servers, t).run([str(part)], "jsonl")
                if not got.ok or got.produced != cut[i + 1] - cut[i]:
                    raise SystemExit(f"ingest of {t} incomplete: {got.produced}")
        common = ["--topic", topic, "--corpus", str(corpus), "-b", a.bootstrap_servers,
                  "--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size)]
        if a.tokenizer_json:
            common += ["--tokenizer-json", a.tokenizer_json]
        if a.eos_id is not None:
            common += ["--eos-id", str(a.eos_id)]
        if a.backend:
            common += ["--backend", a.backend]
        common += ["--shuffle-block", str(a.shuffle_block)]
        runs: dict[str, list[dict[str, Any]]] = {"file": [], "kafka": []}
        if a.shuffle:
            runs["kafka-shuffle"] = []
        if a.mix:
            runs["mix"], runs["mix-shuffle"] = [], []
        if a.pretokenized:
            runs["kafka-tokens"] = []
        train: dict[str, list[dict[str, Any]]] = {}
        if a.step_ms is not None:
            train = {"file": [], "kafka": []}
            if a.pretokenized:
                train["kafka-tokens"] = []
            if a.prefetch:
                train.update({f"{k}+prefetch": [] for k in list(train)})
        for _ in range(a.repeat):  # alternate, so both see the same background
            for name in runs:
                res, ru, wall = run_child([sys.executable, __file__, "--child", name, *common])
                runs[name].append({**res, "tokens_s": res["tokens"] / res["seconds"],
                                   "rss_mib": ru.ru_maxrss / 1024, "wall_s": wall,
                                   "cpu_s": ru.ru_utime + ru.ru_stime})
            for src in train:
                res, ru, wall = run_child([sys.executable, __file__, "--child", "train",
                                           "--source", src, "--step-ms", str(a.step_ms),
                                           "--workers", str(a.workers), *common])
                train[src].append({**res, "cpu_s": ru.ru_utime + ru.ru_stime})
        a.topic = topic
        resumes = resume_times(a, common, out)
        rows = []
        for name, rs in runs.items():
            med = sorted(rs, key=lambda r: r["tokens_s"])[len(rs) // 2]
            label = {"file": "local JSONL", "kafka": "pyclient dataset",
                     "kafka-shuffle": f"pyclient dataset, shuffled (block {a.shuffle_block})",
                     "mix": "3 topics 0.7/0.2/0.1 mixed by row",
                     "mix-shuffle": f"3 topics mixed, shuffled (block {a.shuffle_block})",
                     "kafka-tokens": "pyclient dataset, pre-tokenized topic"}
            rows.append({**med,
                         "name": f"{name} ({label[name]})",
                         "min_tokens_s": min(r["tokens_s"] for r in rs),
                         "max_tokens_s": max(r["tokens_s"] for r in rs),
                         "docs_s": a.records / med["seconds"],
                         "mb_s": a.records * a.record_size / med["seconds"] / 1e6,
                         "runs": rs})
    finally:
        with Admin(admin_cfg) as admin:
            for t in [topic, *mixed, *tokenized]:
                admin.delete_topic(t)
    for r in rows:
        r["x_file"] = r["tokens_s"] / rows[0]["tokens_s"]
    pairs = [k["tokens_s"] / f["tokens_s"] for f, k in zip(runs["file"], runs["kafka"])]
    print(f"feed: {a.records:,} docs x ~{a.record_size} B, {a.partitions} partitions, RF="
          f"{a.replication_factor}, seq_len {a.seq_len}, batch {a.batch_size}, {a.bootstrap_servers}; "
          f"median of {a.repeat} alternating runs")
    print(table(rows, [("name", "pipeline", "s"), ("tokens_s", "tokens/s", ",.0f"),
                       ("min_tokens_s", "min", ",.0f"), ("max_tokens_s", "max", ",.0f"),
                       ("docs_s", "docs/s", ",.0f"), ("mb_s", "MB/s", ".1f"),
                       ("first_s", "1st batch s", ".2f"), ("p50_ms", "gap p50 ms", ".3f"),
                       ("p99_ms", "gap p99 ms", ".2f"), ("rss_mib", "peak RSS MiB", ".0f"),
                       ("cpu_s", "CPU s", ".1f"), ("x_file", "x file", ".2f")]))
    print("kafka / file per run pair: " + ", ".join(f"{x:.2f}" for x in pairs))
    if a.shuffle:
        sp = [s["tokens_s"] / k["tokens_s"] for k, s in zip(runs["kafka"], runs["kafka-shuffle"])]
        print("shuffled / unshuffled per run pair: " + ", ".join(f"{x:.2f}" for x in sp))
    if a.mix:
        mp = [m["tokens_s"] / k["tokens_s"] for k, m in zip(runs["kafka"], runs["mix"])]
        ms = [s["tokens_s"] / m["tokens_s"] for m, s in zip(runs["mix"], runs["mix-shuffle"])]
        print("mixed / one topic per run pair: " + ", ".join(f"{x:.2f}" for x in mp))
        print("mixed shuffled / mixed per run pair: " + ", ".join(f"{x:.2f}" for x in ms))
        print("realised token shares (mixed, last run): " + json.dumps(runs["mix"][-1]["shares"]))
    if a.pretokenized:
        tp = [t["tokens_s"] / k["tokens_s"] for k, t in zip(runs["kafka"], runs["kafka-tokens"])]
        print("pre-tokenized / tokenize-at-read per run pair: " + ", ".join(f"{x:.2f}" for x in tp))
        print("ingest with tokenization at ingest (the same corpus, once each):")
        print(table(ingests, [("name", "ingest", "s"), ("seconds", "s", ".1f"),
                              ("records_s", "records/s", ",.0f"), ("mb_s", "MB/s text", ".1f")]))
    if train:
        trows = []
        for src, rs in train.items():
            med = sorted(rs, key=lambda r: r["wait_frac"])[len(rs) // 2]
            trows.append({**med, "name": src, "max_wait": max(r["wait_frac"] for r in rs),
                          "runs": rs})
        print(f"training-loop simulation: DataLoader({a.workers} workers), {a.step_ms:g} ms "
              "compute per batch; wait = time in next() after the first batch / loop time:")
        for src in [s for s in train if s not in ("file", "file+prefetch")]:
            base = "file+prefetch" if src.endswith("+prefetch") else "file"
            lp = [k["tokens_s"] / f["tokens_s"] for f, k in zip(train[base], train[src])]
            print(f"{src} / {base} through the DataLoader per run pair: "
                  + ", ".join(f"{x:.2f}" for x in lp))
        for src in [s for s in train if s.endswith("+prefetch")]:
            plain = src.split("+")[0]
            wp = [p["wait_frac"] / max(q["wait_frac"], 1e-9)
                  for q, p in zip(train[plain], train[src])]
            print(f"wait fraction {src} / {plain} per run pair: "
                  + ", ".join(f"{x:.3f}" for x in wp))
        print(table(trows, [("name", "source", "s"), ("first_s", "1st batch s", ".2f"),
                            ("wait_frac", "wait fraction", ".4f"),
                            ("max_wait", "max", ".4f"), ("batches_s", "batches/s", ".2f"),
                            ("tokens_s", "tokens/s", ",.0f"), ("cpu_s", "CPU s", ".1f"),
                            ("worker_rss_mib", "worker peak RSS MiB", ".0f")]))
        rows.extend({**r, "name": f"DataLoader({a.workers}) {a.step_ms:g} ms/step ({r['name']})",
                     "rss_mib": r["worker_rss_mib"]} for r in trows)
    print("resume (state loaded -> first batch), by the position of the saved offsets:")
    print(table(resumes, [("name", "state", "s"), ("build_s", "build s", ".3f"),
                          ("load_s", "load_state_dict s", ".3f"),
                          ("first_s", "first batch s", ".3f"), ("total_s", "total s", ".3f")]))
    save_results(out, "feed", {**vars(a), "ingests": ingests}, rows, "training feed: tokens/s",
                 [("tokens_s", "tokens/s"),
                  ("rss_mib", "peak RSS MiB (DataLoader rows: per worker)")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
