"""The training feed's seeded shuffle: shuffled block order, shuffled records within a block,
resumable exactly with the feed's ``[offset, skip]`` cursors.

An epoch's range ``[start, end)`` of a partition is cut into blocks of ``block`` offsets
(``[start, start+block)``, ...; the last one may be shorter). Per partition and epoch:

- the order of its blocks is a permutation drawn from ``(seed, epoch, partition)``;
- the records of a block are read whole and permuted by ``(seed, epoch, partition, block
  start)``.

A reader takes its partitions' blocks round-robin, one block per turn (the feed's chunked
round-robin, with blocks for chunks). The sequence a reader delivers therefore depends only on
the topic's records, the epoch plan, the seed and the layout, never on fetch timing.

Cursors stay offsets-shaped: a partition's *virtual offset* counts records in shuffled order,
``start + (offsets of the blocks before this one in shuffled order) + (records of this block
delivered)``, and a finished block moves it to the next block's virtual start. It lies in
``[start, end]`` and only grows, so :mod:`pyclient.feed_state` validates, merges and resumes
it unchanged (furthest cursor per partition, any layout). Resuming re-reads the block the
cursor lies in, permutes it again (the same records, the same permutation) and continues at
the cursor.

Cost: a reader holds at most two blocks per partition (the one it delivers, the next one
fetched ahead) and seeks once per block (the partition alone; the others keep fetching); ``block`` trades shuffle locality for seeks
(docs/pyclient.md, "Shuffle"). The permutation uses ``random.Random.random()`` only (its
sequence for a seed is stable across Python versions; ``shuffle()``'s is not promised).
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left, bisect_right
from itertools import groupby
from operator import attrgetter
from typing import Any

from .backends import Record, make_consumer
from .consumer import RoundRobin, drain_loop

_partition = attrgetter("partition")
_offset = attrgetter("offset")


def _rng(*key: Any) -> random.Random:
    h = hashlib.blake2b(repr(key).encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(h, "little"))


def permute(n: int, *key: Any) -> list[int]:
    """A seeded permutation of ``range(n)`` (Fisher-Yates over ``Random.random()``)."""
    out = list(range(n))
    r = _rng(*key).random
    for i in range(n - 1, 0, -1):
        j = int(r() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def block_plan(seed: int, epoch: int, partition: int, start: int, end: int,
               block: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The partition's blocks ``(first offset, end offset)`` in shuffled order, and each
    block's virtual start (the last entry: ``end``)."""
    blocks = [(a, min(a + block, end)) for a in range(start, end, block)]
    order = [blocks[i] for i in permute(len(blocks), seed, epoch, partition)]
    vstart = [start]
    for a, b in order:
        vstart.append(vstart[-1] + (b - a))
    return order, vstart


class ShuffledConsumer(RoundRobin):
    """What :func:`pyclient.feed_reader._pack` needs of a consumer (``consume``,
    ``positions``, ``at_end``, ``next_partition``, ``_start``, ``_meta``, ``close``), for a
    shuffled epoch. ``cursor``: partition -> virtual offset to continue at. Records come out
    with their virtual offset in ``offset``."""

    def __init__(self, config: dict[str, Any], backend: str, topic: str, partitions: list[int],
                 start: dict[int, int], end: dict[int, int], cursor: dict[int, int], *,
                 seed: int, epoch: int, block: int, meta: bool = True) -> None:
        self.topic, self.seed, self.epoch = topic, seed, epoch
        self._meta = meta
        self._plan: dict[int, tuple[list[tuple[int, int]], list[int]]] = {}
        self._k: dict[int, int] = {}     # block (in shuffled order) being delivered
        self._j: dict[int, int] = {}     # records of it delivered
        self.positions: dict[int, int] = {}
        self._start: dict[int, int] = {}
        self._ready: dict[int, dict[int, list[Record]]] = {}  # p -> k -> permuted records
        self._fetch_k: dict[int, int] = {}    # p -> block being fetched
        self._raw: dict[int, list[Record]] = {}
        self._next_off: dict[int, int] = {}   # p -> next offset the fetch expects
        self._assigned: set[int] | None = None  # partitions assigned (once)
        self._paused: set[int] = set()
        for p in sorted(partitions):
            order, vstart = block_plan(seed, epoch, p, start[p], end[p], block)
            self._plan[p] = (order, vstart)
            v = cursor[p]
            k = bisect_right(vstart, v) - 1 if v < end[p] else len(order)
            self._k[p], self._j[p] = k, (v - vstart[k] if k < len(order) else 0)
            self.positions[p] = self._start[p] = v
            self._ready[p] = {}
        self._order = [p for p in sorted(partitions) if self._k[p] < len(self._plan[p][0])]
        self._rr = 0
        cfg = dict(config)
        if backend == "confluent":  # end-of-partition events: blocks ending in markers
            cfg.setdefault("enable.partition.eof", True)
            # A seek waits for the fetch in flight, which long-polls while a partition is
            # at its end (500 ms by default): 125 ms per block measured, 4 ms with these.
            cfg.setdefault("fetch.wait.max.ms", 10)
            cfg.setdefault("fetch.queue.backoff.ms", 0)
        self._c = make_consumer(cfg, backend)
        try:
            self._schedule()
        except BaseException:
            self._c.close()
            raise

    def at_end(self) -> bool:
        return not self._order

    # -- fetch scheduling ----------------------------------------------------------------
    def _schedule(self) -> None:
        """Fetch, per partition, the first block of ``k``, ``k+1`` not read yet: the first
        call assigns every partition there; later changes seek (or pause a partition with
        nothing to fetch, and resume it with a seek when it has again)."""
        want: dict[int, int] = {}
        for p in self._order:
            order = self._plan[p][0]
            for k in (self._k[p], self._k[p] + 1):
                if k < len(order) and k not in self._ready[p]:
                    want[p] = k
                    break
        if self._assigned is None:
            for p, k in want.items():
                self._start_fetch(p, k)
            self._assigned = set(want)
            self._c.assign([(self.topic, p, self._next_off[p]) for p in sorted(want)])
            return
        for p in sorted(set(want) | set(self._fetch_k)):
            k = want.get(p)
            if k is not None and self._fetch_k.get(p) == k:
                continue
            if k is None:
                if p in self._fetch_k:
                    del self._fetch_k[p], self._raw[p], self._next_off[p]
                if p not in self._paused:
                    self._c.pause([(self.topic, p)])
                    self._paused.add(p)
                continue
            self._start_fetch(p, k)
            self._c.seek(self.topic, p, self._next_off[p])
            if p in self._paused:
                self._c.resume([(self.topic, p)])
                self._paused.discard(p)
        for p in self._assigned - set(self._order) - self._paused:  # finished partitions
            self._c.pause([(self.topic, p)])
            self._paused.add(p)

    def _start_fetch(self, p: int, k: int) -> None:
        self._fetch_k[p], self._raw[p] = k, []
        self._next_off[p] = self._plan[p][0][k][0]

    def _complete(self, p: int) -> None:
        k = self._fetch_k[p]
        a, _ = self._plan[p][0][k]
        recs = self._raw[p]
        self._ready[p][k] = [recs[i] for i in permute(len(recs), self.seed, self.epoch, p, a)]
        del self._fetch_k[p], self._raw[p], self._next_off[p]
        self._schedule()  # seek to the next block now, or pause

    def _fetch(self, timeout: float) -> None:
        self._schedule()
        if not self._fetch_k:
            return
        recs = self._c.consume(10000, timeout, self._meta)
        seen, moved = set(), set()
        for p, run in groupby(recs, key=_partition):
            if p not in self._fetch_k or p in moved:
                continue  # not fetching, or its block completed earlier in this batch (the
                # rest of the batch was fetched before the seek to its next block)
            seen.add(p)
            a, b = self._plan[p][0][self._fetch_k[p]]
            grp = list(run)
            nxt = self._next_off[p]
            i = bisect_left(grp, nxt, key=_offset)
            j = bisect_left(grp, b, i, key=_offset)
            if i < j:
                self._raw[p].extend(grp[i:j])
                self._next_off[p] = grp[j - 1].offset + 1
            if self._next_off[p] >= b or j < len(grp):
                moved.add(p)
                self._complete(p)
        idle = [p for p in self._fetch_k if p not in seen]
        self._schedule()
        if idle:  # a block ending in offsets without records (markers, compaction)
            for p, at in self._c.fetch_positions(self.topic, idle).items():
                if at >= self._plan[p][0][self._fetch_k[p]][1]:
                    self._complete(p)
        self._schedule()

    # -- delivery ------------------------------------------------------------------------
    def consume(self, num_messages: int, timeout: float = 1.0) -> list[Record]:
        return drain_loop(self, num_messages, timeout)

    def _drain(self, out: list[Record], n: int) -> None:
        while len(out) < n and self._order:
            p = self._order[self._rr]
            k = self._k[p]
            recs = self._ready[p].get(k)
            if recs is None:
                return  # strict order: this block is not fetched yet
            order, vstart = self._plan[p]
            j = self._j[p]
            take = recs[j:j + n - len(out)]
            v0 = vstart[k] + j
            out.extend([r._replace(offset=v0 + i) for i, r in enumerate(take)])
            j += len(take)
            self._j[p] = j
            self.positions[p] = vstart[k] + j
            if j < len(recs):
                return  # mid-block: the next call continues this partition
            del self._ready[p][k]
            self._k[p], self._j[p] = k + 1, 0
            self.positions[p] = vstart[k + 1]
            if k + 1 >= len(order):
                i = self._order.index(p)
                self._order.pop(i)
                if self._order:
                    self._rr = i % len(self._order)
                else:
                    self._rr = 0
            else:
                self._rr = (self._rr + 1) % len(self._order)
            self._schedule()

    def close(self) -> None:
        self._c.close()
