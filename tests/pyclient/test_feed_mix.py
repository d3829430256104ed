"""Weighted mixing of several topics through the training feed (pyclient/feed_mix.py), on the
real broker: the realised shares, random stops resumed under the same layout give the
uninterrupted batches exactly, random layout changes deliver every pass's records once
(counted token by token against the state), DataLoader workers with fork and spawn, shuffle
and packing in the sources, readers without a source's data, epochs, and the refusals."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from helpers import make_topic
from pyclient.dataset import KafkaTokenDataset, LayoutError
from pyclient.feed_mix import MixedTokenDataset, from_stateful_dataloader, merge_mixed_state_dicts
from test_dataset import tagged
from test_feed_shuffle import dataloader_stop_resume

#: source -> (documents, partitions, weight, first document number)
SRC = {"web": (180, 3, 0.6, 0), "code": (50, 2, 0.3, 3000), "math": (14, 2, 0.1, 6000)}
SEQ = 24


@pytest.fixture(scope="module")
def topics(bootstrap: str) -> tuple[dict[str, str], dict[int, tuple[str, int, int, int]]]:
    """Three topics; where[doc number] = (source, partition, offset, tokens without EOS)."""
    import confluent_kafka as ck

    rng = random.Random(7)
    names, where = {}, {}
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for s, (n, parts, _, base) in SRC.items():
        names[s] = make_topic(bootstrap, f"mix-{s}-{uuid.uuid4().hex[:6]}", partitions=parts)
        for i in range(n):
            text = f"doc-{base + i:06d} " + "q" * rng.choice((0, 3, 12, 30, 70))
            p.produce(names[s], text.encode(), partition=i % parts)
            where[base + i] = (s, i % parts, i // parts, len(text))
    assert p.flush(30) == 0
    return names, where


def _mix(bootstrap: str, names: dict[str, str], state: dict[str, Any] | None = None,
         layout: tuple[int, int, int, int] | None = None, unit: int = 1, batch: int = 4,
         src: dict[str, Any] | None = None, **kw: Any) -> MixedTokenDataset:
    """The mix; ``layout`` (rank, world, worker, workers) fixed, or None: rank 0 of 1 and the
    DataLoader worker it runs in."""
    where = {} if layout is None else dict(zip(("rank", "world_size", "worker_id",
                                                "num_workers"), layout))
    srcs = {s: KafkaTokenDataset(bootstrap, names[s], seq_len=SEQ, batch_size=unit,
                                 tokenizer=tagged, eos_id=1, last_batch="pad", chunk=8,
                                 **where, **(src or {})) for s in names}
    m = MixedTokenDataset(srcs, {s: SRC[s][2] for s in names}, batch_size=batch, **kw)
    if state:
        m.load_state_dict(json.loads(json.dumps(state)))  # through JSON, as a checkpoint
    return m


def _rows(batches: list[dict[str, Any]]) -> list[tuple[str | None, list[int]]]:
    """(source, real tokens) of every row of the batches."""
    out = []
    for b in batches:
        ids, mask = b["input_ids"].tolist(), b["attention_mask"].tolist()
        for src, r, m in zip(b["source"], ids, mask):
            out.append((src, [t for t, k in zip(r, m) if k]))
    return out


def _key(b: dict[str, Any]) -> str:
    return json.dumps([b["source"], b["input_ids"].tolist(), b["attention_mask"].tolist()])


def _take(m: MixedTokenDataset, n: int | None) -> list[dict[str, Any]]:
    it = iter(m)
    out = list(it) if n is None else [b for _, b in zip(range(n), it)]
    it.close()
    return out


def _expected(state: dict[str, Any], where: dict[int, tuple[str, int, int, int]]) -> Counter:
    """Every (document, position) token the state says was delivered, with its count: k
    passes of the partition, plus one for what lies before its cursor in pass k."""
    want: Counter = Counter()
    for num, (s, p, off, n) in where.items():
        k = state["passes"][s][str(p)][0]
        o, skip = state["sources"][s]["cursor"][str(p)]
        for j in range(n):
            c = k + (1 if off < o or (off == o and j < skip) else 0)
            if c:
                want[num * 10000 + 2 + j] = c
    return want


def _check_counts(batches: list[dict[str, Any]], state: dict[str, Any],
                  where: dict[int, tuple[str, int, int, int]], m: MixedTokenDataset) -> None:
    rows = _rows(batches)
    got = Counter(t for _, r in rows for t in r if t != 1)
    assert got == _expected(state, where), "a token delivered more or fewer times than the state says"
    for _, r in rows:  # each row's tokens are of its own source
        assert all(t == 1 for t in r) or len({where[(t - 2) // 10000][0] for t in r if t != 1}) == 1
    per = Counter()
    for s, r in rows:
        if s is not None:
            per[s] += len(r)
    assert {s: v["tokens"] for s, v in m.delivered.items()} == {s: per[s] for s in SRC}


@pytest.mark.parametrize("on_exhausted", ["repeat", "stop"])
def test_shares_and_passes_of_one_reader(bootstrap: str, topics: Any, on_exhausted: str) -> None:
    names, where = topics
    m = _mix(bootstrap, names, on_exhausted=on_exhausted, seed=5)
    batches = _take(m, None)
    rep = m.report()
    rows = [s for b in batches for s in b["source"] if s is not None]
    for s, (_, _, w, _) in SRC.items():  # stride: within one row of the share at the end
        assert abs(rows.count(s) - w * len(rows)) <= 1.5, (s, rows.count(s), len(rows))
        assert abs(rep[s]["share"] - w) < 0.03, rep
    if on_exhausted == "repeat":  # ends when the last source completes its first pass
        assert min(v["passes"] for v in rep.values()) == 1
        assert rep["math"]["docs"] > SRC["math"][0], rep  # the small source repeated
    else:  # stops when the first source runs out: one of them completed a pass, once
        assert sorted(v["passes"] for v in rep.values()) == [0, 0, 1]
    _check_counts(batches, m.state_dict(), where, m)
    assert _take(_mix(bootstrap, names, m.state_dict(), on_exhausted=on_exhausted,
                      seed=5), None) == []  # a finished mix epoch resumes to nothing
    assert [_key(b) for b in _take(_mix(bootstrap, names, on_exhausted=on_exhausted, seed=5),
                                   None)] == [_key(b) for b in batches]  # the seed decides
    other = _take(_mix(bootstrap, names, on_exhausted=on_exhausted, seed=6,
                       schedule="random"), None)
    assert [b["source"] for b in other] != [b["source"] for b in batches]


CASES = [  # (on_exhausted, unit, batch, source options, mix options)
    ("repeat", 1, 4, {}, {}),
    ("repeat", 2, 4, {"shuffle_seed": 3, "shuffle_block": 5}, {"schedule": "random"}),
    ("stop", 1, 3, {"shuffle_seed": 4, "shuffle_block": 3}, {}),
    ("repeat", 4, 4, {"packing": {"labels": "mask_boundaries", "max_doc_len": 30}}, {}),
    ("repeat", 1, 2, {"shuffle_seed": 9, "shuffle_block": 4, "packing": {}}, {"seed": 2}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_random_stops_resume_the_uninterrupted_batches(bootstrap: str, topics: Any,
                                                       case: int) -> None:
    """Layout 2 ranks x 2 workers; each round every reader takes a random number of batches
    (0 to 4), the four states are merged and the next round resumes from the merge. Per
    reader, the batches equal the uninterrupted run's, one by one."""
    names, where = topics
    how, unit, batch, src, kw = CASES[case]
    rng = random.Random(case)
    lay = [(r, 2, w, 2) for r in range(2) for w in range(2)]

    def mk(state: dict[str, Any] | None, layout: tuple[int, int, int, int]) -> MixedTokenDataset:
        return _mix(bootstrap, names, state, layout, unit, batch, src, on_exhausted=how, **kw)
    whole = {lt: [_key(b) for b in _take(mk(None, lt), None)] for lt in lay}
    got: dict[Any, list[str]] = {lt: [] for lt in lay}
    state: dict[str, Any] | None = None
    for _ in range(60):
        states, done = [], True
        for lt in lay:
            m = mk(state, lt)
            n = rng.randint(0, 4)
            b = _take(m, n)
            got[lt] += [_key(x) for x in b]
            done = done and len(b) < n
            states.append(m.state_dict())
        state = merge_mixed_state_dicts(rng.sample(states, len(states)))
        if done:
            break
    assert got == whole
    assert [bool(whole[lt]) for lt in lay] == [True, True, True, False]  # reader 3: no data
    if not src.get("packing"):
        final = mk(state, lay[0])
        assert final.delivered == _mix(bootstrap, names, state, lay[1], unit, batch, src,
                                       on_exhausted=how, **kw).delivered


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_layouts_deliver_every_pass_once(bootstrap: str, topics: Any, seed: int) -> None:
    """Rounds under random layouts (1-3 ranks x 1-2 workers), random batches per reader,
    merged states in random order; the last layout reads to the mix's end. Every token was
    delivered exactly as often as the final state's passes and cursors say, and the
    delivered counts agree."""
    names, where = topics
    rng = random.Random(seed)
    how = ("repeat", "stop", "repeat")[seed - 1]
    state: dict[str, Any] | None = None
    batches: list[dict[str, Any]] = []
    for rnd in range(5):
        world, workers = rng.randint(1, 3), rng.randint(1, 2)
        states = []
        for r in range(world):
            for w in range(workers):
                m = _mix(bootstrap, names, state, (r, world, w, workers), on_exhausted=how,
                         seed=seed)
                batches += _take(m, None if rnd == 4 else rng.randint(0, 6))
                states.append(m.state_dict())
        state = merge_mixed_state_dicts(rng.sample(states, len(states)))
    m = _mix(bootstrap, names, state, on_exhausted=how, seed=seed)
    _check_counts(batches, state, where, m)
    assert sum(c for c in _expected(state, where).values()) > sum(SRC[s][0] for s in SRC)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_stop_and_resume_the_same_batches(bootstrap: str, topics: Any,
                                                             start_method: str) -> None:
    pytest.importorskip("torch")
    names, _ = topics
    taken, whole = dataloader_stop_resume(
        lambda st: _mix(bootstrap, names, st, src={"shuffle_seed": 1, "shuffle_block": 8}),
        start_method, _key)
    assert {s for b in taken for s in b["source"]} >= set(SRC)


def test_stateful_dataloader_state_resumes_under_another_layout(bootstrap: str,
                                                                topics: Any) -> None:
    """The docs' loop: StatefulDataLoader with 2 workers stopped after 7 batches; its state
    (from_stateful_dataloader) resumed by 3 ranks without workers, read to the mix's end:
    every token as often as the final merged state says."""
    sdl = pytest.importorskip("torchdata.stateful_dataloader")
    names, where = topics
    dl = sdl.StatefulDataLoader(_mix(bootstrap, names), batch_size=None, num_workers=2)
    taken = []
    for b in dl:
        taken.append(b)
        if len(taken) == 7:
            break
    state = from_stateful_dataloader(json.loads(json.dumps(dl.state_dict())))
    states = []
    for r in range(3):
        m = _mix(bootstrap, names, state, (r, 3, 0, 1))
        taken += _take(m, None)
        states.append(m.state_dict())
    final = merge_mixed_state_dicts(states)
    _check_counts(taken, final, where, _mix(bootstrap, names, final))


def test_a_reader_without_partitions_of_a_source_mixes_the_others(bootstrap: str,
                                                                   topics: Any) -> None:
    """4 readers: code and math have 2 partitions, so readers 2 and 3 mix web alone; 5
    readers: reader 4... has none of web either (3 partitions) and yields nothing."""
    names, where = topics
    by = {}
    for r in range(4):
        b = _take(_mix(bootstrap, names, layout=(r, 4, 0, 1)), None)
        by[r] = {s for x in b for s in x["source"] if s is not None}
    assert by[0] == by[1] == set(SRC) and by[2] == {"web"} and by[3] == set()
    assert _take(_mix(bootstrap, names, layout=(4, 5, 0, 1)), None) == []


def test_epochs(bootstrap: str, topics: Any) -> None:
    names, where = topics
    m = _mix(bootstrap, names, seed=1)
    e0 = [_key(b) for b in _take(m, None)]
    m.set_epoch(1)
    assert m.epoch == 1 and all(v["tokens"] == 0 for v in m.delivered.values())
    e1 = [_key(b) for b in _take(m, None)]
    assert len(e1) == len(e0)  # no shuffle: the same records, the same mix schedule
    with pytest.raises(ValueError, match="epoch 1 already"):
        m.set_epoch(0)
    st = m.state_dict()
    again = _mix(bootstrap, names, st, seed=1)
    assert again.epoch == 1 and _take(again, None) == []


def test_refusals(bootstrap: str, topics: Any) -> None:
    names, _ = topics
    m = _mix(bootstrap, names)
    _take(m, 3)
    st = m.state_dict()
    with pytest.raises(LayoutError, match="config.weights"):
        bad = _mix(bootstrap, names)
        bad.weights = {**bad.weights, "web": 0.5}
        bad.load_state_dict(st)
    with pytest.raises(LayoutError, match="config.seed"):
        _mix(bootstrap, names, st, seed=9)
    with pytest.raises(LayoutError, match="config.units"):
        _mix(bootstrap, names, st, unit=2)
    with pytest.raises(LayoutError, match="'shuffle'"):
        _mix(bootstrap, names, st, src={"shuffle_seed": 1})
    with pytest.raises(LayoutError, match="format"):
        _mix(bootstrap, names, st["sources"]["web"])
    srcs = {s: KafkaTokenDataset(bootstrap, names[s], seq_len=SEQ, batch_size=1,
                                 last_batch="pad") for s in names}
    w = {s: SRC[s][2] for s in names}
    with pytest.raises(ValueError, match="must name the same sources"):
        MixedTokenDataset(srcs, {"web": 1.0}, batch_size=4)
    with pytest.raises(ValueError, match="weight must be a finite number"):
        MixedTokenDataset(srcs, {**w, "math": 0}, batch_size=4)
    with pytest.raises(ValueError, match="does not divide"):
        MixedTokenDataset({**srcs, "web": KafkaTokenDataset(
            bootstrap, names["web"], seq_len=SEQ, batch_size=3, last_batch="pad")}, w,
            batch_size=4)
    with pytest.raises(ValueError, match="source 'web': seq_len"):
        MixedTokenDataset({**srcs, "web": KafkaTokenDataset(
            bootstrap, names["web"], seq_len=SEQ + 1, batch_size=1, last_batch="pad")}, w,
            batch_size=4)
    with pytest.raises(ValueError, match="same last_batch"):
        MixedTokenDataset({**srcs, "web": KafkaTokenDataset(
            bootstrap, names["web"], seq_len=SEQ, batch_size=1)}, w, batch_size=4)
    with pytest.raises(TypeError, match="expected a KafkaTokenDataset"):
        MixedTokenDataset({**srcs, "web": [1, 2]}, w, batch_size=4)  # type: ignore[dict-item]
    # a source too small to fill one unit under last_batch="drop" cannot repeat
    tiny = make_topic(bootstrap, f"mix-tiny-{uuid.uuid4().hex[:6]}")
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": bootstrap})
    p.produce(tiny, b"ab")
    p.flush(30)
    drop = {s: KafkaTokenDataset(bootstrap, names[s], seq_len=SEQ, batch_size=1)
            for s in ("web",)}
    drop["tiny"] = KafkaTokenDataset(bootstrap, tiny, seq_len=SEQ, batch_size=1)
    with pytest.raises(LayoutError, match="source 'tiny': a whole pass"):
        _take(MixedTokenDataset(drop, {"web": 0.5, "tiny": 0.5}, batch_size=2), None)
