"""The training feed's resume state: plain JSON-able data, offsets and positions only.

A state describes one epoch of one topic and is the same whatever the layout (ranks x
DataLoader workers) that wrote it:

- ``start`` / ``end``: partition -> first offset and end offset of the epoch, recorded once
  when the epoch was planned (so retention or late writes cannot shift its content);
- ``cursor``: partition -> ``[offset, skip]``: every record of the partition below
  ``offset`` was delivered in a taken batch, and so were the first ``skip`` tokens of the
  record at ``offset`` (a document split between two batches). Resuming re-reads that record
  and drops ``skip`` tokens: the state holds no tokens, so its size does not depend on the
  documents (a few dozen bytes per partition);
- ``shuffle``: ``null``, or ``{"seed": S, "block": B}`` for a shuffled epoch; the cursors
  then count records in shuffled order (:mod:`pyclient.feed_shuffle`'s virtual offsets,
  the same range and rules). States written before this field read as ``null``;
- ``packing``: ``null``, or the :class:`pyclient.packing.Packer` options of a packed feed
  (``bos_id``, ``max_doc_len``, ``long_docs``, ``labels``); ``skip`` then counts the
  packer's tokens of the record (BOS included, truncation applied);
- ``delivered``: partition -> ``[documents, tokens]`` of the epoch in taken batches (a
  document counts once its last token is in one; tokens include EOS, never padding); like
  the cursors they only grow and one reader writes each partition, so merging takes the
  furthest. States written before this field read as zeros;
- ``order``: the layout ``[world_size, num_workers]`` and reader -> partition next in its
  round-robin, used only to continue the same order under the same layout.

Cursors only move forward within an epoch and each partition has one reader, so the merge of
several states (ranks, workers, or a state and a batch's) is the furthest cursor of each
partition: a reader that never yielded simply leaves its partitions at the epoch start.
"""

from __future__ import annotations

from typing import Any

FORMAT = "pyclient.feed"
VERSION = 2
#: Fields that must agree for two states to be merged or for a state to be loaded.
RUN_FIELDS = ("topic", "topic_id", "seq_len", "batch_size", "chunk", "shuffle", "packing",
              "epoch", "start", "end")
#: The Packer options a packed feed records (pyclient.packing), with their defaults.
PACKING = {"bos_id": None, "max_doc_len": None, "long_docs": "split", "labels": None}


class LayoutError(ValueError):
    """A saved state is malformed or does not fit the current topic, layout or settings."""


def _int(v: Any, field: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise LayoutError(f"feed state field {field!r}: expected an integer >= {lo}, got {v!r}")
    return v


def _pmap(v: Any, field: str) -> dict[int, Any]:
    if not isinstance(v, dict):
        raise LayoutError(f"feed state field {field!r}: expected a mapping partition -> value, "
                          f"got {type(v).__name__}")
    out: dict[int, Any] = {}
    for k, x in v.items():
        try:
            out[int(k)] = x
        except (TypeError, ValueError):
            raise LayoutError(f"feed state field {field!r}: partition key {k!r} is not an "
                              "integer") from None
    return out


def new_state(topic: str, topic_id: str | None, seq_len: int, batch_size: int, chunk: int,
              epoch: int, start: dict[int, int], end: dict[int, int],
              shuffle: dict[str, int] | None = None,
              packing: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "topic": topic, "topic_id": topic_id,
            "seq_len": seq_len, "batch_size": batch_size, "chunk": chunk,
            "shuffle": None if shuffle is None else dict(shuffle),
            "packing": None if packing is None else dict(packing), "epoch": epoch,
            "start": dict(start), "end": dict(end),
            "cursor": {p: [o, 0] for p, o in start.items()},
            "delivered": {p: [0, 0] for p in start},
            "order": {"layout": None, "next": {}}, "skipped_records": 0}


def check(state: Any) -> dict[str, Any]:
    """Validate a state (from JSON or torch.save) and return it normalised (int partition
    keys). Raises LayoutError naming the first bad field."""
    if not isinstance(state, dict):
        raise LayoutError(f"feed state: expected a dict, got {type(state).__name__}")
    if state.get("format") != FORMAT:
        raise LayoutError(f"feed state field 'format': expected {FORMAT!r}, got "
                          f"{state.get('format')!r} (not a pyclient training-feed state)")
    if state.get("version") != VERSION:
        raise LayoutError(f"feed state field 'version': unsupported {state.get('version')!r} "
                          f"(this pyclient reads version {VERSION})")
    for f in ("topic",):
        if not isinstance(state.get(f), str):
            raise LayoutError(f"feed state field {f!r}: expected a string, got {state.get(f)!r}")
    tid = state.get("topic_id")
    if tid is not None and not isinstance(tid, str):
        raise LayoutError(f"feed state field 'topic_id': expected a string or null, got {tid!r}")
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "topic": state["topic"],
                           "topic_id": tid}
    for f in ("seq_len", "batch_size", "chunk"):
        out[f] = _int(state.get(f), f, 1)
    out["shuffle"] = _shuffle(state.get("shuffle"))
    pk = state.get("packing")
    try:
        out["packing"] = None if pk is None else packing_options(pk)
    except ValueError as e:
        raise LayoutError(f"feed state field 'packing': {e}") from None
    for f in ("epoch", "skipped_records"):
        out[f] = _int(state.get(f), f)
    out["start"] = {p: _int(o, f"start.{p}") for p, o in _pmap(state.get("start"), "start").items()}
    out["end"] = {p: _int(o, f"end.{p}") for p, o in _pmap(state.get("end"), "end").items()}
    if set(out["start"]) != set(out["end"]):
        raise LayoutError("feed state field 'start' and 'end': they name different partitions")
    cur: dict[int, list[int]] = {}
    for p, c in _pmap(state.get("cursor"), "cursor").items():
        f = f"cursor.{p}"
        if not isinstance(c, (list, tuple)) or len(c) != 2:
            raise LayoutError(f"feed state field {f!r}: expected [offset, skip], got {c!r}")
        if p not in out["end"]:
            raise LayoutError(f"feed state field {f!r}: partition {p} is not in the epoch's "
                              "'end' offsets")
        o, s = _int(c[0], f + "[0]"), _int(c[1], f + "[1]")
        if not out["start"][p] <= o <= out["end"][p] or (s and o == out["end"][p]):
            raise LayoutError(f"feed state field {f!r}: [{o}, {s}] lies outside the epoch's "
                              f"range [{out['start'][p]}, {out['end'][p]}) of partition {p}")
        cur[p] = [o, s]
    for p, o in out["start"].items():
        cur.setdefault(p, [o, 0])
    out["cursor"] = cur
    got: dict[int, list[int]] = {}
    for p, c in _pmap(state.get("delivered", {}), "delivered").items():
        f = f"delivered.{p}"
        if not isinstance(c, (list, tuple)) or len(c) != 2 or p not in out["end"]:
            raise LayoutError(f"feed state field {f!r}: expected [documents, tokens] of a "
                              f"partition of the epoch, got {c!r}")
        got[p] = [_int(c[0], f + "[0]"), _int(c[1], f + "[1]")]
    out["delivered"] = {p: got.get(p, [0, 0]) for p in out["end"]}
    order = state.get("order")
    if not isinstance(order, dict) or not isinstance(order.get("next", {}), dict):
        raise LayoutError("feed state field 'order': expected {'layout': [W, K] | null, "
                          f"'next': {{reader: partition}}}}, got {order!r}")
    lay = order.get("layout")
    if lay is not None and (not isinstance(lay, (list, tuple)) or len(lay) != 2):
        raise LayoutError(f"feed state field 'order.layout': expected [world_size, num_workers],"
                          f" got {lay!r}")
    out["order"] = {"layout": None if lay is None else [_int(x, "order.layout", 1) for x in lay],
                    "next": {str(g): _int(p, f"order.next.{g}")
                             for g, p in order.get("next", {}).items()}}
    return out


def _shuffle(v: Any) -> dict[str, int] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or set(v) != {"seed", "block"}:
        raise LayoutError(f"feed state field 'shuffle': expected null or {{'seed': S, "
                          f"'block': B}}, got {v!r}")
    return {"seed": _int(v["seed"], "shuffle.seed"), "block": _int(v["block"], "shuffle.block", 1)}


def packing_options(v: Any) -> dict[str, Any]:
    """Packer options with their defaults filled in; unknown keys or bad values refused."""
    if not isinstance(v, dict) or set(v) - set(PACKING):
        raise ValueError(f"packing options: expected a dict with keys from {sorted(PACKING)}, "
                         f"got {v!r}")
    out = {**PACKING, **v}
    for k in ("bos_id", "max_doc_len"):
        x = out[k]
        if x is not None and (isinstance(x, bool) or not isinstance(x, int) or x < 0):
            raise ValueError(f"packing option {k!r}: expected None or an integer >= 0, got {x!r}")
    if out["long_docs"] not in ("split", "truncate"):
        raise ValueError(f"packing option 'long_docs': 'split' or 'truncate', got "
                         f"{out['long_docs']!r}")
    if out["labels"] not in (None, "all", "mask_boundaries"):
        raise ValueError(f"packing option 'labels': None, 'all' or 'mask_boundaries', got "
                         f"{out['labels']!r}")
    return out


def complete(state: dict[str, Any]) -> bool:
    """True when every partition's cursor is at the epoch's end."""
    return all(state["cursor"][p][0] >= e for p, e in state["end"].items())


def same_run(a: dict[str, Any], b: dict[str, Any], what: str = "states") -> None:
    for f in RUN_FIELDS:
        if a[f] != b[f]:
            raise LayoutError(f"{what} differ in field {f!r} ({_short(a[f])} vs {_short(b[f])}): "
                              "they come from different runs or epochs")


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def advance(state: dict[str, Any], cursors: dict[int, list[int]], layout: list[int] | None,
            nxt: dict[str, int], delivered: dict[int, list[int]] | None = None) -> None:
    """Move ``state``'s cursors and delivered counts forward (never back) and record the
    order."""
    cur = state["cursor"]
    for p, c in cursors.items():
        if tuple(c) > tuple(cur[p]):
            cur[p] = list(c)
    got = state["delivered"]
    for p, c in (delivered or {}).items():
        if tuple(c) > tuple(got[p]):
            got[p] = list(c)
    if layout is not None:
        if state["order"]["layout"] != layout:
            state["order"] = {"layout": list(layout), "next": {}}
        state["order"]["next"].update(nxt)


def merge(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One state from the states of every rank (or worker): each partition's furthest
    cursor. Empty states are ignored; states of different runs or epochs are refused."""
    got = [check(s) for s in states if s]
    if not got:
        return {}
    out = check(got[0])
    for s in got[1:]:
        same_run(out, s)
        advance(out, s["cursor"], None, {}, s["delivered"])
        out["skipped_records"] = max(out["skipped_records"], s["skipped_records"])
    # The order: a state that never yielded knows none; every state carries every reader's
    # entry as it was when that process last saw it, so a reader's entry comes from the
    # state in which that reader's partitions are furthest (its own, not a stale copy).
    layout = next((s["order"]["layout"] for s in got if s["order"]["layout"] is not None), None)
    nxt: dict[str, int] = {}
    if layout is not None:
        parts = sorted(out["end"])
        readers = layout[0] * layout[1]
        best: dict[str, tuple[Any, ...]] = {}
        for s in got:
            if s["order"]["layout"] != layout:
                continue
            for g, p in s["order"]["next"].items():
                mine = parts[int(g)::readers] if int(g) < readers else []
                progress = tuple(tuple(s["cursor"][q]) for q in mine)
                if g not in best or progress > best[g]:
                    best[g], nxt[g] = progress, p
    out["order"] = {"layout": layout, "next": nxt}
    return out


def to_json(state: dict[str, Any]) -> dict[str, Any]:
    """The state with string partition keys (what ``json.dumps`` writes anyway)."""
    return {**state, "shuffle": None if state.get("shuffle") is None else dict(state["shuffle"]),
            "packing": None if state.get("packing") is None else dict(state["packing"]),
            "start": {str(p): o for p, o in state["start"].items()},
            "end": {str(p): o for p, o in state["end"].items()},
            "cursor": {str(p): list(c) for p, c in state["cursor"].items()},
            "delivered": {str(p): list(c) for p, c in state["delivered"].items()},
            "order": {"layout": state["order"]["layout"], "next": dict(state["order"]["next"])}}
