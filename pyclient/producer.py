"""Corpus ingest: read inputs, produce every record, lose nothing, resume from a checkpoint.

Guarantees (see docs/pyclient.md): records are produced with ``acks=all`` and the
idempotent producer, so broker-side retries never duplicate or reorder. A checkpoint is
written only after ``flush()`` has confirmed every record before it and no delivery has
failed; a resumed ingest starts right after it. After a clean stop (end of input, SIGINT,
SIGTERM) the checkpoint is exact and a resume adds no duplicate. After a crash (kill -9,
power loss) the records produced after the last checkpoint, at most ``checkpoint_interval``
seconds' worth (plus one check period, :data:`CHECK_RECORDS` / :data:`CHECK_BYTES` /
:data:`CHECK_SECONDS`), may be produced a second time: at-least-once, never loss.

Before the first record, :func:`pyclient.probe.probe` reaches the cluster within ``timeout``
and reads the topic's ``max.message.bytes`` (L). A record whose value, key and headers with
framing exceed L (uncompressed) can never be accepted: it is *rejected* like malformed input
(counted with source, line and reason, written to the dead-letter file) and the ingest goes on;
the checkpoint moves past it. ``batch.size`` is fitted to L (a default above it is lowered; a
``batch.size`` the user set above it fails at start), so no batch of good records is refused
for being too large.

With ``tokenizer=`` (``pyclient produce --tokenize``) each document is tokenized at ingest
(:mod:`pyclient.pretokenize`, optionally in ``tokenize_workers`` processes) and written as a
token-id record (:mod:`pyclient.token_records`) instead of its text; the size limit applies
to the token record. Order, checkpoint and dead-letter rules are the same.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import inputs as inp
from .backends import Headers, make_producer, resolve
from .checkpoint import IngestCheckpoint, InputState
from .config import PRODUCER_DEFAULTS, client_properties, merged
from .probe import TopicInfo, probe

if TYPE_CHECKING:
    from .pretokenize import Pretokenizer

#: Record headers carrying the source position of each record.
SOURCE_HEADER, POSITION_HEADER = "src", "pos"
MAX_EXAMPLES = 100
#: The stop flag, progress and the checkpoint timer are checked every CHECK_RECORDS records,
#: after CHECK_BYTES produced bytes, or CHECK_SECONDS after the last check (the clock is read
#: every 64 records), whichever comes first: with large documents the record count alone
#: would make SIGTERM's latency and the crash-duplicate bound depend on document size.
CHECK_RECORDS, CHECK_BYTES, CHECK_SECONDS = 1024, 1 << 20, 0.1
#: Bytes of a record batch that are not the record's value, key or header data: the v2 batch
#: header (61) and the record's own framing (attributes, varint lengths, deltas: <= 35).
FRAMING = 96
#: Room kept between batch.size and max.message.bytes for framing librdkafka / kafka-python
#: may not count against batch.size.
BATCH_MARGIN = 512


@dataclass
class Problem:
    source: str
    position: int
    reason: str


@dataclass
class IngestReport:
    topic: str
    records_read: int = 0          #: input records seen (good + malformed) in this run
    produced: int = 0              #: handed to the producer
    failed: int = 0                #: not delivered (after the client's own retries)
    malformed: int = 0
    oversized: int = 0             #: rejected: larger than the topic's max.message.bytes
    bytes_produced: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    undelivered_at_exit: int = 0   #: still queued when the final flush timed out
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    malformed_by_reason: Counter[str] = field(default_factory=Counter)
    failure_examples: list[Problem] = field(default_factory=list)
    malformed_examples: list[Problem] = field(default_factory=list)
    oversized_examples: list[Problem] = field(default_factory=list)
    inputs_done: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)  #: path -> lines skipped on resume
    #: Inputs named twice (one real path, two spellings): ingested once, under the first name.
    duplicate_inputs: list[str] = field(default_factory=list)
    #: Checkpoint entries (real paths) that match no input of this run.
    stale_checkpoint_inputs: list[str] = field(default_factory=list)
    max_message_bytes: int = 0     #: the topic's limit, read at start
    batch_size: int = 0            #: the batch.size used (fitted to the limit)
    #: Token-id records: the tokenizer's ``{"name", "hash", "dtype"}``; None for text records.
    tokenizer: dict[str, str] | None = None

    @property
    def delivered(self) -> int:
        return self.produced - self.failed - self.undelivered_at_exit

    @property
    def ok(self) -> bool:
        """Every produced record was delivered (malformed input is reported, not a failure)."""
        return self.failed == 0 and self.undelivered_at_exit == 0

    @property
    def records_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_produced / self.elapsed_s / 1e6 if self.elapsed_s else 0.0


@dataclass
class Progress:
    records: int
    bytes: int
    elapsed_s: float
    input_bytes_done: int
    input_bytes_total: int
    failed: int
    malformed: int


class Ingestor:
    """Produce documents from files to ``topic``.

    ``settings`` are Kafka keys layered over :data:`pyclient.config.PRODUCER_DEFAULTS` and the
    client properties file (``command_config``, else ``$KAFKA_KIT_CLIENT_CONFIG``).
    ``dead_letter`` is a path or a binary file for malformed and oversized records (JSON
    lines). ``timeout``: seconds allowed to reach the cluster and read the topic at start.
    ``tokenizer``: write token-id records instead of text (a ByteTokenizer, a Hugging Face
    tokenizer, ``"bytes"`` or a tokenizer.json path), tokenized in ``tokenize_workers``
    processes (1: in this one; more are started with ``spawn``, so a calling script needs the
    ``if __name__ == "__main__":`` guard).
    """

    def __init__(self, bootstrap_servers: str | None, topic: str, *,
                 settings: dict[str, Any] | None = None, backend: str | None = None,
                 command_config: str | Path | None = None, timeout: float = 30.0,
                 checkpoint: str | Path | None = None, checkpoint_interval: float = 5.0,
                 dead_letter: str | Path | IO[bytes] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 progress_interval: float = 0.5, flush_timeout: float = 300.0,
                 measure_latency: bool = False, tokenizer: Any = None,
                 tokenize_workers: int = 1) -> None:
        self.backend = resolve(backend)
        self.topic = topic
        self.config = merged(PRODUCER_DEFAULTS, self.backend, bootstrap_servers, settings,
                             command_config)
        #: Keys the user set (file or settings): fitted defaults never override them.
        self._user_keys = set(client_properties(command_config)) | set(settings or {})
        self.timeout = timeout
        self.checkpoint_path = Path(checkpoint) if checkpoint else None
        self.checkpoint_interval = checkpoint_interval
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.flush_timeout = flush_timeout
        self._dl_arg = dead_letter
        #: Delivery latencies in seconds (produce() to acknowledgement), when measured. Costs
        #: one Python callback per record, so it is off by default.
        self.latencies: list[float] | None = [] if measure_latency else None
        self._stop = False
        self.report = IngestReport(topic)
        self._failed_since_ckpt = False
        self._tok: Pretokenizer | None = None
        if tokenizer is not None:
            from .pretokenize import Pretokenizer
            self._tok = Pretokenizer(tokenizer, tokenize_workers)
            tid = self._tok.tid
            self.report.tokenizer = {"name": tid.name, "hash": tid.hash, "dtype": tid.dtype}
        elif tokenize_workers != 1:
            raise ValueError(f"tokenize_workers={tokenize_workers} without a tokenizer: "
                             "tokenize workers need --tokenize")

    def stop(self) -> None:
        """Ask a running :meth:`run` to stop reading, flush and checkpoint (signal-safe)."""
        self._stop = True
        self.report.interrupted = True

    # -- delivery failures -------------------------------------------------------------
    def _on_error(self, reason: str, key: bytes | None, headers: Headers | None) -> None:
        r = self.report
        r.failed += 1
        r.failures_by_reason[reason] += 1
        self._failed_since_ckpt = True
        if len(r.failure_examples) < MAX_EXAMPLES:
            h = dict(headers or [])
            r.failure_examples.append(Problem(h.get(SOURCE_HEADER, b"?").decode(),
                                              int(h.get(POSITION_HEADER, b"0")), reason))

    def _malformed(self, source: str, pos: int, reason: str, raw: bytes) -> None:
        r = self.report
        r.malformed += 1
        short = reason.split(" (")[0]
        r.malformed_by_reason[short] += 1
        if len(r.malformed_examples) < MAX_EXAMPLES:
            r.malformed_examples.append(Problem(source, pos, reason))
        self._dead_letter(source, pos, reason, raw)

    def _oversized(self, source: str, pos: int, size: int, raw: bytes) -> None:
        r = self.report
        r.oversized += 1
        reason = (f"{'token-id ' if self._tok else ''}record of {size} bytes with framing "
                  f"exceeds max.message.bytes="
                  f"{r.max_message_bytes} of topic {self.topic}")
        if len(r.oversized_examples) < MAX_EXAMPLES:
            r.oversized_examples.append(Problem(source, pos, reason))
        self._dead_letter(source, pos, reason, raw)

    def _dead_letter(self, source: str, pos: int, reason: str, raw: bytes) -> None:
        if self._dl is not None:
            self._dl.write(json.dumps({"source": source, "line": pos, "reason": reason,
                                       "raw_base64": base64.b64encode(raw).decode()}).encode()
                           + b"\n")

    # -- main loop -------------------------------------------------------------------------
    def run(self, paths: list[str], fmt: str | None = None, *, field: str = "text",
            key_field: str | None = None) -> IngestReport:
        """Ingest ``paths`` (files, globs, ``-``) and return the report; never raises for
        delivery failures (they are in the report), raises for unusable input or settings,
        :class:`pyclient.probe.Unreachable` when the cluster cannot be reached in time."""
        r = self.report
        files = self._unique(inp.expand(paths))
        ckpt = (IngestCheckpoint.load(self.checkpoint_path, self.topic)
                if self.checkpoint_path else None)
        if ckpt and inp.STDIN in files:
            raise ValueError("a checkpoint cannot be used with stdin input")
        if ckpt:
            r.stale_checkpoint_inputs = ckpt.stale(files)
        info = probe(self.config, self.backend, self.topic, self.timeout)
        assert info is not None
        config = self._fit(info)
        total = sum(os.path.getsize(f) for f in files if f != inp.STDIN)
        own_dl = isinstance(self._dl_arg, (str, Path))
        self._dl = open(self._dl_arg, "ab") if own_dl else self._dl_arg  # type: ignore[arg-type]
        prod = make_producer(config, self._on_error, self.backend,
                             self.latencies.append if self.latencies is not None else None)
        t0 = time.perf_counter()
        self._last_ckpt = self._last_prog = time.monotonic()
        done_bytes = 0
        try:
            if self._tok is not None:
                self._tok.start()
            for path in files:
                if self._stop:
                    break
                state = ckpt.state_for(path) if ckpt else None
                if state and state.done:
                    r.resumed[path] = state.line
                    done_bytes += state.size
                    continue
                if state and state.line:
                    r.resumed[path] = state.line
                self._one(prod, path, fmt or inp.guess_format(path), field, key_field, state,
                          ckpt, t0, done_bytes, total)
                if not self._stop:
                    r.inputs_done.append(path)
                    if state:
                        state.done = True
                done_bytes += os.path.getsize(path) if path != inp.STDIN else 0
        finally:
            if self._tok is not None:
                self._tok.close()
            r.undelivered_at_exit = prod.flush(self.flush_timeout)
            prod.poll(0)
            if ckpt is not None and self.checkpoint_path:
                self._save(ckpt, clean=r.undelivered_at_exit == 0)
            prod.close()
            r.elapsed_s = time.perf_counter() - t0
            if self._dl is not None:
                self._dl.flush()
                if own_dl:
                    self._dl.close()
        return r

    def _unique(self, files: list[str]) -> list[str]:
        """One entry per real path (``data/*.txt`` and ``./data/a.txt`` are one file)."""
        seen: set[str] = set()
        out: list[str] = []
        for f in files:
            key = f if f == inp.STDIN else os.path.realpath(f)
            if key in seen:
                self.report.duplicate_inputs.append(f)
                continue
            seen.add(key)
            out.append(f)
        return out

    def _fit(self, info: TopicInfo) -> dict[str, Any]:
        """The producer config with batch.size (and the client's record size limit) fitted to
        the topic's max.message.bytes; a user's batch.size above it is an error."""
        limit = info.max_message_bytes
        self.report.max_message_bytes = limit
        room = limit - BATCH_MARGIN
        if room < 1:
            raise ValueError(f"topic {self.topic!r} has max.message.bytes={limit}: too small for "
                             f"any batch (framing needs {BATCH_MARGIN} bytes); raise the topic's "
                             "max.message.bytes")
        cfg = dict(self.config)
        bs = int(cfg.get("batch.size", 16384))
        if bs > room:
            if "batch.size" in self._user_keys:
                raise ValueError(f"batch.size={bs} is above what topic {self.topic!r} accepts "
                                 f"(max.message.bytes={limit}): the broker would refuse whole "
                                 f"batches. Set batch.size <= {room} or raise the topic's "
                                 "max.message.bytes")
            cfg["batch.size"] = bs = room
        # The client's own per-record ceiling (librdkafka message.max.bytes, kafka-python
        # max_request_size) at the topic's limit, so a record the topic accepts is never refused
        # locally (librdkafka's minimum is 1000).
        if "message.max.bytes" not in self._user_keys:
            cfg["message.max.bytes"] = max(limit, 1000)
        self.report.batch_size = bs
        return cfg

    def _save(self, ckpt: IngestCheckpoint, clean: bool) -> None:
        """Write the checkpoint only when everything before it is known to be delivered."""
        if clean and not self._failed_since_ckpt:
            if self._dl is not None:
                self._dl.flush()
            ckpt.save(self.checkpoint_path)  # type: ignore[arg-type]

    def _wait_for_room(self, prod: Any, value: bytes, key: bytes | None, hdrs: Headers) -> bool:
        """The local queue is full: serve the network until the record fits; False when a
        stop was asked for meanwhile (the record is then not produced)."""
        while not self._stop:
            prod.poll(0.05)
            try:
                prod.produce(self.topic, value, key, hdrs)
                return True
            except BufferError:
                continue
        return False

    def _one(self, prod: Any, path: str, fmt: str, field: str, key_field: str | None,
             state: InputState | None, ckpt: IngestCheckpoint | None, t0: float,
             done_bytes: int, total: int) -> None:
        r = self.report
        src = path.encode()
        produce, poll, topic = prod.produce, prod.poll, self.topic
        # Token-id records carry the tokenizer's headers too (tok.name, tok.hash, tok.dtype).
        extra = self._tok.tid.headers() if self._tok is not None else []
        # Largest value+key that fits one record batch of the topic, headers and framing counted.
        gap = (FRAMING + len(SOURCE_HEADER) + len(src) + len(POSITION_HEADER) + 12
               + sum(len(k) + len(v) for k, v in extra))
        room = r.max_message_bytes - gap
        too_large = _too_large_errors(self.backend)
        items = inp.read(path, fmt, field=field, key_field=key_field,
                         start_line=state.line if state else 0,
                         start_offset=state.offset if state else 0)
        if self._tok is not None:  # same items, same order; good values as token records
            items = self._tok.items(items, lambda: self._stop)
        clock = time.monotonic
        due = clock() + CHECK_SECONDS
        n = produced = nbytes = 0
        pos = end = 0
        for pos, end, value, key, bad, raw in items:
            n += 1
            if value is None:
                self._malformed(path, pos, bad or "malformed", raw)
            elif len(value) + (len(key) if key else 0) > room:
                self._oversized(path, pos, len(value) + (len(key) if key else 0) + gap,
                                raw or value)
            else:
                hdrs = [(SOURCE_HEADER, src), (POSITION_HEADER, b"%d" % pos), *extra]
                try:
                    produce(topic, value, key, hdrs)
                except BufferError:  # local queue full: serve the network, then retry
                    if not self._wait_for_room(prod, value, key, hdrs):
                        n -= 1  # stopped while waiting: this record is not produced
                        pos, end = pos - 1, (end - len(raw) if end >= 0 else end)
                        break
                except too_large as e:  # the client's own size check (a safety net)
                    if not _is_too_large(e):
                        raise
                    self._oversized(path, pos, len(value) + (len(key) if key else 0), raw or value)
                    continue
                produced += 1
                nbytes += len(value)
            if n & (CHECK_RECORDS - 1) == 0 or nbytes >= CHECK_BYTES or (
                    n & 63 == 0 and clock() >= due):
                poll(0)
                r.records_read += n
                r.produced += produced
                r.bytes_produced += nbytes
                n = produced = nbytes = 0
                if state is not None:
                    state.line, state.offset = pos, end
                self._tick(prod, ckpt, t0, done_bytes + max(end, 0), total)
                due = clock() + CHECK_SECONDS
                if self._stop:
                    break
        r.records_read += n
        r.produced += produced
        r.bytes_produced += nbytes
        if state is not None and pos:
            state.line, state.offset = pos, end

    def _tick(self, prod: Any, ckpt: IngestCheckpoint | None, t0: float, done: int,
              total: int) -> None:
        now = time.monotonic()
        if ckpt is not None and now - self._last_ckpt >= self.checkpoint_interval:
            left = prod.flush(self.flush_timeout)
            self._save(ckpt, clean=left == 0)
            self._last_ckpt = now
        if self.on_progress is not None and now - self._last_prog >= self.progress_interval:
            self._last_prog = now
            r = self.report
            self.on_progress(Progress(r.produced, r.bytes_produced, time.perf_counter() - t0,
                                      done, total, r.failed, r.malformed + r.oversized))


def _too_large_errors(backend: str) -> tuple[type[Exception], ...]:
    """The exception types a backend's produce() raises for a record over its size limit."""
    if backend == "confluent":
        from confluent_kafka import KafkaException
        return (KafkaException,)
    from kafka.errors import MessageSizeTooLargeError
    return (MessageSizeTooLargeError,)


def _is_too_large(e: Exception) -> bool:
    err = e.args[0] if e.args else None
    code = getattr(err, "code", None)
    if callable(code):  # confluent KafkaError
        from confluent_kafka import KafkaError
        return bool(code() == KafkaError.MSG_SIZE_TOO_LARGE)
    return type(e).__name__ == "MessageSizeTooLargeError"
