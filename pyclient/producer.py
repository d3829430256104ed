"""Corpus ingest: read inputs, produce every record, lose nothing, resume from a checkpoint.

Guarantees (see docs/pyclient.md): records are produced with ``acks=all`` and the
idempotent producer, so broker-side retries never duplicate or reorder. A checkpoint is
written only after ``flush()`` has confirmed every record before it and no delivery has
failed; a resumed ingest starts right after it. After a clean stop (end of input, SIGINT,
SIGTERM) the checkpoint is exact and a resume adds no duplicate. After a crash (kill -9,
power loss) the records produced after the last checkpoint, at most ``checkpoint_interval``
seconds' worth, may be produced a second time: at-least-once, never loss.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import inputs as inp
from .backends import Headers, make_producer, resolve
from .checkpoint import IngestCheckpoint, InputState
from .config import PRODUCER_DEFAULTS, merged

#: Record headers carrying the source position of each record.
SOURCE_HEADER, POSITION_HEADER = "src", "pos"
MAX_EXAMPLES = 100


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
    bytes_produced: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    undelivered_at_exit: int = 0   #: still queued when the final flush timed out
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    malformed_by_reason: Counter[str] = field(default_factory=Counter)
    failure_examples: list[Problem] = field(default_factory=list)
    malformed_examples: list[Problem] = field(default_factory=list)
    inputs_done: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)  #: path -> lines skipped on resume

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

    ``settings`` are Kafka keys layered over :data:`pyclient.config.PRODUCER_DEFAULTS`.
    ``dead_letter`` is a path or a binary file for malformed records (JSON lines).
    """

    def __init__(self, bootstrap_servers: str | None, topic: str, *,
                 settings: dict[str, Any] | None = None, backend: str | None = None,
                 checkpoint: str | Path | None = None, checkpoint_interval: float = 5.0,
                 dead_letter: str | Path | IO[bytes] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 progress_interval: float = 0.5, flush_timeout: float = 300.0,
                 measure_latency: bool = False) -> None:
        self.backend = resolve(backend)
        self.topic = topic
        self.config = merged(PRODUCER_DEFAULTS, self.backend, bootstrap_servers, settings)
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
        if self._dl is not None:
            self._dl.write(json.dumps({"source": source, "line": pos, "reason": reason,
                                       "raw_base64": base64.b64encode(raw).decode()}).encode()
                           + b"\n")

    # -- main loop -------------------------------------------------------------------------
    def run(self, paths: list[str], fmt: str | None = None, *, field: str = "text",
            key_field: str | None = None) -> IngestReport:
        """Ingest ``paths`` (files, globs, ``-``) and return the report; never raises for
        delivery failures (they are in the report), raises for unusable input or settings."""
        files = inp.expand(paths)
        ckpt = (IngestCheckpoint.load(self.checkpoint_path, self.topic)
                if self.checkpoint_path else None)
        if ckpt and inp.STDIN in files:
            raise ValueError("a checkpoint cannot be used with stdin input")
        total = sum(inp.os.path.getsize(f) for f in files if f != inp.STDIN)
        own_dl = isinstance(self._dl_arg, (str, Path))
        self._dl = open(self._dl_arg, "ab") if own_dl else self._dl_arg  # type: ignore[arg-type]
        prod = make_producer(self.config, self._on_error, self.backend,
                             self.latencies.append if self.latencies is not None else None)
        r, t0 = self.report, time.perf_counter()
        self._last_ckpt = self._last_prog = time.monotonic()
        done_bytes = 0
        try:
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
                done_bytes += inp.os.path.getsize(path) if path != inp.STDIN else 0
        finally:
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

    def _save(self, ckpt: IngestCheckpoint, clean: bool) -> None:
        """Write the checkpoint only when everything before it is known to be delivered."""
        if clean and not self._failed_since_ckpt:
            if self._dl is not None:
                self._dl.flush()
            ckpt.save(self.checkpoint_path)  # type: ignore[arg-type]

    def _one(self, prod: Any, path: str, fmt: str, field: str, key_field: str | None,
             state: InputState | None, ckpt: IngestCheckpoint | None, t0: float,
             done_bytes: int, total: int) -> None:
        r = self.report
        src = path.encode()
        produce, poll, topic = prod.produce, prod.poll, self.topic
        items = inp.read(path, fmt, field=field, key_field=key_field,
                         start_line=state.line if state else 0,
                         start_offset=state.offset if state else 0)
        n = produced = nbytes = 0
        pos = end = 0
        for pos, end, value, key, bad, raw in items:
            n += 1
            if value is None:
                self._malformed(path, pos, bad or "malformed", raw)
            else:
                hdrs = [(SOURCE_HEADER, src), (POSITION_HEADER, b"%d" % pos)]
                try:
                    produce(topic, value, key, hdrs)
                except BufferError:  # local queue full: serve the network, then retry
                    while True:
                        poll(0.05)
                        try:
                            produce(topic, value, key, hdrs)
                            break
                        except BufferError:
                            continue
                produced += 1
                nbytes += len(value)
            if n & 1023 == 0:
                poll(0)
                r.records_read += n
                r.produced += produced
                r.bytes_produced += nbytes
                n = produced = nbytes = 0
                if state is not None:
                    state.line, state.offset = pos, end
                if self._tick(prod, ckpt, t0, done_bytes + max(end, 0), total) or self._stop:
                    break
        r.records_read += n
        r.produced += produced
        r.bytes_produced += nbytes
        if state is not None and pos:
            state.line, state.offset = pos, end

    def _tick(self, prod: Any, ckpt: IngestCheckpoint | None, t0: float, done: int,
              total: int) -> bool:
        now = time.monotonic()
        if ckpt is not None and now - self._last_ckpt >= self.checkpoint_interval:
            left = prod.flush(self.flush_timeout)
            self._save(ckpt, clean=left == 0)
            self._last_ckpt = now
        if self.on_progress is not None and now - self._last_prog >= self.progress_interval:
            self._last_prog = now
            r = self.report
            self.on_progress(Progress(r.produced, r.bytes_produced, time.perf_counter() - t0,
                                      done, total, r.failed, r.malformed))
        return False
