"""A deterministic weighted interleave of several document sources, resumable exactly.

``Mixer(weights, seed=, schedule=, by=, on_exhausted=)`` decides which source gives the next
document; :func:`mix` runs it over sources and yields each document with the mixer's state
before and after it (the positions :class:`pyclient.packing.Packer` keeps per document).

Schedules (both functions of the state alone, so a restored state continues identically):

- ``"stride"`` (default): the next source is the one furthest behind its share (largest
  deficit, as nginx's smooth weighted round robin): ``argmax(w_i * (n + 1) - taken_i)``,
  counted in documents or, with ``by="tokens"``, ``argmax(w_i * total - tokens_i)``. After
  n documents every source's count is within about one document of ``w_i * n`` (``by="docs"``;
  tested below 1.05), so the proportions hold in every window, not only on average. The
  seed only breaks ties (the order at the start).
- ``"random"``: at step n the source is drawn with probabilities ``w_i`` from a hash of
  ``(seed, n)`` (counter-based, like Megatron-Energon's seeded blend): a different sequence
  per seed, proportions within sampling noise.

A source that runs out: ``on_exhausted="repeat"`` (default) reopens it from its start and
counts an epoch for it; ``"stop"`` ends the mix there (``stopped_by`` names the source).

Sources: ``open(pos)`` returns an iterator of ``(next_pos, document)`` starting at ``pos``
(None: the source's start); ``next_pos`` is JSON-able (an index, an offset).
:func:`sequence_source` makes one from a list. The state (``Mixer.state()``): per source
its position in its current pass, epochs, documents and tokens taken, plus the step count;
a few integers per source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

FORMAT = "pyclient.mix"
VERSION = 1
Source = Callable[[Any], Iterator[tuple[Any, Any]]]
#: (source name, document, mixer state before it, mixer state after it)
Step = tuple[str, Any, dict[str, Any], dict[str, Any]]


class MixError(ValueError):
    """Bad weights or state, or a source that cannot continue."""


def _unit(seed: int, *key: Any) -> float:
    h = hashlib.blake2b(repr((seed,) + key).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0 ** 64


def sequence_source(docs: Sequence[Any]) -> Source:
    """A source over a list: positions are indexes."""
    def open_at(pos: Any) -> Iterator[tuple[Any, Any]]:
        for i in range(pos or 0, len(docs)):
            yield i + 1, docs[i]
    return open_at


def topic_source(bootstrap_servers: str | None, topic: str,
                 decode: Callable[[list[Any]], list[Any]], *, backend: str | None = None,
                 settings: Mapping[str, Any] | None = None, chunk: int = 64) -> Source:
    """A source over a whole Kafka topic, read with :class:`pyclient.consumer.FeedConsumer`
    (its chunked round-robin over the partitions). A pass reads from each partition's log
    start to its end offset, both recorded when the pass opens; a position is
    ``{"offset": {p: next offset}, "end": {p: end}, "next": partition}``, JSON-able, so a
    restored position continues the same pass with the same records in the same order.
    ``decode(records)`` turns consumed records into documents (token ids). Records are taken
    one at a time (exact positions; not measured for speed)."""
    from .backends import make_consumer
    from .config import CONSUMER_DEFAULTS, merged
    from .consumer import FeedConsumer

    def cfg() -> dict[str, Any]:
        c = merged(CONSUMER_DEFAULTS, backend, bootstrap_servers, dict(settings or {}))
        c["group.id"] = f"pyclient-mix-{topic}"  # assign only: never joined nor committed
        return c

    def open_at(pos: Any) -> Iterator[tuple[Any, Any]]:
        if pos is None:
            c = make_consumer(cfg(), backend)
            try:
                marks = {p: c.watermarks(topic, p) for p in c.partitions_for(topic)}
            finally:
                c.close()
            pos = {"offset": {str(p): lo for p, (lo, _) in marks.items()},
                   "end": {str(p): hi for p, (_, hi) in marks.items()}, "next": None}
        offs = {int(p): int(o) for p, o in pos["offset"].items()}
        end = {int(p): int(o) for p, o in pos["end"].items()}
        todo = [p for p in sorted(end) if offs[p] < end[p]]
        if not todo:
            return
        cons = FeedConsumer(bootstrap_servers, topic, settings=cfg(), backend=backend,
                            partitions=todo, start={p: offs[p] for p in todo},
                            end={p: end[p] for p in todo}, stop_at_end=True, chunk=chunk)
        try:
            cons.next_partition = pos["next"]
            while True:
                recs = cons.consume(1, timeout=1.0)
                if not recs:
                    if cons.at_end():
                        return
                    continue
                doc = decode(recs)[0]
                offs.update(cons.positions)
                yield ({"offset": {str(p): o for p, o in offs.items()},
                        "end": {str(p): o for p, o in end.items()},
                        "next": cons.next_partition}, doc)
        finally:
            cons.close()
    return open_at


class Mixer:
    """The schedule and its state; see the module docstring."""

    def __init__(self, weights: Mapping[str, float], *, seed: int = 0,
                 schedule: Literal["stride", "random"] = "stride",
                 by: Literal["docs", "tokens"] = "docs",
                 on_exhausted: Literal["repeat", "stop"] = "repeat") -> None:
        if not weights:
            raise MixError("mixing needs at least one source with a weight")
        for name, w in weights.items():
            if not isinstance(name, str) or isinstance(w, bool) or not isinstance(w, (int, float)) \
                    or not w > 0 or w != w or w == float("inf"):
                raise MixError(f"source {name!r}: weight must be a finite number > 0, got {w!r} "
                               "(leave a source out instead of weighting it 0)")
        if schedule not in ("stride", "random") or by not in ("docs", "tokens") \
                or on_exhausted not in ("repeat", "stop"):
            raise MixError(f"schedule must be 'stride' or 'random' (got {schedule!r}), by 'docs' "
                           f"or 'tokens' ({by!r}), on_exhausted 'repeat' or 'stop' "
                           f"({on_exhausted!r})")
        if schedule == "random" and by == "tokens":
            raise MixError("by='tokens' needs schedule='stride' (a random draw cannot follow "
                           "token counts)")
        total = float(sum(weights.values()))
        self.names = sorted(weights)
        self.weights = {n: weights[n] / total for n in self.names}
        self.seed, self.schedule, self.by, self.on_exhausted = seed, schedule, by, on_exhausted
        self._phase = {n: _unit(seed, "phase", n) for n in self.names}
        self._cum: list[tuple[float, str]] = []
        acc = 0.0
        for n in self.names:
            acc += self.weights[n]
            self._cum.append((acc, n))
        self.step = 0
        self.pos: dict[str, Any] = {n: None for n in self.names}
        self.epochs = {n: 0 for n in self.names}
        self.docs = {n: 0 for n in self.names}
        self.tokens = {n: 0 for n in self.names}
        self.stopped_by: str | None = None

    def pick(self) -> str:
        """The source of the next document (the state does not move)."""
        if self.schedule == "random":
            u = _unit(self.seed, self.step)
            for acc, n in self._cum:
                if u < acc:
                    return n
            return self._cum[-1][1]
        if self.by == "docs":
            t, count = self.step + 1, self.docs
        else:
            t, count = sum(self.tokens.values()), self.tokens
        return max(self.names, key=lambda n: (self.weights[n] * t - count[n], self._phase[n]))

    def took(self, name: str, next_pos: Any, tokens: int = 0) -> None:
        self.step += 1
        self.pos[name] = next_pos
        self.docs[name] += 1
        self.tokens[name] += tokens

    def new_epoch(self, name: str) -> None:
        self.pos[name] = None
        self.epochs[name] += 1

    # -- state -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "seed": self.seed, "schedule": self.schedule,
                "by": self.by, "on_exhausted": self.on_exhausted}

    def state(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **self.config(), "step": self.step,
                "stopped_by": self.stopped_by,
                "sources": {n: {"pos": self.pos[n], "epochs": self.epochs[n],
                                "docs": self.docs[n], "tokens": self.tokens[n]}
                            for n in self.names}}

    def load_state(self, state: Any) -> None:
        if not isinstance(state, dict) or state.get("format") != FORMAT \
                or state.get("version") != VERSION:
            raise MixError(f"mix state: expected format {FORMAT!r} version {VERSION}, got "
                           f"{state.get('format') if isinstance(state, dict) else state!r}")
        for k, v in self.config().items():
            got = state.get(k)
            if k == "weights" and isinstance(got, dict) and set(got) == set(v):
                if all(abs(float(got[n]) - v[n]) < 1e-12 for n in v):
                    continue
            if got != v:
                raise MixError(f"mix state field {k!r}: the state has {got!r}, this mixer "
                               f"{v!r}; it would continue another sequence")
        src = state.get("sources")
        if not isinstance(src, dict) or set(src) != set(self.names):
            raise MixError(f"mix state field 'sources': expected {self.names}, got "
                           f"{sorted(src) if isinstance(src, dict) else src!r}")
        step = state.get("step")
        for n in self.names:
            s = src[n]
            if not isinstance(s, dict) or not all(isinstance(s.get(k), int) and s[k] >= 0
                                                  for k in ("epochs", "docs", "tokens")):
                raise MixError(f"mix state field 'sources.{n}': expected {{pos, epochs, docs, "
                               f"tokens}} with counts >= 0, got {s!r}")
        if not isinstance(step, int) or step != sum(src[n]["docs"] for n in self.names):
            raise MixError(f"mix state field 'step': {step!r} is not the sum of the sources' "
                           "documents")
        self.step = step
        self.stopped_by = state.get("stopped_by")
        for n in self.names:
            self.pos[n] = src[n]["pos"]
            self.epochs[n] = src[n]["epochs"]
            self.docs[n] = src[n]["docs"]
            self.tokens[n] = src[n]["tokens"]

    def report(self) -> dict[str, dict[str, Any]]:
        """Per source: weight, documents, tokens, realised share (of documents, or of
        tokens with ``by="tokens"``) and epochs started after the first."""
        count = self.docs if self.by == "docs" else self.tokens
        total = sum(count.values()) or 1
        return {n: {"weight": self.weights[n], "docs": self.docs[n], "tokens": self.tokens[n],
                    "share": count[n] / total, "epochs": self.epochs[n]} for n in self.names}


def mix(sources: Mapping[str, Source], mixer: Mixer,
        size: Callable[[Any], int] = len) -> Iterator[Step]:
    """Yield ``(source, document, state before, state after)`` in the mixer's order until
    a source runs out under ``on_exhausted="stop"`` (forever under ``"repeat"``).
    ``size(document)`` counts its tokens (``len`` by default)."""
    if set(sources) != set(mixer.names):
        raise MixError(f"sources {sorted(sources)} do not match the weights {mixer.names}")
    if mixer.stopped_by is not None:
        return
    open_it: dict[str, Iterator[tuple[Any, Any]]] = {}
    try:
        yield from _mix(sources, mixer, size, open_it)
    finally:  # close the sources' readers (Kafka consumers) with the mix
        for it in open_it.values():
            close = getattr(it, "close", None)
            if close is not None:
                close()


def _mix(sources: Mapping[str, Source], mixer: Mixer, size: Callable[[Any], int],
         open_it: dict[str, Iterator[tuple[Any, Any]]]) -> Iterator[Step]:
    while True:
        before = mixer.state()
        name = mixer.pick()
        it = open_it.get(name)
        if it is None:
            it = open_it[name] = iter(sources[name](mixer.pos[name]))
        got = next(it, None)
        if got is None:
            if mixer.on_exhausted == "stop":
                mixer.stopped_by = name
                return
            mixer.new_epoch(name)
            it = open_it[name] = iter(sources[name](None))
            got = next(it, None)
            if got is None:
                raise MixError(f"source {name!r} has no documents: it cannot repeat (remove it "
                               "or use on_exhausted='stop')")
        nxt, doc = got
        mixer.took(name, nxt, size(doc))
        yield name, doc, before, mixer.state()
