"""Training feed: a PyTorch-compatible IterableDataset of packed token sequences read from
Kafka, data-parallel aware, with an exact ``state_dict()`` / ``load_state_dict()``.

torch is optional: the class subclasses ``torch.utils.data.IterableDataset`` only when torch
is importable, and yields plain lists of ints otherwise (tensors with torch).

Readers: with world size W (data-parallel ranks) and K DataLoader workers per rank there are
N = W*K readers; reader ``g = rank*K + worker`` reads partitions ``p`` with ``p % N == g``
(see :func:`pyclient.consumer.split_partitions`). No two readers share a partition and every
partition has one reader; with fewer partitions than readers some readers would have no
data, which is refused.

State of a reader: the offset after the last record it tokenized (per partition), the
partition next in its round-robin, and the tokens already read but not yet yielded (less
than one batch). Every yielded batch carries its reader's state in ``batch["kafka_state"]``,
so the state that matches what the training loop has *taken* is known even when DataLoader
workers prefetch; :class:`FeedState` collects them on the training side.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from typing import Any

from .consumer import CHUNK, FeedConsumer, reader_index, split_partitions
from .tokenize import ByteTokenizer, as_value_encoder, eos_of

try:  # torch stays optional
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - depends on the install
    torch = None
    _Base = object  # type: ignore[assignment,misc]

STATE_VERSION = 1


class LayoutError(ValueError):
    """A saved state does not fit the current world size / workers / partitions."""


def _dist_rank_world() -> tuple[int, int]:
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _worker() -> tuple[int, int]:
    if torch is not None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


class KafkaTokenDataset(_Base):  # type: ignore[misc,valid-type]
    """Packed training batches ``{"input_ids": [batch_size x seq_len], "kafka_state": ...}``.

    Documents (record values, UTF-8) are tokenized, each followed by ``eos_id``, concatenated
    and cut into sequences of ``seq_len`` tokens; ``batch_size`` sequences make a batch.
    With ``stop_at_end`` (default) an iteration ends at the topic's end offsets seen when it
    started; tokens that do not fill a last batch stay in the state for the next run.
    """

    def __init__(self, bootstrap_servers: str | None, topic: str, *, seq_len: int,
                 batch_size: int, tokenizer: Any = None, eos_id: int | None = None,
                 rank: int | None = None, world_size: int | None = None,
                 worker_id: int | None = None, num_workers: int | None = None,
                 settings: dict[str, Any] | None = None, backend: str | None = None,
                 stop_at_end: bool = True, tokenize_batch: int = 64,
                 chunk: int = CHUNK) -> None:
        self.bootstrap_servers, self.topic = bootstrap_servers, topic
        self.seq_len, self.batch_size = seq_len, batch_size
        self.tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        self.eos_id = eos_of(self.tokenizer, eos_id)
        self._rank, self._world = rank, world_size
        self._worker_id, self._num_workers = worker_id, num_workers
        self.settings, self.backend = dict(settings or {}), backend
        self.stop_at_end, self.tokenize_batch, self.chunk = stop_at_end, tokenize_batch, chunk
        self._loaded: dict[str, Any] | None = None
        self._last: dict[str, dict[str, Any]] = {}

    # -- layout ----------------------------------------------------------------------------
    def layout(self) -> tuple[int, int, int, int]:
        """(rank, world_size, worker, num_workers) of the calling process/worker."""
        r, w = _dist_rank_world()
        k, nk = _worker()
        return (self._rank if self._rank is not None else r,
                self._world if self._world is not None else w,
                self._worker_id if self._worker_id is not None else k,
                self._num_workers if self._num_workers is not None else nk)

    def _picker(self, reader: int, readers: int, world: int, nworkers: int,
                plan: dict[str, Any]) -> Any:
        """The FeedConsumer's partition chooser: this reader's share of the topic, checked
        against the saved state (the start offsets and the rest go to ``plan``)."""
        def pick(all_parts: list[int]) -> list[int]:
            if len(all_parts) < readers:
                raise LayoutError(
                    f"topic {self.topic!r} has {len(all_parts)} partitions for {readers} "
                    "readers (world_size x num_workers); some readers would get no data. "
                    "Use at least as many partitions as readers.")
            mine = split_partitions(all_parts, reader, readers)
            plan["nparts"] = len(all_parts)
            plan["state"] = resume_state(self._loaded, reader, world, nworkers, len(all_parts), mine)
            return mine
        return pick

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world, worker, nworkers = self.layout()
        reader, readers = reader_index(rank, world, worker, nworkers)
        plan: dict[str, Any] = {}
        cons = FeedConsumer(self.bootstrap_servers, self.topic, settings=self.settings,
                            backend=self.backend,
                            partitions=self._picker(reader, readers, world, nworkers, plan),
                            start=lambda _mine: plan["state"]["offsets"],
                            stop_at_end=self.stop_at_end, meta=False, chunk=self.chunk)
        st, nparts = plan["state"], plan["nparts"]
        cons.next_partition = st["next_partition"]
        encode, eos = as_value_encoder(self.tokenizer), self.eos_id
        buf: list[int] = list(st["tokens"])
        need = self.seq_len * self.batch_size
        header = {"version": STATE_VERSION, "topic": self.topic, "world_size": world,
                  "num_workers": nworkers, "num_partitions": nparts, "seq_len": self.seq_len,
                  "chunk": self.chunk}
        docs = ntok = 0
        try:
            while True:
                while len(buf) < need:
                    # Pull about as many documents as the batch still needs (at most
                    # tokenize_batch), so that the leftover carried in the state stays small.
                    avg = ntok // docs if docs else 256
                    want = min(self.tokenize_batch, max(1, (need - len(buf)) // max(avg, 1) + 1))
                    recs = cons.consume(want, timeout=1.0)
                    if not recs:
                        if cons.at_end():
                            # The end: the state now also covers records read after the
                            # last batch (their tokens are all in the leftover).
                            self._last = snapshot(cons, reader, buf)
                            self._header = header
                            return
                        continue
                    before = len(buf)
                    for ids in encode([r.value or b"" for r in recs]):
                        buf.extend(ids)
                        if eos is not None:
                            buf.append(eos)
                    docs += len(recs)
                    ntok += len(buf) - before
                block, buf = buf[:need], buf[need:]
                state = {**header, "readers": snapshot(cons, reader, buf)}
                self._last = state["readers"]
                self._header = header
                yield {"input_ids": as_batch(block, self.batch_size, self.seq_len),
                       "kafka_state": state}
        finally:
            cons.close()

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State after the last batch yielded by this process's iterator (no DataLoader
        workers). With workers, use :class:`FeedState` on the batches instead."""
        if not self._last:
            return dict(self._loaded or {})
        return {**self._header, "readers": dict(self._last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state`` at the next iteration (checked against the layout then)."""
        if state and state.get("version") != STATE_VERSION:
            raise LayoutError(f"unsupported state version {state.get('version')}")
        if state and state.get("topic") != self.topic:
            raise LayoutError(f"state is for topic {state.get('topic')!r}, not {self.topic!r}")
        self._loaded = state or None


def as_batch(tokens: list[int], batch_size: int, seq_len: int) -> Any:
    """``batch_size * seq_len`` tokens as an int64 tensor ``[batch_size, seq_len]`` where torch
    is installed, else as lists. The tensor is built from a packed ``array('q')``
    (``torch.frombuffer``), about 5x faster than ``torch.tensor`` on nested lists."""
    if torch is None:
        return [tokens[i:i + seq_len] for i in range(0, batch_size * seq_len, seq_len)]
    return torch.frombuffer(array("q", tokens), dtype=torch.int64).view(batch_size, seq_len)


def snapshot(cons: FeedConsumer, reader: int, buf: list[int]) -> dict[str, Any]:
    """The state of one reader: offsets after the records tokenized, round-robin position,
    tokens not yet yielded."""
    return {str(reader): {"offsets": {str(p): o for p, o in cons.positions.items()},
                          "next_partition": cons.next_partition, "tokens": list(buf)}}


class FeedState:
    """Collects the reader states riding on batches, on the training-loop side.

    ``tracker.update(batch)`` after the loop has taken a batch; ``tracker.state_dict()`` is
    the rank's state to save with the model checkpoint.
    """

    def __init__(self) -> None:
        self._header: dict[str, Any] = {}
        self._readers: dict[str, Any] = {}

    def update(self, batch: dict[str, Any]) -> None:
        st = batch["kafka_state"]
        self._header = {k: v for k, v in st.items() if k != "readers"}
        self._readers.update(st["readers"])

    def state_dict(self) -> dict[str, Any]:
        return {**self._header, "readers": dict(self._readers)} if self._header else {}


def merge_state_dicts(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the states saved by every rank into one, loadable under another world size."""
    states = [s for s in states if s]
    if not states:
        return {}
    head = {k: v for k, v in states[0].items() if k != "readers"}
    readers: dict[str, Any] = {}
    for s in states:
        if {k: v for k, v in s.items() if k != "readers"} != head:
            raise LayoutError("states come from different runs (layout headers differ)")
        readers.update(s["readers"])
    return {**head, "readers": readers}


def resume_state(state: dict[str, Any] | None, reader: int, world: int, nworkers: int,
                 nparts: int, mine: list[int]) -> dict[str, Any]:
    """The start offsets, round-robin position and leftover tokens of ``reader``."""
    fresh: dict[str, Any] = {"offsets": {}, "next_partition": None, "tokens": []}
    if not state:
        return fresh
    readers = state["readers"]
    same = (state["world_size"], state["num_workers"], state["num_partitions"]) == (world, nworkers, nparts)
    if same:
        rs = readers.get(str(reader))
        if rs is None:
            if len(readers) == 0:
                return fresh
            raise LayoutError(f"the state has no entry for reader {reader}; load the state saved "
                              "by this rank (or the merged state of all ranks)")
        return {"offsets": {int(p): o for p, o in rs["offsets"].items()},
                "next_partition": rs["next_partition"], "tokens": rs["tokens"]}
    old_readers = state["world_size"] * state["num_workers"]
    if len(readers) != old_readers:
        raise LayoutError(
            f"the layout changed (world_size x num_workers x partitions: {state['world_size']}x"
            f"{state['num_workers']}x{state['num_partitions']} -> {world}x{nworkers}x{nparts}) and "
            f"the state holds {len(readers)} of {old_readers} readers; merge the states of all "
            "ranks with pyclient.dataset.merge_state_dicts() to re-split the partitions")
    offsets: dict[int, int] = {}
    for rs in readers.values():
        offsets.update({int(p): o for p, o in rs["offsets"].items()})
    tokens: list[int] = []
    if reader == 0:  # the old readers' leftovers go, in reader order, to the new reader 0
        for g in sorted(readers, key=int):
            tokens.extend(readers[g]["tokens"])
    return {"offsets": {p: o for p, o in offsets.items() if p in mine},
            "next_partition": None, "tokens": tokens}
