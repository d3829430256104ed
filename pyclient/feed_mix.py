"""Weighted mixing of several training feeds (one :class:`KafkaTokenDataset` per topic),
deterministic for a seed and resumable exactly, in DataLoader workers of any start method.

``MixedTokenDataset({"web": ds_web, "code": ds_code, "math": ds_math},
weights={"web": 0.7, "code": 0.2, "math": 0.1}, batch_size=8)`` yields batches of
``batch_size`` rows; the rows come from the sources in units of each source's own
``batch_size`` (1: every row is drawn on its own, Megatron's sample-level blend; the mix's
``batch_size``: every batch is from one source, MosaicML's ``per_stream``). A
:class:`pyclient.mixing.Mixer` (``schedule="stride"`` by default: every source within about
one unit of its share at every point; or ``"random"``) picks the source of each unit; each
batch also carries ``source``, the source name of each row.

Readers: every source splits its partitions over the same N = ranks x workers readers as the
unmixed feed (:mod:`pyclient.dataset`), and each reader runs its own mixer over its
partitions of every source. A source of which a reader has no records (fewer partitions than
readers) is left out of that reader's mix, whose other weights then grow in proportion: give
every topic at least N partitions to keep the proportions on every reader.

Passes and the mix epoch: under ``on_exhausted="repeat"`` (default) a source whose records
this reader has all delivered starts another pass over the same recorded offset range (each
partition counts its passes; a shuffled source draws each pass's order from ``(epoch,
pass)``), and the reader's mix epoch ends once every source it mixes has completed one pass.
Under ``"stop"`` it ends when the first source runs out. A last partial mixed batch is
dropped, or padded like the sources' (``last_batch="pad"``: ``attention_mask`` 0, the
packed fields as :func:`pyclient.feed_sync.even_batches` pads them, ``source`` None).

The state (``state_dict()``, plain JSON): every source's feed state (cursors of the current
pass per partition), per partition ``[pass, documents and tokens of the passes before]``,
and each reader's mixer state under the layout that wrote it. Merging takes each partition's
furthest ``(pass, cursor)`` and each reader's furthest mixer, so a resume under the same
layout continues with exactly the uninterrupted batches; under another layout every pass
still delivers every record once, and each new reader's mixer starts its schedule afresh over
what is left. A finished mix epoch resumes to no batches; ``set_epoch`` starts the next.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from . import feed_state as fs
from .consumer import reader_index, split_partitions
from .dataset import KafkaTokenDataset, _Base, _worker, torch
from .feed_state import LayoutError
from .mixing import Mixer

FORMAT = "pyclient.mixfeed"
VERSION = 1
#: Fill values of padding rows (pyclient.feed_sync.even_batches' convention).
_PAD_FILL = {"attention_mask": 0, "doc_ids": -1, "position_ids": 0, "labels": -100}

__all__ = ["MixedTokenDataset", "merge_mixed_state_dicts", "from_stateful_dataloader"]


def _batch_keys(ds: KafkaTokenDataset) -> tuple[str, ...]:
    keys = ["input_ids"]
    if ds.packing is not None:
        keys += ["doc_ids", "position_ids", "attention_mask", "cu_seqlens"]
        if ds.packing["labels"] is not None:
            keys.append("labels")
    elif ds.last_batch == "pad":
        keys.append("attention_mask")
    return tuple(keys)


class MixedTokenDataset(_Base):  # type: ignore[misc,valid-type]
    """See the module docstring. ``sources``: name -> :class:`KafkaTokenDataset` (built in
    this process, all with the same ``seq_len``, ``last_batch`` and batch fields, each
    ``batch_size`` dividing this one); ``weights``: name -> weight > 0; ``seed`` and
    ``schedule`` are the mixer's (:class:`pyclient.mixing.Mixer`)."""

    def __init__(self, sources: Mapping[str, KafkaTokenDataset], weights: Mapping[str, float],
                 *, batch_size: int, seed: int = 0,
                 schedule: Literal["stride", "random"] = "stride",
                 on_exhausted: Literal["repeat", "stop"] = "repeat") -> None:
        if not sources or set(sources) != set(weights):
            raise ValueError(f"mixed feed: sources {sorted(sources)} and weights "
                             f"{sorted(weights)} must name the same sources")
        Mixer(weights, seed=seed, schedule=schedule, on_exhausted=on_exhausted)  # refuse now
        self.names = sorted(sources)
        self.sources = {n: sources[n] for n in self.names}
        for n, ds in self.sources.items():
            if not isinstance(ds, KafkaTokenDataset):
                raise TypeError(f"mixed feed source {n!r}: expected a KafkaTokenDataset, got "
                                f"{type(ds).__name__}")
        first = self.sources[self.names[0]]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"mixed feed: batch_size must be an integer >= 1, got {batch_size!r}")
        for n, ds in self.sources.items():
            what = None
            if batch_size % ds.batch_size:
                what = (f"its batch_size {ds.batch_size} does not divide the mix's batch_size "
                        f"{batch_size} (the unit a source gives at a time)")
            elif ds.seq_len != first.seq_len:
                what = f"seq_len {ds.seq_len}, source {self.names[0]!r} has {first.seq_len}"
            elif ds.last_batch != first.last_batch or _batch_keys(ds) != _batch_keys(first):
                what = (f"its batches have fields {_batch_keys(ds)} (last_batch "
                        f"{ds.last_batch!r}), source {self.names[0]!r}'s {_batch_keys(first)} "
                        f"({first.last_batch!r}): give every source the same last_batch and "
                        "packing options")
            elif (ds.rank, ds.world_size) != (first.rank, first.world_size):
                what = (f"rank {ds.rank} of {ds.world_size}, source {self.names[0]!r} rank "
                        f"{first.rank} of {first.world_size}: build every source in this process")
            elif ds.epoch != first.epoch:
                what = f"epoch {ds.epoch}, source {self.names[0]!r} is at {first.epoch}"
            if what:
                raise ValueError(f"mixed feed source {n!r}: {what}")
        self.weights = {n: float(weights[n]) for n in self.names}
        self.batch_size, self.seed = batch_size, seed
        self.schedule, self.on_exhausted = schedule, on_exhausted
        self.seq_len, self.last_batch = first.seq_len, first.last_batch
        self._reset()

    def _reset(self) -> None:
        self._passes = {n: {p: [0, 0, 0] for p in ds._state["end"]}
                        for n, ds in self.sources.items()}
        self._mix: dict[str, Any] = {"layout": None, "readers": {}}

    # -- epochs and state (main process) -----------------------------------------------
    @property
    def epoch(self) -> int:
        return self.sources[self.names[0]].epoch

    def set_epoch(self, epoch: int) -> None:
        """Read ``epoch`` next (every source's :meth:`KafkaTokenDataset.set_epoch`; passes
        and mixers start afresh). The current epoch: nothing changes."""
        if epoch < self.epoch:
            raise ValueError(f"set_epoch({epoch}): the state is at epoch {self.epoch} already")
        if epoch > self.epoch:
            for ds in self.sources.values():
                ds.set_epoch(epoch)
            self._reset()

    def config(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "seed": self.seed, "schedule": self.schedule,
                "on_exhausted": self.on_exhausted, "batch_size": self.batch_size,
                "units": {n: ds.batch_size for n, ds in self.sources.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "config": self.config(),
                "sources": {n: ds.state_dict() for n, ds in self.sources.items()},
                "passes": {n: {str(p): list(v) for p, v in self._passes[n].items()}
                           for n in self.names},
                "mix": copy.deepcopy(self._mix)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state`` (any layout; see the module docstring). Every source's part
        is checked as :meth:`KafkaTokenDataset.load_state_dict` checks it; another config
        (weights, seed, schedule, units) is refused, naming the field."""
        st = check(state, self.config())
        for n, ds in self.sources.items():
            sub = ds._checked(st["sources"][n])
            if set(st["passes"][n]) != set(sub["end"]):
                raise LayoutError(f"mixed feed state field 'passes.{n}': partitions "
                                  f"{sorted(st['passes'][n])}, the source's state has "
                                  f"{sorted(sub['end'])}")
            ds._state = sub
        if len({ds.epoch for ds in self.sources.values()}) != 1:
            raise LayoutError("mixed feed state: its sources are at different epochs "
                              f"{ {n: ds.epoch for n, ds in self.sources.items()} }")
        self._passes = st["passes"]
        self._mix = st["mix"]

    def _key(self) -> str:
        keys = "|".join(f"{n}={ds._key()}" for n, ds in self.sources.items())
        return f"{self.epoch}:{zlib.crc32(keys.encode()):08x}"

    def update(self, batch: dict[str, Any]) -> None:
        """Record that the training loop took ``batch`` (in the main process with DataLoader
        workers; without workers iteration records it already)."""
        bs = batch["kafka_state"]
        if bs is None:  # a padding batch (pyclient.feed_sync.even_batches)
            return
        if bs.get("plan") != self._key():
            raise LayoutError(f"this mixed batch comes from plan {bs.get('plan')}, the dataset "
                              f"is at {self._key()}: update() with batches of the current epoch")
        self._apply(bs)

    def _apply(self, bs: dict[str, Any]) -> None:
        for n, u in bs["sources"].items():
            advance(self.sources[n]._state, self._passes[n], u, bs["reader"], bs["layout"])
        if self._mix["layout"] != bs["layout"]:
            self._mix = {"layout": list(bs["layout"]), "readers": {}}
        self._mix["readers"][str(bs["reader"])] = copy.deepcopy(bs["mixer"])

    @property
    def delivered(self) -> dict[str, dict[str, int]]:
        """Per source: documents and tokens delivered in taken batches this epoch (every
        pass), and ``passes``, the passes its least advanced partition completed."""
        out = {}
        for n, ds in self.sources.items():
            cur = ds._state["delivered"]
            pas = self._passes[n]
            out[n] = {"docs": sum(pas[p][1] + cur[p][0] for p in pas),
                      "tokens": sum(pas[p][2] + cur[p][1] for p in pas),
                      "passes": min((v[0] + (ds._state["cursor"][p][0] >= ds._state["end"][p])
                                     for p, v in pas.items()), default=0)}
        return out

    def report(self) -> dict[str, dict[str, Any]]:
        """Per source: weight (normalised), documents, tokens, realised share of the tokens
        delivered and completed passes (see :attr:`delivered`)."""
        got = self.delivered
        total = sum(v["tokens"] for v in got.values()) or 1
        wsum = sum(self.weights.values())
        return {n: {"weight": self.weights[n] / wsum, **got[n],
                    "share": got[n]["tokens"] / total} for n in self.names}

    # -- iteration (main process or DataLoader worker) ---------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        first = self.sources[self.names[0]]
        rank, world, worker, nworkers = first.layout()
        reader, readers = reader_index(rank, world, worker, nworkers)
        layout = [world, nworkers]
        run = _ReaderMix(self, reader, readers, layout)
        for out in run.batches():
            self._apply(out["kafka_state"])
            yield out


class _ReaderMix:
    """One reader's mix: its partitions of every source, its mixer, its passes."""

    def __init__(self, ds: MixedTokenDataset, reader: int, readers: int,
                 layout: list[int]) -> None:
        self.ds, self.reader, self.layout = ds, reader, layout
        self.mine = {n: split_partitions(sorted(s._state["end"]), reader, readers)
                     for n, s in ds.sources.items()}
        self.state = {n: copy.deepcopy(s._state) for n, s in ds.sources.items()}
        self.passes = {n: {p: list(ds._passes[n][p]) for p in self.mine[n]} for n in ds.names}
        size = {n: sum(s._state["end"][p] - s._state["start"][p] for p in self.mine[n])
                for n, s in ds.sources.items()}
        self.present = [n for n in ds.names if size[n] > 0]
        self.mixer = None
        if self.present:
            self.mixer = Mixer({n: ds.weights[n] for n in self.present}, seed=ds.seed,
                               schedule=ds.schedule, on_exhausted=ds.on_exhausted)
            saved = ds._mix["readers"].get(str(reader)) if ds._mix["layout"] == layout else None
            if saved is not None:
                self.mixer.load_state(saved)
        self.open: dict[str, Iterator[dict[str, Any]]] = {}
        self.view: dict[str, dict[str, Any]] = {}

    def _pass(self, n: str) -> int:
        return min(v[0] for v in self.passes[n].values())

    def _start(self, n: str) -> Iterator[dict[str, Any]]:
        """An iterator over this reader's partitions of ``n`` in their current pass."""
        m = self._pass(n)
        st = self.state[n]
        view = copy.deepcopy(st)
        for p in self.mine[n]:
            if self.passes[n][p][0] > m:  # a partition ahead (after a layout change)
                view["cursor"][p] = [view["end"][p], 0]
        if m:  # pass m > 0 of epoch e draws its shuffle (if any) from (e, m)
            view["epoch"] = [st["epoch"], m]
        self.view[n] = view
        sub = copy.copy(self.ds.sources[n])
        sub._state = view
        return iter(sub)

    def _next_pass(self, n: str) -> None:
        m = self._pass(n)
        view, st = self.view[n], self.state[n]
        for p in self.mine[n]:
            v = self.passes[n][p]
            if v[0] == m:
                d, t = view["delivered"][p]
                self.passes[n][p] = [m + 1, v[1] + d, v[2] + t]
                st["cursor"][p] = [st["start"][p], 0]
                st["delivered"][p] = [0, 0]
        st["order"]["next"].pop(str(self.reader), None)

    def _unit(self, n: str) -> dict[str, Any] | None:
        """The next unit of source ``n``, a new pass if its pass ended and the mix goes on,
        or None: the mix ends here."""
        mixer = self.mixer
        assert mixer is not None
        it = self.open.get(n)
        if it is None:
            it = self.open[n] = self._start(n)
        u = next(it, None)
        if u is not None:
            return u
        if mixer.on_exhausted == "stop":
            mixer.stopped_by = n
            return None
        done = {x: self._pass(x) + (1 if x == n else 0) for x in self.present}
        if all(v >= 1 for v in done.values()):
            return None  # every source completed a pass: the mix epoch ends
        self._next_pass(n)
        mixer.new_epoch(n)
        it = self.open[n] = self._start(n)
        u = next(it, None)
        if u is None:
            raise LayoutError(f"mixed feed source {n!r}: a whole pass of reader "
                              f"{self.reader}'s partitions {self.mine[n]} gave no batch (too few "
                              "tokens for one with last_batch='drop'); it cannot repeat: use "
                              "last_batch='pad', a smaller unit, or on_exhausted='stop'")
        return u

    def batches(self) -> Iterator[dict[str, Any]]:
        if self.mixer is None:
            return
        try:
            yield from self._batches()
        finally:
            for it in self.open.values():
                close = getattr(it, "close", None)
                if close is not None:
                    close()

    def _batches(self) -> Iterator[dict[str, Any]]:
        ds, mixer = self.ds, self.mixer
        assert mixer is not None
        key = ds._key()
        while True:
            units: list[tuple[str, dict[str, Any]]] = []
            rows = 0
            last: dict[str, dict[str, Any]] = {}
            while rows < ds.batch_size:
                n = mixer.pick()
                u = self._unit(n)
                if u is None:
                    break
                bs = u["kafka_state"]
                mixer.took(n, None)
                units.append((n, u))
                rows += ds.sources[n].batch_size
                last[n] = {"cursor": bs["cursor"], "next": bs["next"],
                           "delivered": bs.get("delivered", {}),
                           "pass": {str(p): list(self.passes[n][p]) for p in bs["cursor"]}}
            if rows < ds.batch_size and (not units or ds.last_batch == "drop"):
                return
            yield {**_concat(units, ds.batch_size, ds.sources),
                   "kafka_state": {"plan": key, "reader": self.reader, "layout": self.layout,
                                   "mixer": mixer.state(), "sources": last}}
            if rows < ds.batch_size:
                return


def _concat(units: list[tuple[str, dict[str, Any]]], batch_size: int,
            sources: Mapping[str, KafkaTokenDataset]) -> dict[str, Any]:
    """The units' rows as one batch of ``batch_size`` rows (padding rows after them)."""
    keys = [k for k in units[0][1] if k != "kafka_state"]
    names: list[str | None] = [n for n, _ in units for _ in range(sources[n].batch_size)]
    out: dict[str, Any] = {}
    for k in keys:
        parts = [u[k] for _, u in units]
        if k == "cu_seqlens" or torch is None:
            rows = [r for part in parts for r in part]
            out[k] = rows
        else:
            out[k] = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
    pad = batch_size - len(names)
    if pad:
        pad_id = sources[units[-1][0]].pad_id
        for k in keys:
            fill = pad_id if k == "input_ids" else _PAD_FILL.get(k)
            if k == "cu_seqlens":
                out[k] = out[k] + [[0] for _ in range(pad)]
            elif torch is None:
                out[k] = out[k] + [[fill] * len(out[k][0]) for _ in range(pad)]
            else:
                x = out[k]
                out[k] = torch.cat([x, torch.full((pad, x.shape[1]), fill, dtype=x.dtype)], 0)
        names += [None] * pad
    out["source"] = names
    return out


def advance(st: dict[str, Any], passes: dict[int, list[int]], unit: dict[str, Any],
            reader: int, layout: list[int]) -> None:
    """Move one source's state and passes to a unit's, partition by partition, where its
    ``(pass, cursor)`` is further (never back); the reader's round-robin entry with it."""
    for p_s, c in unit["cursor"].items():
        p = int(p_s)
        pas = unit["pass"][str(p_s)]
        d = unit["delivered"].get(p_s, unit["delivered"].get(p, [0, 0]))
        if (pas[0], tuple(c)) > (passes[p][0], tuple(st["cursor"][p])):
            passes[p] = list(pas)
            st["cursor"][p] = list(c)
            st["delivered"][p] = list(d)
        elif pas[0] == passes[p][0] and tuple(d) > tuple(st["delivered"][p]):
            st["delivered"][p] = list(d)
    if st["order"]["layout"] != layout:
        st["order"] = {"layout": list(layout), "next": {}}
    if unit["next"] is not None:  # as the unmixed feed: None (its last batch) keeps it
        st["order"]["next"][str(reader)] = unit["next"]


def check(state: Any, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A mixed feed state validated (and normalised: int partition keys in ``passes``);
    ``config``: refuse a state of another mix config, naming the field."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise LayoutError(f"mixed feed state field 'format': expected {FORMAT!r}, got "
                          f"{state.get('format') if isinstance(state, dict) else state!r}")
    if state.get("version") != VERSION:
        raise LayoutError(f"mixed feed state field 'version': unsupported "
                          f"{state.get('version')!r} (this pyclient reads {VERSION})")
    cfg = state.get("config")
    if config is not None:
        for k, v in config.items():
            got = cfg.get(k) if isinstance(cfg, dict) else None
            if got != v:
                raise LayoutError(f"mixed feed state field 'config.{k}': the state has {got!r}, "
                                  f"this dataset {v!r}; it would continue another mix")
    srcs, passes, mix = state.get("sources"), state.get("passes"), state.get("mix")
    if not isinstance(srcs, dict) or not isinstance(passes, dict) or set(srcs) != set(passes):
        raise LayoutError("mixed feed state fields 'sources' and 'passes': expected mappings "
                          "naming the same sources")
    out_p: dict[str, dict[int, list[int]]] = {}
    for n, per in passes.items():
        if not isinstance(per, dict):
            raise LayoutError(f"mixed feed state field 'passes.{n}': expected a mapping")
        out_p[n] = {}
        for p, v in per.items():
            ok = isinstance(v, (list, tuple)) and len(v) == 3 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
            if not ok or not str(p).isdigit():
                raise LayoutError(f"mixed feed state field 'passes.{n}.{p}': expected [pass, "
                                  f"documents, tokens] >= 0, got {v!r}")
            out_p[n][int(p)] = list(v)
    if not isinstance(mix, dict) or not isinstance(mix.get("readers"), dict):
        raise LayoutError(f"mixed feed state field 'mix': expected {{'layout', 'readers'}}, "
                          f"got {mix!r}")
    return {"config": cfg, "sources": dict(srcs), "passes": out_p,
            "mix": {"layout": mix.get("layout"), "readers": dict(mix["readers"])}}


def merge_mixed_state_dicts(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One mixed state from the states every rank (or worker) saved: per source and
    partition the furthest ``(pass, cursor)``, per reader the mixer furthest on. Loadable
    under any layout."""
    got = [s for s in states if s]
    if not got:
        return {}
    chk = [check(s, got[0].get("config")) for s in got]
    out = copy.deepcopy(got[0])
    for n in chk[0]["sources"]:
        subs = [fs.check(s["sources"][n]) for s in got]
        for s in subs[1:]:
            fs.same_run(subs[0], s, f"mixed feed states (source {n!r})")
        base = copy.deepcopy(subs[0])
        best = dict(chk[0]["passes"][n])
        for c, s in zip(chk, subs):
            for p in base["end"]:
                pas = c["passes"][n].get(p, [0, 0, 0])
                if (pas[0], tuple(s["cursor"][p])) > (best[p][0], tuple(base["cursor"][p])):
                    best[p], base["cursor"][p] = list(pas), list(s["cursor"][p])
                    base["delivered"][p] = list(s["delivered"][p])
        # each reader's round-robin entry from the state whose mixer for it is furthest
        base["order"] = {"layout": None, "next": {}}
        out["sources"][n] = fs.to_json(base)
        out["passes"][n] = {str(p): v for p, v in best.items()}
    layouts = [c["mix"]["layout"] for c in chk if c["mix"]["layout"] is not None]
    layout = layouts[-1] if layouts else None
    readers: dict[str, Any] = {}
    owner: dict[str, int] = {}
    for i, c in enumerate(chk):
        if c["mix"]["layout"] != layout:
            continue
        for g, m in c["mix"]["readers"].items():
            if g not in readers or m.get("step", 0) > readers[g].get("step", 0):
                readers[g], owner[g] = m, i
    out["mix"] = {"layout": layout, "readers": readers}
    for n in chk[0]["sources"]:
        nxt = {}
        for g, i in owner.items():
            o = got[i]["sources"][n].get("order", {})
            if o.get("layout") == layout and g in o.get("next", {}):
                nxt[g] = o["next"][g]
        out["sources"][n]["order"] = {"layout": layout, "next": nxt}
    return out


def from_stateful_dataloader(state: dict[str, Any]) -> dict[str, Any]:
    """The mixed feed state inside a torchdata ``StatefulDataLoader.state_dict()`` (the merge
    of its workers' states)."""
    found: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("format") == FORMAT:
                found.append(x)
                return
            for v in x.values():
                walk(v)
    walk(state)
    if not found:
        raise LayoutError("no pyclient mixed feed state inside this StatefulDataLoader state")
    return merge_mixed_state_dicts(found)
