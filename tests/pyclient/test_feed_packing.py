"""``KafkaTokenDataset(packing=...)`` on the real broker: the Packer's rows (document ids,
position ids, cu_seqlens, labels, BOS, long documents split or truncated) inside the feed,
with the feed's guarantees: the same input ids as the feed's own packer, every document once,
random stops under the same layout resumed to the uninterrupted stream (with and without the
shuffle), DataLoader workers, and the refusals."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pyclient.dataset import KafkaTokenDataset, LayoutError
from test_dataset import check_once, real, tagged
from test_feed_elastic import _reader
from test_feed_shuffle import N, _docs, _fill, dataloader_stop_resume, random_stops

BOS = 0


@pytest.fixture(scope="module")
def topic(bootstrap: str) -> tuple[str, list[str]]:
    docs = _docs(N, 8)
    return _fill(bootstrap, 4, docs), docs


def _ds(bootstrap: str, topic: str, state: dict[str, Any] | None = None,
        **kw: Any) -> KafkaTokenDataset:
    kw.setdefault("packing", {})
    kw.setdefault("last_batch", "pad")
    ds = KafkaTokenDataset(bootstrap, topic, seq_len=24, batch_size=2, tokenizer=tagged,
                           eos_id=1, chunk=8, **kw)
    if state:
        ds.load_state_dict(state)
    return ds


def _plain(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else x


def _key(b: dict[str, Any]) -> str:
    return json.dumps({k: _plain(v) for k, v in sorted(b.items()) if k != "kafka_state"})


def _segments(b: dict[str, Any]) -> list[list[int]]:
    """Each row's segments by cu_seqlens, checked against doc_ids and position_ids."""
    out = []
    ids, doc, pos = (_plain(b[k]) for k in ("input_ids", "doc_ids", "position_ids"))
    mask = _plain(b["attention_mask"])
    for r, cu in enumerate(b["cu_seqlens"]):
        assert cu[0] == 0 and cu[-1] == sum(mask[r])
        for i, (a, e) in enumerate(zip(cu, cu[1:])):
            assert doc[r][a:e] == [i] * (e - a) and pos[r][a:e] == list(range(e - a))
            out.append(ids[r][a:e])
        assert doc[r][cu[-1]:] == [-1] * (len(ids[r]) - cu[-1])
    return out


def test_rows_carry_what_attention_needs(bootstrap: str, topic: tuple[str, list[str]],
                                         backend: str) -> None:
    name, docs = topic
    base = list(_ds(bootstrap, name, packing=None, backend=backend))
    got = list(_ds(bootstrap, name, backend=backend))
    assert [_plain(b["input_ids"]) for b in got] == [_plain(b["input_ids"]) for b in base]
    assert [_plain(b["attention_mask"]) for b in got] == \
        [_plain(b["attention_mask"]) for b in base]
    check_once(real(got), docs)
    segs = [s for b in got for s in _segments(b)]
    assert sum(1 for s in segs if s[-1] == 1) == len(docs)  # every document ends in a segment
    lab = list(_ds(bootstrap, name, backend=backend, packing={"bos_id": BOS,
                                                            "labels": "mask_boundaries"}))
    toks = [t for t in real(lab) if t != BOS]
    check_once(toks, docs)
    for b in lab:
        ids, labels, mask = (_plain(b[k]) for k in ("input_ids", "labels", "attention_mask"))
        for r, cu in enumerate(b["cu_seqlens"]):
            for i in range(len(ids[r])):
                first = i in cu[:-1]
                assert labels[r][i] == (-100 if first or not mask[r][i] else ids[r][i])
        for s in _segments(b):
            assert BOS not in s[1:]  # a BOS only opens a segment


@pytest.mark.parametrize("long_docs", ["split", "truncate"])
def test_long_documents_split_or_truncated(bootstrap: str, topic: tuple[str, list[str]],
                                           long_docs: str) -> None:
    name, docs = topic
    m = 12
    got = list(_ds(bootstrap, name, packing={"max_doc_len": m, "long_docs": long_docs}))
    segs = [s for b in got for s in _segments(b)]
    assert all(len(s) <= m for s in segs)
    toks = real(got)
    want = sorted(t for d in tagged(docs) for t in (d if long_docs == "split" else d[:m - 1]))
    assert sorted(t for t in toks if t != 1) == want and toks.count(1) == len(docs)


@pytest.mark.parametrize(("seed", "shuffle"), [(6, None), (7, 3)])
def test_random_stops_resume_the_uninterrupted_packed_stream(
        bootstrap: str, topic: tuple[str, list[str]], seed: int, shuffle: int | None) -> None:
    rng = random.Random(seed)
    name, docs = topic
    kw: dict[str, Any] = {"packing": {"bos_id": BOS, "max_doc_len": 20, "labels": "all"},
                          "shuffle_seed": shuffle, "shuffle_block": 8}
    world, workers = 1, rng.randint(2, 3)
    base = _ds(bootstrap, name, **kw)
    whole = {k: [_key(b) for b in _reader(base, 0, world, k, workers)] for k in range(workers)}
    got, state = random_stops(lambda st: _ds(bootstrap, name, st, **kw), world, workers, rng,
                              (0, 1, 2, 5, 10**6), _key)
    assert got == whole
    every = [t for k in got for b in got[k] for t in real([json.loads(b)])]
    check_once([t for t in every if t != BOS], docs)
    # the packer's counts: BOS and EOS included, padding not
    assert sum(d for d, _ in state["delivered"].values()) == len(docs)
    assert sum(t for _, t in state["delivered"].values()) == len(every)


def test_dataloader_workers_resume_the_packed_batches(bootstrap: str,
                                                      topic: tuple[str, list[str]]) -> None:
    pytest.importorskip("torch")
    name, docs = topic
    kw: dict[str, Any] = {"packing": {"bos_id": BOS, "labels": "mask_boundaries"},
                          "shuffle_seed": 5, "shuffle_block": 16}

    taken, _ = dataloader_stop_resume(lambda st: _ds(bootstrap, name, st, **kw), "spawn", _key)
    check_once([t for t in real(taken) if t != BOS], docs)


def test_other_packing_options_are_refused(bootstrap: str, topic: tuple[str, list[str]]) -> None:
    name, _ = topic
    ds = _ds(bootstrap, name, packing={"bos_id": BOS})
    it = iter(ds)
    next(it)
    it.close()
    st = ds.state_dict()
    for other in (None, {}, {"bos_id": BOS, "max_doc_len": 30}):
        with pytest.raises(LayoutError, match="field 'packing'"):
            _ds(bootstrap, name, st, packing=other)
    bad = dict(st, packing={"bos_id": "x"})
    with pytest.raises(LayoutError, match="field 'packing'.*bos_id"):
        _ds(bootstrap, name, bad, packing={"bos_id": BOS})
    for opts, word in (({"bos": 0}, "keys"), ({"long_docs": "cut"}, "long_docs"),
                       ({"labels": "yes"}, "labels"), ({"max_doc_len": 1, "bos_id": 0},
                                                       "max_doc_len")):
        with pytest.raises(ValueError, match=word):
            _ds(bootstrap, name, packing=opts)
