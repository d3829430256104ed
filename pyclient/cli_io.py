"""The ``produce`` and ``consume`` commands (kept apart from cli.py to keep modules small)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from .config import parse_settings

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Bar:
    """A one-line progress bar on stderr: percent of input bytes, records/s, MB/s."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        frac = p.input_bytes_done / p.input_bytes_total if p.input_bytes_total else 0.0
        fill = int(frac * 30)
        rate = p.records / p.elapsed_s if p.elapsed_s else 0.0
        mbs = p.bytes / p.elapsed_s / 1e6 if p.elapsed_s else 0.0
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (30 - fill)}] {frac:6.1%} {p.records:,} rec "
                         f"{rate:,.0f} rec/s {mbs:.1f} MB/s failed {p.failed} malformed "
                         f"{p.malformed}  ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def cmd_produce(a: argparse.Namespace) -> int:
    """Ingest text lines, JSONL or a Parquet column from files, globs or stdin (-) into a
    topic with acks=all and idempotence; resumable with --checkpoint. With --tokenize,
    write token-id records instead of text."""
    from .producer import Ingestor

    bar = Bar(a.progress if a.progress is not None else sys.stderr.isatty())
    ing = Ingestor(a.bootstrap_servers, a.topic, settings=parse_settings(a.settings),
                   backend=a.backend, checkpoint=a.checkpoint, dead_letter=a.dead_letter,
                   on_progress=bar, checkpoint_interval=a.checkpoint_interval,
                   command_config=a.command_config, timeout=a.timeout,
                   tokenizer=a.tokenize, tokenize_workers=a.tokenize_workers)
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        got.append(signum)
        ing.stop()

    old = {s: signal.signal(s, on_signal) for s in EXIT_SIGNAL}
    try:
        r = ing.run(a.inputs, a.format, field=a.field, key_field=a.key_field)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        bar.done()
    summary = {"topic": r.topic, "records_read": r.records_read, "produced": r.produced,
               "delivered": r.delivered, "failed": r.failed, "malformed": r.malformed,
               "oversized": r.oversized,
               "undelivered_at_exit": r.undelivered_at_exit, "elapsed_s": round(r.elapsed_s, 3),
               "records_per_s": round(r.records_per_s), "mb_per_s": round(r.mb_per_s, 2),
               "interrupted": r.interrupted, "resumed": r.resumed,
               "failures_by_reason": dict(r.failures_by_reason),
               "malformed_by_reason": dict(r.malformed_by_reason),
               "failure_examples": [vars(p) for p in r.failure_examples[:20]],
               "malformed_examples": [vars(p) for p in r.malformed_examples[:20]],
               "oversized_examples": [vars(p) for p in r.oversized_examples[:20]],
               "max_message_bytes": r.max_message_bytes, "batch_size": r.batch_size,
               "duplicate_inputs": r.duplicate_inputs,
               "stale_checkpoint_inputs": r.stale_checkpoint_inputs,
               "tokenizer": r.tokenizer}
    for f in r.duplicate_inputs:
        print(f"pyclient: warning: input {f} is a file named before (same real path): "
              "ingested once", file=sys.stderr)
    for f in r.stale_checkpoint_inputs:
        print(f"pyclient: warning: checkpoint {a.checkpoint} has an entry for {f}, which matches "
              "no input of this run (renamed, moved, or another glob?); it is kept, not used",
              file=sys.stderr)
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        what = "records"
        if r.tokenizer:
            what = (f"token-id records (tokenizer {r.tokenizer['name']}, hash "
                    f"{r.tokenizer['hash'][:16]}, {r.tokenizer['dtype']})")
        print(f"produced {r.produced:,} {what} ({r.bytes_produced / 1e6:.1f} MB) to {r.topic} in "
              f"{r.elapsed_s:.1f}s: {r.records_per_s:,.0f} rec/s, {r.mb_per_s:.1f} MB/s; "
              f"delivered {r.delivered:,}, failed {r.failed}, malformed {r.malformed}, "
              f"oversized {r.oversized}")
        for p in r.malformed_examples[:20]:
            print(f"  malformed {p.source}:{p.position}: {p.reason}")
        for p in r.oversized_examples[:20]:
            print(f"  oversized {p.source}:{p.position}: {p.reason}")
        for p in r.failure_examples[:20]:
            print(f"  NOT DELIVERED {p.source}:{p.position}: {p.reason}")
    if not r.ok:
        print(f"produce FAILED: {r.failed + r.undelivered_at_exit} records not delivered: "
              f"{dict(r.failures_by_reason) or 'flush timed out'}", file=sys.stderr)
        return 1
    if got:
        print("produce interrupted: everything read so far was delivered"
              + (f"; resume with --checkpoint {a.checkpoint}" if a.checkpoint else ""),
              file=sys.stderr)
        return EXIT_SIGNAL[signal.Signals(got[0])]
    if r.oversized:
        print(f"produce: {r.oversized} records larger than the topic's max.message.bytes="
              f"{r.max_message_bytes} were not sent"
              + (f" (see {a.dead_letter})" if a.dead_letter else " (use --dead-letter to keep them)"),
              file=sys.stderr)
    if a.strict and (r.malformed or r.oversized):
        print(f"produce FAILED (--strict): {r.malformed} malformed records, {r.oversized} "
              "oversized records", file=sys.stderr)
        return 1
    return 0


def cmd_consume(a: argparse.Namespace) -> int:
    """Read records in batches and write their values, one per line, to stdout; offsets
    are committed only after a batch was written."""
    from .backends import resolve
    from .config import CONSUMER_DEFAULTS, merged
    from .consumer import FeedConsumer
    from .probe import probe

    if a.max_records is not None and a.max_records < 0:
        raise ValueError(f"--max-records must be >= 0, got {a.max_records}")
    settings = parse_settings(a.settings)
    settings.setdefault("group.id", a.group)
    backend = resolve(a.backend)
    probe(merged(CONSUMER_DEFAULTS, backend, a.bootstrap_servers, settings), backend, a.topic,
          a.timeout)
    c = FeedConsumer(a.bootstrap_servers, a.topic, settings=settings, backend=backend,
                     stop_at_end=a.stop_at_end)
    out = sys.stdout.buffer
    n = 0
    try:
        while a.max_records is None or n < a.max_records:
            # Never take more than --max-records: what is taken is written and committed.
            want = a.batch_size if a.max_records is None else min(a.batch_size, a.max_records - n)
            batch = c.consume(want, timeout=1.0)
            if not batch:
                if c.at_end():
                    break
                continue
            for rec in batch:
                out.write((rec.value or b"") + b"\n")
            out.flush()
            n += len(batch)
            c.commit()
    finally:
        c.close()
    print(f"consumed {n} records", file=sys.stderr)
    return 0


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("produce", help=cmd_produce.__doc__, description=cmd_produce.__doc__)
    common(p)
    p.add_argument("--topic", "-t", required=True)
    p.add_argument("inputs", nargs="+", help="files, globs (quote them) or - for stdin")
    p.add_argument("--format", choices=("text", "jsonl", "parquet"), default=None,
                   help="default: from the file name (.jsonl/.json/.ndjson, .parquet, else text)")
    p.add_argument("--field", default="text", help="JSONL field / Parquet column of the document")
    p.add_argument("--key-field", default=None, help="JSONL field / Parquet column used as key")
    p.add_argument("--checkpoint", default=None, help="resume file (JSON), written atomically")
    p.add_argument("--checkpoint-interval", type=float, default=5.0, help="seconds")
    p.add_argument("--dead-letter", default=None,
                   help="JSONL file for malformed and oversized input records (appended)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any input is malformed or oversized")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--tokenize", default=None, metavar="SPEC",
                   help="write token-id records instead of text: 'bytes' (pyclient's byte "
                        "tokenizer) or the path of a Hugging Face tokenizer.json")
    p.add_argument("--tokenize-workers", type=int, default=1, metavar="N",
                   help="tokenizer processes with --tokenize (default 1: in the producer's "
                        "process); the record order is the same")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_produce)

    c = sub.add_parser("consume", help=cmd_consume.__doc__, description=cmd_consume.__doc__)
    common(c)
    c.add_argument("--topic", "-t", required=True)
    c.add_argument("--group", default="pyclient-consume")
    c.add_argument("--batch-size", type=int, default=10000)
    c.add_argument("--max-records", type=int, default=None,
                   help="write and commit exactly this many records (fewer at the end with "
                        "--stop-at-end), then stop")
    c.add_argument("--stop-at-end", action="store_true",
                   help="stop at the end offsets seen at start instead of waiting for more")
    c.set_defaults(func=cmd_consume)
