"""Batch consumer with manual offsets, a deterministic partition split and a
deterministic record order, for training feeds.

Offsets: a record counts as *taken* once :meth:`FeedConsumer.consume` has returned it;
:attr:`FeedConsumer.positions` holds, per partition, the offset after the last record
taken, and only those positions are ever committed (:meth:`commit`) or saved. Fetched but
not yet returned records are never committed.

Order: with ``strict_order`` (the default when ``stop_at_end``), records are returned
round-robin over the reader's partitions, one record per partition per turn, so the
sequence a reader sees depends only on the topic's contents and the start positions,
never on fetch timing; a resumed reader sees exactly the continuation.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from .backends import Record, make_consumer, resolve
from .config import CONSUMER_DEFAULTS, merged

#: Pause a partition's fetching above this many buffered records, resume below half
#: (5000 x 1 KiB records = 5 MiB per partition on top of librdkafka's own prefetch queue).
HIGH_WATER = 5000


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


class FeedConsumer:
    """Read ``topic`` in batches.

    ``partitions``: read exactly these (``assign``); ``None`` with ``group_subscribe=False``
    reads all partitions; ``group_subscribe=True`` joins the consumer group instead and lets
    Kafka balance partitions (positions of revoked partitions are committed in the
    rebalance callback, their unreturned records dropped, so nothing is lost or repeated).
    ``start``: partition -> next offset to read (a saved state); otherwise the group's
    committed offset, else ``auto.offset.reset``.
    """

    def __init__(self, bootstrap_servers: str | None, topic: str, *,
                 settings: dict[str, Any] | None = None, backend: str | None = None,
                 partitions: list[int] | None = None, start: dict[int, int] | None = None,
                 stop_at_end: bool = False, strict_order: bool | None = None,
                 next_partition: int | None = None, group_subscribe: bool = False) -> None:
        self.backend = resolve(backend)
        self.topic = topic
        cfg = merged(CONSUMER_DEFAULTS, self.backend, bootstrap_servers, settings)
        cfg.setdefault("group.id", f"pyclient-{topic}")
        self._c = make_consumer(cfg, self.backend)
        self.stop_at_end = stop_at_end
        self.strict_order = stop_at_end if strict_order is None else strict_order
        self.positions: dict[int, int] = {}
        self._bufs: dict[int, deque[Record]] = {}
        self._paused: set[int] = set()
        self._end: dict[int, int] = {}
        self._order: list[int] = []
        self._rr = 0
        self._start = dict(start or {})
        self._group = group_subscribe
        if group_subscribe:
            self._c.subscribe(topic, self._on_assign, self._on_revoke)
            return
        parts = self._c.partitions_for(topic) if partitions is None else sorted(partitions)
        self._add(parts)
        self._c.assign([(topic, p, self._start.get(p, -1)) for p in parts])
        if next_partition is not None and next_partition in self._order:
            self._rr = self._order.index(next_partition)

    # -- partition bookkeeping ---------------------------------------------------------
    def _add(self, parts: list[int]) -> None:
        for p in parts:
            self._bufs[p] = deque()
            if p in self._start:
                self.positions[p] = self._start[p]
            if self.stop_at_end:
                lo, hi = self._c.watermarks(self.topic, p)
                self._end[p] = hi
                if p not in self.positions:  # committed, else earliest
                    got = self._c.committed([(self.topic, p)]).get((self.topic, p))
                    self.positions[p] = lo if got is None else got
        self._order = sorted(self._bufs)

    def _on_assign(self, parts: list[tuple[str, int]]) -> None:
        self._add([p for t, p in parts if t == self.topic])

    def _on_revoke(self, parts: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Drop revoked partitions' unreturned records; return their positions to commit."""
        gone = [p for t, p in parts if t == self.topic]
        commit = {(self.topic, p): self.positions[p] for p in gone if p in self.positions}
        for p in gone:
            self._bufs.pop(p, None)
            self.positions.pop(p, None)
            self._paused.discard(p)
        self._order = sorted(self._bufs)
        self._rr = 0
        return commit

    def _finished(self, p: int) -> bool:
        return self.stop_at_end and self.positions.get(p, -1) >= self._end.get(p, 0) and not self._bufs[p]

    def at_end(self) -> bool:
        """True when ``stop_at_end`` and every partition is read up to its end offset."""
        return self.stop_at_end and all(self._finished(p) for p in self._order)

    @property
    def next_partition(self) -> int | None:
        """The partition whose record comes next in the round-robin (part of a resume state)."""
        return self._order[self._rr % len(self._order)] if self._order else None

    # -- reading ---------------------------------------------------------------------------
    def consume(self, num_messages: int, timeout: float = 1.0) -> list[Record]:
        """Return up to ``num_messages`` records; they count as taken from now on."""
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        if self._group:
            self._fetch(0)  # serve rebalance callbacks even while records are buffered
        while True:
            self._drain(out, num_messages)
            if len(out) >= num_messages or self.at_end():
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self._fetch(min(left, 0.5))

    def _drain(self, out: list[Record], n: int) -> None:
        order, bufs, pos = self._order, self._bufs, self.positions
        if not order:
            return
        stalled = 0
        while len(out) < n and stalled < len(order):
            p = order[self._rr % len(order)]
            buf = bufs[p]
            if buf:
                rec = buf.popleft()
                out.append(rec)
                pos[p] = rec.offset + 1
                stalled = 0
                if p in self._paused and len(buf) < HIGH_WATER // 2:
                    self._c.resume([(self.topic, p)])
                    self._paused.discard(p)
            elif not self._finished(p) and self.strict_order:
                return  # the next record in order is not fetched yet
            else:
                stalled += 1
            self._rr = (self._rr + 1) % len(order)

    def _fetch(self, timeout: float) -> None:
        for rec in self._c.consume(10000, timeout):
            p = rec.partition
            buf = self._bufs.get(p)
            if buf is None:
                continue  # revoked meanwhile
            if p not in self.positions:  # first record since (re)assignment: the start
                self.positions[p] = rec.offset
            last = buf[-1].offset if buf else self.positions[p] - 1
            if rec.offset <= last:
                continue  # re-fetched after a seek or rebalance
            if self.stop_at_end and rec.offset >= self._end[p]:
                self._pause(p)
                continue
            buf.append(rec)
            if len(buf) > HIGH_WATER:
                self._pause(p)

    def _pause(self, p: int) -> None:
        if p not in self._paused:
            self._c.pause([(self.topic, p)])
            self._paused.add(p)

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
