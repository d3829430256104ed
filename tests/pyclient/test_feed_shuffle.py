"""The training feed's seeded shuffle on the real broker: every record once per epoch in a
seeded order (another per seed and per epoch), and exact state: random stops resumed under
the same layout give the uninterrupted stream batch for batch; resumed under random other
layouts, the union is still every record once. Both client backends, DataLoader workers with
fork and spawn, blocks that end in transaction markers, readers with no data, and the
refusals (another seed, records gone)."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from helpers import make_topic
from pyclient.dataset import KafkaTokenDataset, LayoutError, merge_state_dicts
from pyclient.feed_shuffle import block_plan, permute
from test_dataset import _delete_records, check_once, real, tagged
from test_feed_elastic import _reader

N = 600


def _docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"doc-{i:06d} " + "q" * rng.choice((0, 2, 9, 40, 150)) for i in range(n)]


def _fill(bootstrap: str, parts: int, docs: list[str], transactional: bool = False) -> str:
    import confluent_kafka as ck

    name = make_topic(bootstrap, f"sh-{uuid.uuid4().hex[:8]}", partitions=parts)
    cfg: dict[str, Any] = {"bootstrap.servers": bootstrap}
    if transactional:
        cfg["transactional.id"] = f"tx-{name}"
    p = ck.Producer(cfg)
    if transactional:
        p.init_transactions(30)
        p.begin_transaction()
    for i, d in enumerate(docs):
        p.produce(name, d.encode(), partition=(i * 7 + i // 5) % parts)
        if transactional and i % 13 == 12:  # a commit marker after every 13 records
            p.commit_transaction(30)
            p.begin_transaction()
    if transactional:
        p.commit_transaction(30)
    assert p.flush(30) == 0
    return name


@pytest.fixture(scope="module")
def topic(bootstrap: str) -> tuple[str, list[str]]:
    docs = _docs(N, 5)
    return _fill(bootstrap, 5, docs), docs


def _ds(bootstrap: str, topic: str, state: dict[str, Any] | None = None,
        **kw: Any) -> KafkaTokenDataset:
    kw.setdefault("shuffle_seed", 11)
    kw.setdefault("shuffle_block", 16)
    ds = KafkaTokenDataset(bootstrap, topic, seq_len=24, batch_size=2, tokenizer=tagged,
                           eos_id=1, last_batch="pad", chunk=8, **kw)
    if state:
        ds.load_state_dict(state)
    return ds


def _order(tokens: list[int]) -> list[int]:
    """Document numbers in the order their first token arrives."""
    seen: dict[int, None] = {}
    for t in tokens:
        if t != 1:
            seen.setdefault((t - 2) // 10000, None)
    return list(seen)


def _key(b: dict[str, Any]) -> str:
    m = b.get("attention_mask")
    return json.dumps([b["input_ids"].tolist() if hasattr(b["input_ids"], "tolist")
                       else b["input_ids"], None if m is None else
                       (m.tolist() if hasattr(m, "tolist") else m)])


def test_permutations_are_seeded_and_blocks_tile_the_range() -> None:
    for n in (0, 1, 2, 17, 300):
        p = permute(n, 3, "x")
        assert sorted(p) == list(range(n)) and p == permute(n, 3, "x")
    assert permute(50, 1) != permute(50, 2) and permute(50, 1, 0) != permute(50, 1, 1)
    order, vstart = block_plan(7, 0, 3, 10, 75, 16)
    assert sorted(order) == [(10, 26), (26, 42), (42, 58), (58, 74), (74, 75)]
    assert order != sorted(order)  # this seed moves them
    assert vstart[0] == 10 and vstart[-1] == 75
    assert [b - a for a, b in order] == [y - x for x, y in zip(vstart, vstart[1:])]
    assert block_plan(7, 0, 3, 5, 5, 16) == ([], [5])


def test_every_record_once_in_a_seeded_order(bootstrap: str, topic: tuple[str, list[str]],
                                             backend: str) -> None:
    name, docs = topic
    plain = real(list(_ds(bootstrap, name, shuffle_seed=None, backend=backend)))
    a = real(list(_ds(bootstrap, name, backend=backend)))
    check_once(a, docs)
    assert a == real(list(_ds(bootstrap, name, backend=backend)))  # the seed decides
    b = real(list(_ds(bootstrap, name, shuffle_seed=12, backend=backend)))
    check_once(b, docs)
    assert _order(a) != _order(b) != _order(plain) and _order(a) != _order(plain)
    # Shuffled within partitions too, not only reordered blocks: long runs of consecutive
    # offsets (documents i, i+5, ... of one partition, see _fill) would say otherwise.
    o = _order(a)
    asc = sum(1 for x, y in zip(o, o[1:]) if y > x)
    assert 0.3 < asc / len(o) < 0.7, asc
    ds = _ds(bootstrap, name, backend=backend)
    e0 = real(list(ds))
    ds.set_epoch(1)
    e1 = real(list(ds))
    check_once(e1, docs)
    assert e0 == a and _order(e1) != _order(e0)


def _stream(bootstrap: str, name: str, world: int, workers: int, **kw: Any
            ) -> dict[int, list[str]]:
    base = _ds(bootstrap, name, **kw)
    out = {}
    for r in range(world):
        for k in range(workers):
            rd = _reader(base, r, world, k, workers)
            out[r * workers + k] = [_key(b) for b in rd]
    return out


@pytest.mark.parametrize(("seed", "shuffle"), [(1, 11), (2, 11), (3, 11), (1, None), (2, None)])
def test_random_stops_resume_the_uninterrupted_stream(bootstrap: str,
                                                      topic: tuple[str, list[str]],
                                                      seed: int, shuffle: int | None) -> None:
    """Same layout: every reader's batches after any number of stops (taken counts chosen at
    random, including 0 and 'all'), states merged in random order through JSON, equal the
    uninterrupted reader's batches, in order. Shuffled and in offset order (where merging a
    stale copy of another reader's round-robin entry once changed the interleave)."""
    rng = random.Random(seed)
    name, docs = topic
    world, workers = rng.randint(1, 2), rng.randint(2, 3)
    block = rng.choice((1, 5, 16, 64))
    kw = {"shuffle_block": block, "shuffle_seed": shuffle}
    whole = _stream(bootstrap, name, world, workers, **kw)
    got, state = random_stops(lambda st: _ds(bootstrap, name, st, **kw), world, workers, rng,
                              (0, 1, 2, 3, 7, 10**6), _key)
    assert _ds(bootstrap, name, state, **kw).epoch == 1
    assert got == whole, (world, workers, block)
    tokens = real([json_batch(k) for g in sorted(got) for k in got[g]])
    check_once(tokens, docs)
    assert sum(d for d, _ in state["delivered"].values()) == len(docs)
    assert sum(t for _, t in state["delivered"].values()) == len(tokens)


def test_a_range_of_batches_is_skipped_deterministically(bootstrap: str,
                                                         topic: tuple[str, list[str]]) -> None:
    """Skip the batches around a loss spike: resume, take a range without training
    (update only), go on: the uninterrupted stream without exactly that range; the state
    counts what left the feed, per partition, as documents and tokens."""
    name, docs = topic
    whole = list(_ds(bootstrap, name))
    ds = _ds(bootstrap, name)
    it = iter(ds)
    head = [next(it) for _ in range(4)]
    it.close()
    st = json.loads(json.dumps(ds.state_dict()))
    assert ds.delivered["tokens"] == len(real(head)) and ds.delivered["docs"] <= len(docs)
    again = _ds(bootstrap, name, st)
    rest = list(again)
    assert [_key(b) for b in head + rest] == [_key(b) for b in whole]
    assert again.delivered["tokens"] == len(real(whole)) and again.delivered["docs"] == len(docs)
    spike = _ds(bootstrap, name, st)
    out = []
    for i, b in enumerate(spike):
        if i < 3:  # the three batches after the checkpoint are skipped
            continue
        out.append(b)
    assert [_key(b) for b in out] == [_key(b) for b in whole[7:]]
    assert spike.delivered["tokens"] == len(real(whole))
    assert spike.delivered["docs"] == len(docs)


def random_stops(make: Callable[[dict[str, Any] | None], KafkaTokenDataset], world: int,
                 workers: int, rng: random.Random, takes: tuple[int, ...],
                 key: Callable[[dict[str, Any]], str]) -> tuple[dict[int, list[str]], dict[str, Any]]:
    """Rounds of one layout: every reader takes a random number of batches (from ``takes``),
    the states are merged in random order through JSON and resumed, until the epoch ends.
    Returns each reader's batches (as ``key``) and the last merged state."""
    got: dict[int, list[str]] = {g: [] for g in range(world * workers)}
    state: dict[str, Any] = {}
    for _ in range(40):
        base = make(state or None)
        if base.epoch == 1:
            break
        states = []
        for r in range(world):
            for k in range(workers):
                rd = _reader(base, r, world, k, workers)
                it = iter(rd)
                for _, b in zip(range(rng.choice(takes)), it):
                    got[r * workers + k].append(key(b))
                it.close()
                states.append(rd.state_dict())
        rng.shuffle(states)
        state = json.loads(json.dumps(merge_state_dicts(states)))
    return got, state


def json_batch(k: str) -> dict[str, Any]:
    ids, mask = json.loads(k)
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("seed", [4, 5])
def test_random_layouts_deliver_each_record_once(bootstrap: str, topic: tuple[str, list[str]],
                                                 seed: int) -> None:
    """Elastic: states taken under one layout resumed under another, at random."""
    rng = random.Random(seed)
    name, docs = topic
    state: dict[str, Any] | None = None
    tokens: list[int] = []
    for _ in range(30):
        base = _ds(bootstrap, name, state)
        if base.epoch == 1:
            break
        world, workers = rng.randint(1, 3), rng.randint(1, 3)
        states = []
        for r in range(world):
            for k in range(workers):
                rd = _reader(base, r, world, k, workers)
                it = iter(rd)
                for _, b in zip(range(rng.choice((0, 1, 2, 4, 10**6))), it):
                    tokens += real([b])
                it.close()
                states.append(rd.state_dict())
        state = merge_state_dicts(states)
    else:
        tokens += real(list(_ds(bootstrap, name, state)))
    check_once(tokens, docs)
    if state is not None:  # the merged states count each document and token once
        assert sum(d for d, _ in state["delivered"].values()) == len(docs)
        assert sum(t for _, t in state["delivered"].values()) == len(tokens)


def test_blocks_ending_in_transaction_markers(bootstrap: str, backend: str) -> None:
    """Commit markers take offsets: blocks end on markers or hold them; nothing hangs, every
    committed record once, and a resume inside a block continues the same stream."""
    docs = _docs(200, 9)
    name = _fill(bootstrap, 3, docs, transactional=True)
    kw = {"backend": backend, "shuffle_block": 7, "settings": {"isolation.level": "read_committed"}}
    whole = [_key(b) for b in _ds(bootstrap, name, **kw)]
    check_once(real([json_batch(k) for k in whole]), docs)
    ds = _ds(bootstrap, name, **kw)
    it = iter(ds)
    head = [_key(next(it)) for _ in range(5)]
    it.close()
    rest = [_key(b) for b in _ds(bootstrap, name, ds.state_dict(), **kw)]
    assert head + rest == whole


def test_readers_without_data_and_an_empty_topic(bootstrap: str, topic: tuple[str, list[str]]
                                                 ) -> None:
    name, docs = topic
    base = _ds(bootstrap, name)
    readers = [_reader(base, r, 4, k, 2) for r in range(4) for k in range(2)]  # 8 > 5 parts
    got = [real(list(rd)) for rd in readers]
    assert [len(g) > 0 for g in got] == [True] * 5 + [False] * 3
    check_once([t for g in got for t in g], docs)
    empty = make_topic(bootstrap, f"sh-empty-{uuid.uuid4().hex[:6]}", partitions=2)
    ds = _ds(bootstrap, empty)
    assert list(ds) == [] and ds.state_dict()["shuffle"] == {"seed": 11, "block": 16}


def test_state_of_another_shuffle_is_refused(bootstrap: str, topic: tuple[str, list[str]]) -> None:
    name, _ = topic
    ds = _ds(bootstrap, name)
    it = iter(ds)
    next(it)
    it.close()
    st = ds.state_dict()
    for kw in ({"shuffle_seed": None}, {"shuffle_seed": 12}, {"shuffle_block": 17}):
        with pytest.raises(LayoutError, match="field 'shuffle'.*shuffle_seed"):
            _ds(bootstrap, name, st, **kw)
    plain = _ds(bootstrap, name, shuffle_seed=None)
    with pytest.raises(LayoutError, match="field 'shuffle'"):
        _ds(bootstrap, name, plain.state_dict())
    bad = copy.deepcopy(st)
    bad["shuffle"] = {"seed": -1, "block": 16}
    with pytest.raises(LayoutError, match="shuffle.seed"):
        _ds(bootstrap, name, bad)
    old = copy.deepcopy(plain.state_dict())
    del old["shuffle"]  # a state written before the field existed: unshuffled
    _ds(bootstrap, name, old, shuffle_seed=None)
    for bad_kw in ({"shuffle_seed": True}, {"shuffle_seed": -3}, {"shuffle_block": 0}):
        with pytest.raises(ValueError, match="shuffle_"):
            _ds(bootstrap, name, **bad_kw)


def test_records_gone_from_a_shuffled_epoch_are_refused_even_with_skip(bootstrap: str) -> None:
    docs = _docs(120, 3)
    name = _fill(bootstrap, 2, docs)
    ds = _ds(bootstrap, name)
    it = iter(ds)
    next(it)
    it.close()
    st = ds.state_dict()
    _delete_records(bootstrap, name, {0: 30})
    for how in ("error", "skip"):
        with pytest.raises(LayoutError, match="shuffled epoch cannot skip"):
            _ds(bootstrap, name, st, on_missing=how)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_stop_and_resume_the_same_batches(
        bootstrap: str, topic: tuple[str, list[str]], start_method: str) -> None:
    """The docs' loop with 2 DataLoader workers: stopped after 3 batches, the checkpoint
    through JSON into a new DataLoader; per worker, the batches equal the uninterrupted
    2-worker run's, in order."""
    pytest.importorskip("torch")
    name, docs = topic
    taken, _ = dataloader_stop_resume(lambda st: _ds(bootstrap, name, st), start_method,
                                      _key)
    check_once(real(taken), docs)


def dataloader_stop_resume(make: Callable[[dict[str, Any] | None], KafkaTokenDataset],
                           start_method: str, key: Callable[[dict[str, Any]], str]
                           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The docs' loop with DataLoader(num_workers=2): the uninterrupted run, and a run
    stopped after 3 batches, its state through JSON into a new dataset and DataLoader; per
    reader (worker) the two give the same batches in the same order. Returns (taken,
    uninterrupted)."""
    from torch.utils.data import DataLoader

    def loader(ds: KafkaTokenDataset) -> Any:
        return DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=start_method)

    def per_reader(batches: list[dict[str, Any]]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for b in batches:
            out.setdefault(b["kafka_state"]["reader"], []).append(key(b))
        return out

    whole = list(loader(make(None)))
    ds = make(None)
    taken = []
    for batch in loader(ds):
        taken.append(batch)
        ds.update(batch)
        if len(taken) == 3:
            break
    again = make(json.loads(json.dumps({"feed": ds.state_dict()}))["feed"])
    for batch in loader(again):
        taken.append(batch)
        again.update(batch)
    assert per_reader(taken) == per_reader(whole)
    assert len({b["kafka_state"]["reader"] for b in taken}) == 2
    return taken, whole
