"""One reader of the training feed: its partitions' records of the epoch, tokenized, packed
and cut into batches, with the cursor of every partition after each batch.

Bookkeeping per document: ``(partition, offset, tokens, skip)``, kept from when it is
tokenized until its last token is in a yielded batch. After a batch, a partition's cursor is
its first document not yet fully yielded (offset, tokens of it already yielded), else the
consumer's position. A resumed cursor ``[offset, skip]`` re-reads the record at ``offset``
and drops its first ``skip`` tokens; the record order of a reader depends only on its
partitions, their start positions and ``chunk`` (see :mod:`pyclient.consumer`), so the same
layout continues with exactly the same batches.

Token-id records (``records="tokens"``) are decoded instead of tokenized: the same ids, so
the same bookkeeping and batches. A text reader reads the headers of its first records and
refuses token-id records (their bytes tokenized as text would train on garbage); after that
it reads without headers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .backends import Record
from .consumer import FeedConsumer
from .feed_shuffle import ShuffledConsumer
from .feed_state import LayoutError
from .packing import Packer, PackingError
from .token_records import NAME, TokenRecordError, record_tokenizer, records_decoder
from .tokenize import as_value_encoder

if TYPE_CHECKING:
    from .dataset import KafkaTokenDataset

Cursors = dict[int, list[int]]
#: Per partition [documents, tokens] delivered in taken batches (this epoch, absolute).
Counts = dict[int, list[int]]
#: (tokens or None at the end, cursors after it, next partition, real tokens in it, counts)
Step = tuple["list[int] | None", Cursors, "int | None", int, Counts]


def read_batches(ds: KafkaTokenDataset, mine: list[int], nxt: int | None) -> Iterator[Step]:
    st = ds._state
    end = {p: st["end"][p] for p in mine}
    todo = [p for p in mine if st["cursor"][p][0] < end[p]]
    if not todo:
        return
    start = {p: st["cursor"][p][0] for p in todo}
    skip = {p: st["cursor"][p][1] for p in todo if st["cursor"][p][1]}
    cons: Any
    if st["shuffle"] is not None:
        cons = ShuffledConsumer(ds._cfg(), ds.backend, ds.topic, todo,
                                {p: st["start"][p] for p in todo}, end, start,
                                seed=st["shuffle"]["seed"], epoch=st["epoch"],
                                block=st["shuffle"]["block"])
    else:
        cons = FeedConsumer(ds.bootstrap_servers, ds.topic, settings=ds._cfg(),
                            backend=ds.backend, partitions=todo, start=start, end=end,
                            stop_at_end=True, meta=True, chunk=ds.chunk,
                            max_buffered_bytes=ds.max_buffered_bytes)
    try:
        cons.next_partition = nxt
        yield from (_pack(ds, cons, todo, skip) if ds.packing is None
                    else _pack_rows(ds, cons, todo, skip))
    finally:
        cons.close()


def _pack(ds: KafkaTokenDataset, cons: Any, todo: list[int],
          skip: dict[int, int]) -> Iterator[Step]:
    encode, eos = _encoder(ds), ds.eos_id
    guard = ds.records == "text"                 # headers of the first records: not tokens?
    need = ds.seq_len * ds.batch_size
    buf: list[int] = []
    h = 0                                        # tokens of buf before h are yielded
    docs: deque[list[int]] = deque()             # [partition, offset, tokens, skip]
    pend: dict[int, deque[list[int]]] = {p: deque() for p in todo}  # same lists, per partition
    used = 0                                     # tokens of docs[0] yielded beyond its skip
    ndocs = ntok = 0
    got = {p: list(ds._state["delivered"].get(p, (0, 0))) for p in todo}

    def counts() -> Counts:
        return {p: list(c) for p, c in got.items()}

    def cursors() -> Cursors:
        out: Cursors = {}
        for p in todo:
            q = pend[p]
            if q:
                d = q[0]
                out[p] = [d[1], d[3] + (used if docs and docs[0] is d else 0)]
            else:
                out[p] = [cons.positions[p], 0]
        return out

    def nxt() -> int | None:
        return docs[0][0] if docs else cons.next_partition

    while True:
        while len(buf) - h < need:
            avg = ntok // ndocs if ndocs else 256
            want = min(ds.tokenize_batch, max(1, (need - len(buf) + h) // max(avg, 1) + 1))
            recs = cons.consume(want, timeout=1.0)
            if not recs:
                if not cons.at_end():
                    continue
                left = len(buf) - h
                if left and ds.last_batch == "pad":
                    block = buf[h:] + [ds.pad_id] * (need - left)
                    for i, d in enumerate(docs):  # all of them end in this batch
                        got[d[0]][0] += 1
                        got[d[0]][1] += d[2] - (used if i == 0 else 0)
                    docs.clear()
                    for q in pend.values():
                        q.clear()
                    yield block, cursors(), None, left, counts()
                else:
                    docs.clear()
                    for q in pend.values():
                        q.clear()
                yield None, cursors(), None, 0, counts()
                return
            if guard:
                guard = False
                cons._meta = False               # text: no headers after the first fetch
                _refuse_token_records(ds, recs)
            before = len(buf)
            for r, ids in zip(recs, encode(recs)):
                n = len(ids) + 1
                s = 0
                if skip and r.partition in skip:
                    s = skip.pop(r.partition)
                    want_at = cons_start(cons, r.partition)
                    if r.offset != want_at or s >= n:
                        raise LayoutError(
                            f"partition {r.partition}: the state resumes inside the record at "
                            f"offset {want_at} after {s} of its tokens, but the first record read "
                            f"is at offset {r.offset} with {n} tokens (record removed, or another "
                            "tokenizer than the saved run's)")
                    buf.extend(ids[s:] if s < len(ids) else ())
                else:
                    buf.extend(ids)
                buf.append(eos)
                d = [r.partition, r.offset, n - s, s]
                docs.append(d)
                pend[r.partition].append(d)
            ndocs += len(recs)
            ntok += len(buf) - before
        block = buf[h:h + need]
        h += need
        if h >= 65536 and h * 2 >= len(buf):
            del buf[:h]
            h = 0
        rem = need
        while rem:
            d = docs[0]
            left = d[2] - used
            if left <= rem:
                rem -= left
                used = 0
                docs.popleft()
                pend[d[0]].popleft()
                got[d[0]][0] += 1
                got[d[0]][1] += left
            else:
                used += rem
                got[d[0]][1] += rem
                rem = 0
        yield block, cursors(), nxt(), need, counts()


def _pack_rows(ds: KafkaTokenDataset, cons: Any, todo: list[int],
               skip: dict[int, int]) -> Iterator[Any]:
    """``packing=``: :class:`pyclient.packing.Packer` rows (document ids, positions,
    cu_seqlens, labels), one source per partition; the same cursors and round-robin."""
    assert ds.packing is not None
    packer = Packer(ds.seq_len, batch_size=ds.batch_size, eos_id=ds.eos_id, pad_id=ds.pad_id,
                    last_batch=ds.last_batch, **ds.packing)
    for p, s in skip.items():
        packer.resume_at(p, cons_start(cons, p), s)
    encode, guard = _encoder(ds), ds.records == "text"
    base = {p: list(ds._state["delivered"].get(p, (0, 0))) for p in todo}

    def cursors() -> Cursors:
        pend = packer.pending()
        return {p: list(pend[p]) if p in pend else [cons.positions[p], 0] for p in todo}

    def counts() -> Counts:  # the packer counts real tokens (BOS/EOS included, no padding)
        src = packer.source_counts()
        return {p: [base[p][0] + src.get(p, {}).get("docs", 0),
                    base[p][1] + src.get(p, {}).get("tokens", 0)] for p in todo}

    while True:
        b = packer.pop()
        if b is not None:
            nxt = packer.next_source()
            yield b, cursors(), cons.next_partition if nxt is None else nxt, 0, counts()
            continue
        recs = cons.consume(ds.tokenize_batch, timeout=1.0)
        if not recs:
            if not cons.at_end():
                continue
            b = packer.finish()
            if b is not None:
                yield b, cursors(), None, 0, counts()
            yield None, cursors(), None, 0, counts()
            return
        if guard:
            guard = False
            cons._meta = False
            _refuse_token_records(ds, recs)
        for r, ids in zip(recs, encode(recs)):
            try:
                packer.push(ids, source=r.partition, pos=r.offset)
            except PackingError as e:
                raise LayoutError(f"partition {r.partition}: {e}") from None


def _encoder(ds: KafkaTokenDataset) -> Callable[[list[Record]], list[list[int]]]:
    """Records -> token ids: decoded token-id records, or tokenized values."""
    if ds.records == "tokens":
        assert ds.token_id is not None
        return records_decoder(ds.token_id)
    values = as_value_encoder(ds.tokenizer)

    def tokenize(recs: list[Record]) -> list[list[int]]:
        return values([r.value or b"" for r in recs])
    return tokenize


def _refuse_token_records(ds: KafkaTokenDataset, recs: list[Record]) -> None:
    for r in recs:
        if r.headers and any(k == NAME for k, _ in r.headers):
            name, h, _ = record_tokenizer(r.headers)
            raise TokenRecordError(
                f"topic {ds.topic!r} partition {r.partition} offset {r.offset} holds token-id "
                f"records (tokenizer {name}, hash {h[:16]}): read it with records='tokens' and "
                "that tokenizer; tokenizing their bytes as text would train on garbage")


def cons_start(cons: Any, p: int) -> int:
    """The offset the consumer started ``p`` at (where a resumed split document lies)."""
    return int(cons._start[p])
