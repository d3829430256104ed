"""Packing token documents into ``[batch_size, seq_len]`` rows with what attention needs.

Each document becomes ``[bos] + ids + [eos]`` (BOS optional, EOS always: from ``eos_id=``
or the tokenizer's ``eos_id``/``eos_token_id``; neither is an error naming the tokenizer).
``max_doc_len`` bounds that sequence: ``"truncate"`` keeps its first ``max_doc_len - 1``
tokens and the EOS (the cut tokens are counted), ``"split"`` cuts it into pieces of
``max_doc_len`` tokens, each its own attention segment. The sequences are concatenated and
cut into rows of ``seq_len``; a row holds segments (a document, a piece, or the part of one
that continues from the previous row). Per row:

- ``input_ids``; ``doc_ids``: the segment's index in the row (0, 1, ...; -1 on padding);
- ``position_ids``: 0, 1, ... restarting at every segment, so also at the row start for a
  document continued from the previous row (Megatron's ``reset_position_ids`` convention);
- ``cu_seqlens``: ``[0, l1, l1+l2, ..., valid]`` over the row's real tokens (padding, when
  there is any, lies after the last entry); :func:`varlen` flattens a batch for varlen
  attention kernels;
- ``attention_mask``: 1 on real tokens, 0 on padding;
- ``labels`` when asked: ``"all"``: the input ids (the model shifts them, Hugging Face
  convention), -100 on padding; ``"mask_boundaries"``: also -100 on the first token of every
  segment, so that no token is predicted from another document.

Last batch (``finish()``): ``"drop"`` counts the leftover tokens and drops them; ``"pad"``
returns one more batch filled with ``pad_id`` (default EOS), masked.

State: positions, not tokens. Each pushed document has a ``source`` and a ``pos`` (where
re-reading the source yields this document first: an offset, an index, a mixer state) and
``next_pos`` (where the source continues after it; ``pos + 1`` by default for integers).
Per source, the state holds ``[pos, skip]`` of its first document not fully in a returned
batch (``skip``: its tokens already returned), else the last document's ``next_pos`` --
one small entry per source whatever the document sizes, the layout of
:mod:`pyclient.feed_state`'s cursors. Resuming: ``load_state`` on a new packer, then push
each source's documents again from its ``pos``; the packer drops ``skip`` tokens of the
first and returns the same batches as the uninterrupted run (one source; for several
sources the caller must push them in the same interleave, as the feed and
:mod:`pyclient.mixing` do). Memory: the tokens pushed and not yet returned (at most one
batch plus the documents pushed before the next ``pop``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

FORMAT = "pyclient.packing"
VERSION = 1
IGNORE = -100
#: Settings that must agree between a state and the packer that loads it.
SPEC_FIELDS = ("seq_len", "batch_size", "bos_id", "eos_id", "max_doc_len", "long_docs")
Batch = dict[str, Any]


class PackingError(ValueError):
    """A packing setting, a document or a saved state that does not fit."""


def resolve_eos(tokenizer: Any, eos_id: int | None) -> int:
    """``eos_id`` if given, else the tokenizer's ``eos_id`` / ``eos_token_id``."""
    if eos_id is not None:
        if isinstance(eos_id, bool) or not isinstance(eos_id, int) or eos_id < 0:
            raise PackingError(f"eos_id must be a token id >= 0, got {eos_id!r}")
        return eos_id
    for name in ("eos_id", "eos_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    what = "no tokenizer was given" if tokenizer is None else \
        f"tokenizer {type(tokenizer).__name__} has no eos_id / eos_token_id"
    raise PackingError(f"packing needs an end-of-document id and {what}: pass eos_id= "
                       "(documents would otherwise run together)")


class _Doc:
    __slots__ = ("source", "pos", "toks", "at", "cut")

    def __init__(self, source: Any, pos: Any, toks: list[int], at: int, cut: int) -> None:
        self.source, self.pos, self.toks, self.at, self.cut = source, pos, toks, at, cut


class Packer:
    """Push documents (token id lists), ``pop()`` full batches, ``finish()`` at the end."""

    def __init__(self, seq_len: int, *, batch_size: int = 1, eos_id: int | None = None,
                 tokenizer: Any = None, bos_id: int | None = None, pad_id: int | None = None,
                 max_doc_len: int | None = None,
                 long_docs: Literal["split", "truncate"] = "split",
                 labels: Literal["all", "mask_boundaries"] | None = None,
                 last_batch: Literal["drop", "pad"] = "drop") -> None:
        if seq_len < 1 or batch_size < 1:
            raise PackingError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        if long_docs not in ("split", "truncate"):
            raise PackingError(f"long_docs must be 'split' or 'truncate', got {long_docs!r}")
        if labels not in (None, "all", "mask_boundaries"):
            raise PackingError(f"labels must be None, 'all' or 'mask_boundaries', got {labels!r}")
        if last_batch not in ("drop", "pad"):
            raise PackingError(f"last_batch must be 'drop' or 'pad', got {last_batch!r}")
        self.eos_id = resolve_eos(tokenizer, eos_id)
        if max_doc_len is not None and max_doc_len < (2 if bos_id is not None else 1):
            raise PackingError(f"max_doc_len {max_doc_len} leaves no room for BOS/EOS")
        self.seq_len, self.batch_size, self.bos_id = seq_len, batch_size, bos_id
        self.pad_id = self.eos_id if pad_id is None else pad_id
        self.max_doc_len, self.long_docs = max_doc_len, long_docs
        self.labels, self.last_batch = labels, last_batch
        self._docs: deque[_Doc] = deque()
        self._ar = list(range(seq_len))      # position ids, sliced (no int objects per row)
        self._avail = 0                      # tokens pushed and not yet in a batch
        self._next: dict[Any, Any] = {}      # source -> next_pos of its last pushed document
        self._resume: dict[Any, list[Any]] = {}  # source -> [pos, skip] awaiting its first push
        self._src: dict[Any, list[int]] = {}     # source -> [documents done, tokens returned]
        self.counts = {"docs": 0, "tokens": 0, "rows": 0, "batches": 0, "truncated_tokens": 0,
                       "dropped_tokens": 0, "pad_tokens": 0}

    # -- input -------------------------------------------------------------------------
    def push(self, ids: Sequence[int], source: Any = 0, pos: Any = None,
             next_pos: Any = None) -> None:
        """Add one document. ``pos`` defaults to the source's next position (0, 1, ... or
        where a loaded state left it); ``next_pos`` to ``pos + 1`` for an integer ``pos``."""
        if pos is None:
            pos = self._next.get(source, 0)
        if next_pos is None:
            if isinstance(pos, bool) or not isinstance(pos, int):
                raise PackingError(f"source {source!r}: document at {pos!r} needs next_pos= "
                                   "(where the source continues after it)")
            next_pos = pos + 1
        toks = list(ids)
        if self.bos_id is not None:
            toks.insert(0, self.bos_id)
        toks.append(self.eos_id)
        m, cut = self.max_doc_len, 0
        if m is not None and len(toks) > m and self.long_docs == "truncate":
            cut = len(toks) - m  # counted when the document is done (same count on resume)
            toks = toks[:m - 1] + [self.eos_id]
        at = 0
        if source in self._resume:
            rpos, skip = self._resume.pop(source)
            if pos != rpos or skip >= len(toks):
                raise PackingError(
                    f"source {source!r}: the state resumes at document {rpos!r} after {skip} of "
                    f"its tokens, but the first document pushed is {pos!r} with {len(toks)} "
                    "tokens (another position, tokenizer or packing setting than the saved run)")
            at = skip
        self._docs.append(_Doc(source, pos, toks, at, cut))
        self._avail += len(toks) - at
        self._next[source] = next_pos
        self._src.setdefault(source, [0, 0])

    # -- output ------------------------------------------------------------------------
    def pop(self) -> Batch | None:
        """The next full batch, or None while fewer than ``batch_size * seq_len`` tokens
        are pushed and not returned."""
        if self._avail < self.seq_len * self.batch_size:
            return None
        return self._batch()

    def finish(self) -> Batch | None:
        """End of the input: under ``"pad"`` the leftover as one padded batch (None if there
        is none); under ``"drop"`` the leftover is counted in ``dropped_tokens`` and dropped."""
        if not self._avail:
            return None
        if self.last_batch == "pad":
            return self._batch()
        self.counts["dropped_tokens"] += self._avail
        self.counts["truncated_tokens"] += sum(d.cut for d in self._docs)
        self._docs.clear()
        self._avail = 0
        return None

    def _batch(self) -> Batch:
        out: Batch = {k: [] for k in ("input_ids", "doc_ids", "position_ids", "cu_seqlens",
                                      "attention_mask")}
        if self.labels:
            out["labels"] = []
        for _ in range(self.batch_size):
            for k, v in self._row().items():
                out[k].append(v)
        self.counts["batches"] += 1
        return out

    def _row(self) -> dict[str, list[int]]:
        S = self.seq_len
        ids: list[int] = []
        doc: list[int] = []
        pos: list[int] = []
        cu = [0]
        ar = self._ar
        seg = 0
        piece = self.max_doc_len if self.long_docs == "split" else None
        while len(ids) < S and self._docs:
            d = self._docs[0]
            end = len(d.toks)
            if piece is not None:
                end = min(end, (d.at // piece + 1) * piece)
            n = min(S - len(ids), end - d.at)
            ids += d.toks[d.at:d.at + n]
            doc += [seg] * n
            pos += ar[:n]
            cu.append(cu[-1] + n)
            d.at += n
            seg += 1
            self._avail -= n
            st = self._src[d.source]
            st[1] += n
            if d.at == len(d.toks):
                self._docs.popleft()
                st[0] += 1
                self.counts["docs"] += 1
                self.counts["truncated_tokens"] += d.cut
        valid = len(ids)
        pad = S - valid
        self.counts["tokens"] += valid
        self.counts["pad_tokens"] += pad
        self.counts["rows"] += 1
        if pad:
            ids += [self.pad_id] * pad
            doc += [-1] * pad
            pos += [0] * pad
        row = {"input_ids": ids, "doc_ids": doc, "position_ids": pos, "cu_seqlens": cu,
               "attention_mask": [1] * valid + [0] * pad}
        if self.labels:
            lab = ids[:valid] + [IGNORE] * pad
            if self.labels == "mask_boundaries":
                for i in cu[:-1]:
                    lab[i] = IGNORE
            row["labels"] = lab
        return row

    # -- state -------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SPEC_FIELDS}

    def state(self) -> dict[str, Any]:
        """Where every source resumes, plus counters: plain JSON-able data, no tokens."""
        first: dict[Any, _Doc] = {}
        for d in self._docs:
            first.setdefault(d.source, d)
        cursor = []
        for s, (ndocs, ntok) in self._src.items():
            d = first.get(s)
            if d is not None:
                p, k = d.pos, d.at
            else:
                p, k = self._resume.get(s, (self._next[s], 0))
            cursor.append({"source": s, "pos": p, "skip": k, "docs": ndocs, "tokens": ntok})
        return {"format": FORMAT, "version": VERSION, "spec": self.spec(), "cursor": cursor,
                "counts": dict(self.counts)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (on a packer that holds no documents yet)."""
        if self._docs or self._src:
            raise PackingError("load_state: this packer has documents already; use a new one")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise PackingError(f"packing state: expected a dict with format {FORMAT!r}, got "
                               f"{got!r}")
        if state.get("version") != VERSION:
            raise PackingError(f"packing state field 'version': unsupported "
                               f"{state.get('version')!r} (this pyclient reads {VERSION})")
        spec = state.get("spec")
        if not isinstance(spec, dict):
            raise PackingError(f"packing state field 'spec': expected a dict, got {spec!r}")
        for f in SPEC_FIELDS:
            if spec.get(f) != getattr(self, f):
                raise PackingError(f"packing state field 'spec.{f}': the state has "
                                   f"{spec.get(f)!r}, this packer {getattr(self, f)!r}; "
                                   "resuming would cut other rows")
        cur = state.get("cursor")
        if not isinstance(cur, list):
            raise PackingError(f"packing state field 'cursor': expected a list, got {cur!r}")
        for i, c in enumerate(cur):
            ok = isinstance(c, dict) and all(isinstance(c.get(k), int) and c[k] >= 0
                                             for k in ("skip", "docs", "tokens"))
            if not ok or "source" not in c or "pos" not in c:
                raise PackingError(f"packing state field 'cursor[{i}]': expected {{source, pos, "
                                   f"skip, docs, tokens}} with counts >= 0, got {c!r}")
        counts = state.get("counts")
        if not isinstance(counts, dict) or set(counts) != set(self.counts):
            raise PackingError(f"packing state field 'counts': expected keys "
                               f"{sorted(self.counts)}, got {counts!r}")
        for c in cur:
            self._resume[c["source"]] = [c["pos"], c["skip"]]
            self._next[c["source"]] = c["pos"]
            self._src[c["source"]] = [c["docs"], c["tokens"]]
        self.counts = {k: int(v) for k, v in counts.items()}

    def resume_at(self, source: Any, pos: Any, skip: int) -> None:
        """Expect ``source``'s next document at ``pos`` and drop its first ``skip`` tokens: a
        cursor the caller keeps itself (the training feed's per-partition ``[offset, skip]``)."""
        if any(d.source == source for d in self._docs):
            raise PackingError(f"resume_at: source {source!r} has documents in the packer already")
        self._resume[source] = [pos, skip]
        self._next[source] = pos

    def pending(self) -> dict[Any, list[Any]]:
        """Per source with a document not fully returned: ``[pos, skip]`` of its first one."""
        out: dict[Any, list[Any]] = {}
        for d in self._docs:
            if d.source not in out:
                out[d.source] = [d.pos, d.at]
        return out

    def next_source(self) -> Any:
        """The source of the first document not fully returned (None when there is none)."""
        return self._docs[0].source if self._docs else None

    def source_counts(self) -> dict[Any, dict[str, int]]:
        """Per source: documents finished and tokens returned in batches since the run
        began (carried through ``load_state``)."""
        return {s: {"docs": d, "tokens": t} for s, (d, t) in self._src.items()}


def pack_documents(packer: Packer, docs: Iterable[Sequence[int]], source: Any = 0,
                   start: int | None = None) -> Iterator[tuple[Batch, dict[str, Any]]]:
    """Push ``docs`` (one source, positions ``start, start+1, ...``; default where a loaded
    state resumes, else 0) and yield ``(batch, state after it)``, the last batch included."""
    p = packer._next.get(source, 0) if start is None else start
    for ids in docs:
        packer.push(ids, source, p)
        p += 1
        while (b := packer.pop()) is not None:
            yield b, packer.state()
    if (b := packer.finish()) is not None:
        yield b, packer.state()


def pack_feed(packer: Packer, cons: Any, decode: Callable[[list[Any]], list[list[int]]],
              partitions: list[int], want: int = 64,
              ) -> Iterator[tuple[Batch | None, dict[int, list[int]], Any]]:
    """Pack the records of a :class:`pyclient.consumer.FeedConsumer` (``stop_at_end``,
    started at every partition's cursor; ``decode(records)`` gives their token ids). Yields
    ``(batch, cursors, next partition)`` after every batch -- cursors per partition
    ``[offset, skip]`` as in :mod:`pyclient.feed_state` -- and ``(None, cursors, None)`` at
    the end. Resume: a consumer started at the cursors' offsets with ``next_partition``, a
    new packer with ``resume_at(p, offset, skip)`` for every ``skip > 0``."""
    def cursors() -> dict[int, list[int]]:
        pend = packer.pending()
        return {p: list(pend[p]) if p in pend else [cons.positions[p], 0] for p in partitions}

    while True:
        b = packer.pop()
        if b is not None:
            nxt = packer.next_source()
            yield b, cursors(), cons.next_partition if nxt is None else nxt
            continue
        recs = cons.consume(want, timeout=1.0)
        if not recs:
            if not cons.at_end():
                continue
            b = packer.finish()
            if b is not None:
                yield b, cursors(), None
            yield None, cursors(), None
            return
        for r, ids in zip(recs, decode(recs)):
            packer.push(ids, source=r.partition, pos=r.offset)


def varlen(batch: Batch) -> tuple[list[int], int]:
    """``(cu_seqlens, max_seqlen)`` of the whole batch flattened to one sequence of
    ``batch_size * seq_len`` tokens (flash-attention's varlen form); a row's padding is
    one more segment, masked by ``attention_mask``."""
    out = [0]
    for row, ids in zip(batch["cu_seqlens"], batch["input_ids"]):
        base = out[-1]
        out += [base + x for x in row[1:]]
        if row[-1] < len(ids):
            out.append(base + len(ids))
    return out, max(b - a for a, b in zip(out, out[1:]))
