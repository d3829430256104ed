"""Batch consumer with manual offsets, a deterministic partition split and a
deterministic record order, for training feeds.

Offsets: a record counts as *taken* once :meth:`FeedConsumer.consume` has returned it;
:attr:`FeedConsumer.positions` holds, per partition, the offset after the last record
taken, and only those positions are ever committed (:meth:`commit`) or saved. Fetched but
not yet returned records are never committed.

Order: with ``strict_order`` (the default when ``stop_at_end``), records are returned
round-robin over the reader's partitions in *chunks*: a turn on partition ``p`` at position
``pos`` takes the records with offsets below the next multiple of ``chunk`` (``(pos //
chunk + 1) * chunk``), then moves to the next partition. Chunk boundaries are offsets, so
the sequence a reader sees depends only on the topic's contents, the start positions and
``chunk``, never on fetch timing; a resumed reader sees exactly the continuation. Chunks
(default 64 records) keep the Python work per record to a slice instead of a loop turn.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from itertools import groupby
from operator import attrgetter
from typing import Any

from .backends import Record, make_consumer, resolve
from .config import CONSUMER_DEFAULTS, merged

#: Flow control: bytes of fetched, not yet returned record values a reader may hold on top
#: of librdkafka's prefetch queue. Above it, the partitions holding more than their share
#: are paused; all resume below half. Strict order waits for the slowest partition, so the
#: others run ahead: 35-53 MB over 12 partitions in the lab's 200k x 1 KiB feed. A
#: per-partition cap of 5000 records paused 18-23 times per run, and every pause/resume
#: throws away librdkafka's prefetched data (3.6-3.9 s instead of 2.3-2.5 s).
MAX_BUFFERED = 128 * 2**20
#: Records per partition per round-robin turn (see the module doc).
CHUNK = 64

_offset = attrgetter("offset")
_partition = attrgetter("partition")
_value = attrgetter("value")


def _size(recs: list[Record]) -> int:
    return sum([len(v) for v in map(_value, recs) if v])


class _Buffer:
    """Fetched, not yet returned records of one partition: a list and a read index
    (slices, no per-record pops)."""

    __slots__ = ("recs", "head", "nbytes")

    def __init__(self) -> None:
        self.recs: list[Record] = []
        self.head = 0
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.recs) - self.head

    def take(self, j: int) -> None:
        """Mark records up to index ``j`` (exclusive) as returned."""
        self.head = j
        if j >= 4096 and j * 2 >= len(self.recs):
            del self.recs[:j]
            self.head = 0


def split_partitions(partitions: list[int], reader: int, readers: int) -> list[int]:
    """Partitions of reader ``reader`` of ``readers``: every ``readers``-th partition of the
    sorted list, starting at ``reader`` (p % readers == reader for partitions 0..P-1)."""
    if not 0 <= reader < readers:
        raise ValueError(f"reader {reader} out of range for {readers} readers")
    return sorted(partitions)[reader::readers]


def reader_index(rank: int, world_size: int, worker: int, num_workers: int) -> tuple[int, int]:
    """(global reader id, total readers) for data-parallel rank and DataLoader worker."""
    if not 0 <= rank < world_size or not 0 <= worker < num_workers:
        raise ValueError(f"rank {rank}/{world_size} worker {worker}/{num_workers} out of range")
    return rank * num_workers + worker, world_size * num_workers


def drain_loop(reader: Any, n: int, timeout: float) -> list[Record]:
    """Up to ``n`` records from ``reader``'s ``_drain(out, n)``, fetching (``_fetch(t)``) in
    turns of at most 0.5 s until a record is there, ``at_end()``, or ``timeout`` passed:
    ``timeout`` bounds the wait for the *first* record only, as Kafka's ``poll()`` (a call
    that waited for all ``n`` kept a latency reader's records for the whole timeout)."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while True:
        reader._drain(out, n)
        if out or n <= 0 or reader.at_end():
            return out
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        reader._fetch(min(left, 0.5))


class RoundRobin:
    """A reader's turn over its sorted partitions ``_order``, at index ``_rr``."""

    _order: list[int]
    _rr: int

    @property
    def next_partition(self) -> int | None:
        """The partition whose record comes next in the round-robin (part of a resume state)."""
        return self._order[self._rr % len(self._order)] if self._order else None

    @next_partition.setter
    def next_partition(self, p: int | None) -> None:
        """Start the round-robin at ``p`` (from a saved state; ignored if not ours)."""
        if p is not None and p in self._order:
            self._rr = self._order.index(p)


class FeedConsumer(RoundRobin):
    """Read ``topic`` in batches.

    ``partitions``: read exactly these (``assign``), or a function that picks them from the
    topic's sorted partition list (read with this consumer's own client); ``None`` with
    ``group_subscribe=False`` reads all partitions; ``group_subscribe=True`` joins the consumer group instead and lets
    Kafka balance partitions (positions of revoked partitions are committed in the
    rebalance callback, their unreturned records dropped, so nothing is lost or repeated).
    ``start``: partition -> next offset to read (a saved state), or a function of the
    chosen partitions that returns it; otherwise the group's
    committed offset, else ``auto.offset.reset``. ``meta=False``: records without headers
    and timestamp (cheaper; the training feed reads only partition, offset and value).
    ``max_buffered_bytes``: flow control (see :data:`MAX_BUFFERED`); a paused partition
    whose buffer runs dry is resumed at once, so strict order can never wait on a paused
    partition. ``end``: with ``stop_at_end``, partition -> offset to stop at (an epoch's
    recorded end) instead of the high watermark read at start.
    """

    def __init__(self, bootstrap_servers: str | None, topic: str, *,
                 settings: dict[str, Any] | None = None, backend: str | None = None,
                 partitions: list[int] | None = None, start: dict[int, int] | None = None,
                 stop_at_end: bool = False, strict_order: bool | None = None,
                 next_partition: int | None = None, group_subscribe: bool = False,
                 meta: bool = True, chunk: int = CHUNK,
                 max_buffered_bytes: int = MAX_BUFFERED,
                 end: dict[int, int] | None = None) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.backend = resolve(backend)
        self.topic = topic
        cfg = merged(CONSUMER_DEFAULTS, self.backend, bootstrap_servers, settings)
        cfg.setdefault("group.id", f"pyclient-{topic}")
        if stop_at_end and self.backend == "confluent":
            # End-of-partition events tell a partition whose last offsets are transaction
            # markers (no record to wait for) from one whose records are still coming.
            cfg.setdefault("enable.partition.eof", True)
        self._c = make_consumer(cfg, self.backend)
        self.stop_at_end = stop_at_end
        self._meta = meta
        self.chunk = chunk
        self.max_buffered_bytes = max_buffered_bytes
        self._held = 0  # bytes in self._bufs
        self.strict_order = stop_at_end if strict_order is None else strict_order
        self.positions: dict[int, int] = {}
        self._bufs: dict[int, _Buffer] = {}
        self._paused: set[int] = set()  # paused for the byte budget (resumed later)
        self._end: dict[int, int] = dict(end or {})  # stop_at_end: given, else high watermark
        self._past_end: set[int] = set()  # every record below the end offset was fetched
        self._order: list[int] = []
        self._rr = 0
        self._start = {} if callable(start) else dict(start or {})
        self._group = group_subscribe
        if group_subscribe:
            self._c.subscribe(topic, self._on_assign, self._on_revoke)
            return
        try:
            if partitions is None or callable(partitions):
                parts = sorted(self._c.partitions_for(topic))
                parts = parts if partitions is None else sorted(partitions(parts))
            else:
                parts = sorted(partitions)
            if callable(start):
                self._start = dict(start(parts))
            self._add(parts)
            # Known positions (a saved state; with stop_at_end also the committed or
            # earliest offsets read above) go straight to the fetcher: no second lookup.
            self._c.assign([(topic, p, self.positions.get(p, -1)) for p in parts])
        except BaseException:
            self._c.close()
            raise
        self.next_partition = next_partition

    # -- partition bookkeeping ---------------------------------------------------------
    def _add(self, parts: list[int]) -> None:
        for p in parts:
            self._bufs[p] = _Buffer()
            if p in self._start:
                self.positions[p] = self._start[p]
        if self.stop_at_end:
            todo = [p for p in parts if p not in self.positions]
            got = self._c.committed([(self.topic, p) for p in todo]) if todo else {}
            for p in parts:
                if p in self._end and p in self.positions:
                    continue  # start and end both given (the training feed): no lookup
                lo, hi = self._c.watermarks(self.topic, p)
                self._end.setdefault(p, hi)
                if p not in self.positions:  # committed, else earliest
                    c = got.get((self.topic, p))
                    self.positions[p] = lo if c is None else c
        self._order = sorted(self._bufs)

    def _on_assign(self, parts: list[tuple[str, int]]) -> None:
        self._add([p for t, p in parts if t == self.topic])

    def _on_revoke(self, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Drop revoked partitions' unreturned records; return their positions to commit."""
        gone = [p for t, p in parts if t == self.topic]
        commit = {(self.topic, p): self.positions[p] for p in gone if p in self.positions}
        for p in gone:
            old = self._bufs.pop(p, None)
            self._held -= old.nbytes if old else 0
            self.positions.pop(p, None)
            self._paused.discard(p)
            self._past_end.discard(p)
        self._order = sorted(self._bufs)
        self._rr = 0
        return commit

    def _finished(self, p: int) -> bool:
        if not self.stop_at_end or self._bufs[p]:
            return False
        end = self._end.get(p, 0)
        if self.positions.get(p, -1) >= end:
            return True
        if p in self._past_end:  # only markers lie between the last record and the end
            self.positions[p] = end
            return True
        return False

    @property
    def buffered_bytes(self) -> int:
        """Bytes of record values fetched but not yet returned (what flow control bounds)."""
        return self._held

    def at_end(self) -> bool:
        """True when ``stop_at_end`` and every partition is read up to its end offset."""
        return self.stop_at_end and all(self._finished(p) for p in self._order)

    # -- reading ---------------------------------------------------------------------------
    def consume(self, num_messages: int, timeout: float = 1.0) -> list[Record]:
        """Return up to ``num_messages`` records; they count as taken from now on."""
        if self._group:
            self._fetch(0)  # serve rebalance callbacks even while records are buffered
        return drain_loop(self, num_messages, timeout)

    def _drain(self, out: list[Record], n: int) -> None:
        order, bufs, pos, k = self._order, self._bufs, self.positions, self.chunk
        stalled = 0
        while len(out) < n and stalled < len(order):
            p = order[self._rr]
            buf = bufs[p]
            recs, h = buf.recs, buf.head
            avail = len(recs) - h
            if avail:
                at = pos.get(p, recs[h].offset)
                boundary = (at // k + 1) * k
                # Offsets rise by at least 1, so at most boundary - at records lie below it.
                j = h + min(avail, boundary - at, n - len(out))
                if recs[j - 1].offset >= boundary:  # offset gaps (compaction, markers)
                    j = bisect_left(recs, boundary, h, j, key=_offset)
                if j > h:
                    got = recs[h:j]
                    out.extend(got)
                    nb = _size(got)
                    buf.nbytes -= nb
                    self._held -= nb
                    at = pos[p] = recs[j - 1].offset + 1
                    buf.take(j)
                    stalled = 0
                if at >= boundary or (j < len(recs) and recs[j].offset >= boundary):
                    if at < boundary:  # a gap up to the next record: nothing lies between
                        pos[p] = recs[j].offset
                    self._rr = (self._rr + 1) % len(order)
                    continue
                if len(out) >= n:
                    return  # mid-chunk: the next call continues this partition
            # The buffer is empty in the middle of a chunk.
            if not self._finished(p) and self.strict_order:
                return  # the next record in order is not fetched yet
            stalled += 1
            self._rr = (self._rr + 1) % len(order)

    def _fetch(self, timeout: float) -> None:
        if self._paused and self._held < self.max_buffered_bytes // 2:
            self._c.resume([(self.topic, p) for p in sorted(self._paused)])
            self._paused.clear()
        elif self._paused:
            # Never stall: a paused partition whose buffer ran empty is resumed whatever the
            # total (strict order may be waiting on it while the others hold the budget).
            dry = sorted(p for p in self._paused if not self._bufs[p])
            if dry:
                self._c.resume([(self.topic, p) for p in dry])
                self._paused.difference_update(dry)
        recs = self._c.consume(10000, timeout, self._meta)
        # Records arrive in runs per partition (one run per fetched batch): handle a run
        # with bisects and one extend instead of a loop turn per record.
        for p, run in groupby(recs, key=_partition):
            buf = self._bufs.get(p)
            if buf is None:
                continue  # revoked meanwhile
            grp = list(run)
            if p not in self.positions:  # first record since (re)assignment: the start
                self.positions[p] = grp[0].offset
            last = buf.recs[-1].offset if len(buf) else self.positions[p] - 1
            i = bisect_right(grp, last, key=_offset) if grp[0].offset <= last else 0
            j = len(grp)  # re-fetched after a seek or rebalance: grp[:i]
            if self.stop_at_end and grp[-1].offset >= self._end[p]:
                j = bisect_left(grp, self._end[p], i, key=_offset)
                if p not in self._past_end:  # stop fetching it for good
                    self._past_end.add(p)
                    self._paused.discard(p)
                    self._c.pause([(self.topic, p)])
            if i < j:
                new = grp[i:j] if i or j < len(grp) else grp
                buf.recs.extend(new)
                nb = _size(new)
                buf.nbytes += nb
                self._held += nb
        if self._held > self.max_buffered_bytes and self._order:
            share = self.max_buffered_bytes // len(self._order)
            ahead = [p for p in self._order if self._bufs[p].nbytes > share
                     and p not in self._paused and p not in self._past_end]
            if ahead:
                self._c.pause([(self.topic, p) for p in ahead])
                self._paused.update(ahead)
        if self.stop_at_end:
            # Only a drained partition can be waiting at trailing markers: ask about those.
            open_ = [p for p in self._order if not self._bufs[p] and p not in self._past_end
                     and self.positions.get(p, -1) < self._end.get(p, 0)]
            if open_:
                for p, at in self._c.fetch_positions(self.topic, open_).items():
                    if at >= self._end[p]:
                        self._past_end.add(p)

    # -- offsets -----------------------------------------------------------------------
    def commit(self) -> dict[int, int]:
        """Commit the positions of every record taken so far; return them."""
        pos = dict(self.positions)
        self._c.commit({(self.topic, p): o for p, o in pos.items()})
        return pos

    def committed(self) -> dict[int, int | None]:
        got = self._c.committed([(self.topic, p) for p in self._order])
        return {p: o for (_, p), o in got.items()}

    def close(self) -> None:
        """Close; in group mode the positions of everything taken are committed first."""
        try:
            if self._group and self.positions:
                self.commit()
        finally:
            self._c.close()

    def __enter__(self) -> FeedConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
