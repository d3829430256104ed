"""pyclient.packing over Kafka records on the real broker (both backends), without the
training feed class: pack_feed with a FeedConsumer over 3 partitions and small round-robin
turns; every document exactly once, segments exact; a resume from the per-partition
``[offset, skip]`` cursors after any batch gives the uninterrupted run's batches."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from helpers import make_topic
from pyclient.backends import make_producer
from pyclient.consumer import FeedConsumer
from pyclient.packing import Packer, pack_feed
from pyclient.tokenize import ByteTokenizer, as_value_encoder

EOS = ByteTokenizer.eos_id
PK = {"seq_len": 32, "batch_size": 2, "eos_id": EOS, "max_doc_len": 50,
      "labels": "mask_boundaries", "last_batch": "pad"}


@pytest.fixture(scope="module")
def topic(bootstrap: str) -> tuple[str, list[str]]:
    rng = random.Random(11)
    docs = [f"d{i}:" + "xyz"[i % 3] * rng.choice([0, 3, 20, 120]) for i in range(300)]
    t = make_topic(bootstrap, f"packfeed-{uuid.uuid4().hex[:8]}", partitions=3)
    errors: list[str] = []
    p = make_producer({"bootstrap.servers": bootstrap}, lambda r, k, h: errors.append(r),
                      "confluent")
    for i, d in enumerate(docs):
        p.produce(t, d.encode(), key=str(i).encode())
    assert p.flush(30) == 0 and not errors
    p.close()
    return t, docs


def run(bootstrap: str, topic: str, backend: str, start: dict[int, list[int]] | None,
        nxt: Any) -> list[tuple[Any, dict[int, list[int]], Any]]:
    parts = [0, 1, 2]
    cur = start or {p: [0, 0] for p in parts}
    cons = FeedConsumer(bootstrap, topic, backend=backend, partitions=parts,
                        start={p: c[0] for p, c in cur.items()}, stop_at_end=True, meta=False,
                        chunk=8)
    cons.next_partition = nxt
    packer = Packer(**PK)
    for p, (o, s) in cur.items():
        if s:
            packer.resume_at(p, o, s)
    enc = as_value_encoder(ByteTokenizer())
    try:
        return list(pack_feed(packer, cons, lambda recs: enc([r.value or b"" for r in recs]),
                              parts))
    finally:
        cons.close()


def test_pack_feed_every_document_once_and_exact_resume(bootstrap: str, backend: str,
                                                        topic: tuple[str, list[str]]) -> None:
    name, docs = topic
    full = run(bootstrap, name, backend, None, None)
    assert full[-1][0] is None
    batches = [b for b, _, _ in full[:-1]]
    toks: list[int] = []
    for b in batches:
        for row, mask, cu, pos in zip(b["input_ids"], b["attention_mask"], b["cu_seqlens"],
                                      b["position_ids"]):
            toks += row[:sum(mask)]
            for a, e in zip(cu, cu[1:]):
                assert pos[a:e] == list(range(e - a))
                assert e - a <= PK["max_doc_len"]
    text = bytes(t for t in toks if t != EOS).decode()
    got = [bytes(x).decode() for x in _split(toks)]
    assert sorted(got) == sorted(docs) and len(text) == sum(map(len, docs))
    resumed_inside = False
    for k in sorted({1, len(batches) // 2, len(batches) - 1}):
        _, cursors, nxt = full[k - 1]
        resumed_inside |= any(s for _, s in cursors.values())
        rest = run(bootstrap, name, backend, cursors, nxt)
        assert [b for b, _, _ in rest] == [b for b, _, _ in full[k:]], f"resume after {k}"
    assert resumed_inside


def _split(toks: list[int]) -> list[list[int]]:
    out, cur = [], []
    for t in toks:
        if t == EOS:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return out
