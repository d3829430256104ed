"""pyclient.packing without a broker: property-style (seeded random documents and settings)
checks that every token of every document appears exactly once and in order, that segment
boundaries, position ids, document ids, cu_seqlens and labels are exact, that the last-batch
policies account for every token, and that a state round trip (through JSON) gives the same
rows as the uninterrupted run."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pyclient.packing import IGNORE, Packer, PackingError, pack_documents, varlen
from pyclient.tokenize import ByteTokenizer

EOS, BOS, PAD = 1, 2, 0


def rand_docs(rng: random.Random, n: int, big: int) -> list[list[int]]:
    """Documents of 0..big tokens (ids >= 10, so that EOS/BOS/PAD are recognisable)."""
    return [[rng.randrange(10, 1000) for _ in range(rng.choice([0, 1, 2, rng.randrange(big + 1)]))]
            for _ in range(n)]


def rand_settings(rng: random.Random) -> dict[str, Any]:
    m = rng.choice([None, 1, 2, 3, 7, 40])
    bos = rng.choice([None, BOS])
    if m is not None and bos is not None and m < 2:
        m = 2
    return {"seq_len": rng.choice([1, 2, 5, 16, 33]), "batch_size": rng.choice([1, 2, 3]),
            "eos_id": EOS, "bos_id": bos, "pad_id": PAD, "max_doc_len": m,
            "long_docs": rng.choice(["split", "truncate"]),
            "labels": rng.choice([None, "all", "mask_boundaries"]),
            "last_batch": rng.choice(["drop", "pad"])}


def oracle(docs: list[list[int]], kw: dict[str, Any]) -> tuple[list[int], set[int], int]:
    """The expected token stream, the stream positions where a segment must end (document
    and piece ends), and the truncated token count."""
    stream: list[int] = []
    ends: set[int] = set()
    cut = 0
    m = kw["max_doc_len"]
    for d in docs:
        t = ([kw["bos_id"]] if kw["bos_id"] is not None else []) + d + [EOS]
        if m is not None and len(t) > m and kw["long_docs"] == "truncate":
            cut += len(t) - m
            t = t[:m - 1] + [EOS]
        base = len(stream)
        stream += t
        ends.add(len(stream))
        if m is not None and kw["long_docs"] == "split":
            ends.update(base + i for i in range(m, len(t), m))
    return stream, ends, cut


def rows(batches: list[dict[str, Any]]) -> list[dict[str, list[int]]]:
    out = []
    for b in batches:
        for i in range(len(b["input_ids"])):
            out.append({k: b[k][i] for k in b})
    return out


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_token_once_in_order_with_exact_boundaries(seed: int) -> None:
    rng = random.Random(seed)
    kw = rand_settings(rng)
    docs = rand_docs(rng, rng.randrange(0, 40), rng.choice([3, 30, 200]))
    p = Packer(**kw)
    batches = [b for b, _ in pack_documents(p, docs)]
    stream, ends, cut = oracle(docs, kw)
    S, B = kw["seq_len"], kw["batch_size"]
    got: list[int] = []
    cuts: set[int] = set()
    for r in rows(batches):
        valid = sum(r["attention_mask"])
        assert r["attention_mask"] == [1] * valid + [0] * (S - valid)
        assert r["input_ids"][valid:] == [PAD] * (S - valid)
        assert r["doc_ids"][valid:] == [-1] * (S - valid)
        cu = r["cu_seqlens"]
        assert cu[0] == 0 and cu[-1] == valid and all(a < b for a, b in zip(cu, cu[1:]))
        base = len(got)
        for seg, (a, b) in enumerate(zip(cu, cu[1:])):
            assert r["doc_ids"][a:b] == [seg] * (b - a)
            assert r["position_ids"][a:b] == list(range(b - a))  # restart at every segment
            if b < valid:
                cuts.add(base + b)
        if kw["labels"]:
            starts = set(cu[:-1])
            for i in range(S):
                want = IGNORE if i >= valid or (kw["labels"] == "mask_boundaries"
                                                and i in starts) else r["input_ids"][i]
                assert r["labels"][i] == want, (i, r)
        else:
            assert "labels" not in r
        got += r["input_ids"][:valid]
    need = S * B
    if kw["last_batch"] == "drop":
        keep = len(stream) // need * need
        assert got == stream[:keep]
        assert p.counts["dropped_tokens"] == len(stream) - keep
        assert all(sum(r["attention_mask"]) == S for r in rows(batches))
    else:
        assert got == stream  # every token exactly once, in order
        assert len(batches) == -(-len(stream) // need)
        assert p.counts["pad_tokens"] == len(batches) * need - len(stream)
    # a segment ends inside a row exactly where a document or a piece ends
    assert cuts == {e for e in ends if e < len(got) and e % S}
    assert p.counts["truncated_tokens"] == cut
    assert p.counts["tokens"] == len(got)


@pytest.mark.parametrize("seed", SEEDS)
def test_state_round_trip_gives_identical_rows(seed: int) -> None:
    rng = random.Random(1000 + seed)
    kw = rand_settings(rng)
    docs = rand_docs(rng, rng.randrange(1, 40), rng.choice([3, 30, 200]))
    full = list(pack_documents(Packer(**kw), docs))
    for k in sorted({0, len(full) // 2, rng.randrange(len(full) + 1), len(full)}):
        if k == 0:
            state, done = Packer(**kw).state(), []
        else:
            state, done = json.loads(json.dumps(full[k - 1][1])), [b for b, _ in full[:k]]
        p = Packer(**kw)
        p.load_state(state)
        start = state["cursor"][0]["pos"] if state["cursor"] else 0
        rest = list(pack_documents(p, docs[start:], start=start))
        assert done + [b for b, _ in rest] == [b for b, _ in full], f"cut after batch {k}"
        if full:
            assert (rest[-1][1] if rest else state) == full[-1][1]  # counters carried exactly


def test_state_is_positions_not_tokens() -> None:
    """A 1,000,000-token document split over many batches: the state stays a few hundred
    bytes and names the document and the tokens of it already returned."""
    p = Packer(1000, batch_size=4, eos_id=EOS)
    p.push([7] * 1_000_000, source="web", pos=41)
    b = p.pop()
    assert b is not None
    s = p.state()
    assert len(json.dumps(s)) < 600
    assert s["cursor"] == [{"source": "web", "pos": 41, "skip": 4000, "docs": 0,
                            "tokens": 4000}]
    q = Packer(1000, batch_size=4, eos_id=EOS)
    q.load_state(json.loads(json.dumps(s)))
    q.push([7] * 1_000_000, source="web", pos=41)
    assert q.pop() == p.pop()
    assert q.source_counts() == p.source_counts() == {"web": {"docs": 0, "tokens": 8000}}


def test_docs_example_values() -> None:
    """The example in docs/pyclient.md, as written there."""
    p = Packer(8, batch_size=2, eos_id=0, bos_id=9, max_doc_len=5,
               labels="mask_boundaries", last_batch="pad")
    out = list(pack_documents(p, [[1, 2, 3], [4, 5, 6, 7, 8, 1, 2], [3]]))
    b = out[0][0]
    assert b["input_ids"] == [[9, 1, 2, 3, 0, 9, 4, 5], [6, 7, 8, 1, 2, 0, 9, 3]]
    assert b["doc_ids"] == [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 2, 2]]
    assert b["position_ids"] == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 0, 1, 2, 3, 0, 1]]
    assert b["cu_seqlens"] == [[0, 5, 8], [0, 2, 6, 8]]
    assert b["labels"] == [[-100, 1, 2, 3, 0, -100, 4, 5], [-100, 7, -100, 1, 2, 0, -100, 3]]
    assert out[0][1]["cursor"] == [{"source": 0, "pos": 2, "skip": 2, "docs": 2, "tokens": 16}]
    assert varlen(b) == ([0, 5, 8, 10, 14, 16], 5)
    last = out[1][0]
    assert last["attention_mask"] == [[1] + [0] * 7, [0] * 8]
    assert varlen(last) == ([0, 1, 8, 16], 8)


def test_eos_is_required_and_named() -> None:
    class NoEos:
        def encode_batch(self, texts: list[str]) -> list[list[int]]:
            return [[1] for _ in texts]

    with pytest.raises(PackingError, match=r"tokenizer NoEos has no eos_id / eos_token_id: "
                                           r"pass eos_id="):
        Packer(8, tokenizer=NoEos())
    with pytest.raises(PackingError, match="no tokenizer was given"):
        Packer(8)
    assert Packer(8, tokenizer=NoEos(), eos_id=5).eos_id == 5
    assert Packer(8, tokenizer=ByteTokenizer()).eos_id == 256

    class HFLike:
        eos_token_id = 3
    assert Packer(8, tokenizer=HFLike()).eos_id == 3
    with pytest.raises(PackingError, match="eos_id must be a token id"):
        Packer(8, eos_id=-1)


def test_bad_settings_are_named() -> None:
    for kw, msg in [({"seq_len": 0}, "seq_len and batch_size"),
                    ({"long_docs": "cut"}, "long_docs"), ({"labels": "yes"}, "labels"),
                    ({"last_batch": "keep"}, "last_batch"),
                    ({"max_doc_len": 1, "bos_id": 2}, "max_doc_len 1")]:
        with pytest.raises(PackingError, match=msg):
            Packer(**{"seq_len": 4, "eos_id": 1, **kw})


def test_resume_refuses_other_documents_settings_and_foreign_states() -> None:
    p = Packer(4, eos_id=EOS)
    p.push([5, 5, 5, 5, 5], pos=10)
    p.pop()
    s = p.state()
    assert s["cursor"][0]["pos"] == 10 and s["cursor"][0]["skip"] == 4
    q = Packer(4, eos_id=EOS)
    q.load_state(s)
    with pytest.raises(PackingError, match=r"resumes at document 10 after 4 .* pushed is 11"):
        q.push([5] * 5, pos=11)
    q = Packer(4, eos_id=EOS)
    q.load_state(s)
    with pytest.raises(PackingError, match=r"after 4 of its tokens.* with 3 tokens"):
        q.push([5, 5], pos=10)  # the same record tokenized shorter: another tokenizer
    with pytest.raises(PackingError, match=r"'spec.seq_len': the state has 4, this packer 8"):
        Packer(8, eos_id=EOS).load_state(s)
    with pytest.raises(PackingError, match="format 'pyclient.packing'"):
        Packer(4, eos_id=EOS).load_state({"format": "pyclient.feed"})
    with pytest.raises(PackingError, match=r"'cursor\[0\]'"):
        Packer(4, eos_id=EOS).load_state({**s, "cursor": [{"source": 0, "pos": 1}]})
    with pytest.raises(PackingError, match="has documents already"):
        p.load_state(s)
    with pytest.raises(PackingError, match="needs next_pos="):
        Packer(4, eos_id=EOS).push([1], pos=("p", 3))


def test_truncate_counts_and_keeps_eos() -> None:
    p = Packer(4, eos_id=EOS, bos_id=BOS, pad_id=PAD, max_doc_len=4, long_docs="truncate",
               last_batch="pad")
    out = [b for b, _ in pack_documents(p, [[10, 11, 12, 13, 14], [20]])]
    assert [r["input_ids"] for r in rows(out)] == [[BOS, 10, 11, EOS], [BOS, 20, EOS, PAD]]
    assert p.counts["truncated_tokens"] == 3
