"""Elastic resume, property style: seeded random sequences of layouts (W ranks x K workers),
random stops of every reader, states merged and resumed under the next layout, until the
epoch is complete; every record of the epoch must be delivered exactly once. Plus a
50-partition topic fed to 256 readers and back."""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

import pytest

from helpers import make_topic
from pyclient.dataset import KafkaTokenDataset, merge_state_dicts
from test_dataset import check_once, real, tagged


def _fill(bootstrap: str, parts: int, n: int, seed: int) -> tuple[str, list[str]]:
    import confluent_kafka as ck

    name = make_topic(bootstrap, f"el-{uuid.uuid4().hex[:8]}", partitions=parts)
    rng = random.Random(seed)
    docs = [f"doc-{i:06d} " + "z" * rng.choice((0, 3, 30, 200, 700)) for i in range(n)]
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for d in docs:  # uneven partitions: partition k gets weight k+1
        p.produce(name, d.encode(), partition=rng.choices(range(parts), range(1, parts + 1))[0])
    assert p.flush(30) == 0
    return name, docs


def _base(bootstrap: str, topic: str, state: dict[str, Any] | None) -> KafkaTokenDataset:
    ds = KafkaTokenDataset(bootstrap, topic, seq_len=32, batch_size=2, tokenizer=tagged,
                           eos_id=1, last_batch="pad", chunk=8)
    if state:
        ds.load_state_dict(state)
    return ds


def _reader(base: KafkaTokenDataset, rank: int, world: int, worker: int,
            workers: int) -> KafkaTokenDataset:
    """What KafkaTokenDataset(..., rank=, world_size=, worker_id=, num_workers=) builds,
    without probing the topic again for each of hundreds of readers."""
    r = copy.deepcopy(base)
    r.rank, r.world_size, r._explicit_world = rank, world, True
    r._worker_id, r._num_workers = worker, workers
    return r


def _round(base: KafkaTokenDataset, world: int, workers: int, take: Any) -> tuple[list[int], dict[str, Any]]:
    tokens: list[int] = []
    states = []
    for rank in range(world):
        for worker in range(workers):
            r = _reader(base, rank, world, worker, workers)
            it = iter(r)
            n = take()
            for _, b in zip(range(n), it):
                tokens += real([b])
            it.close()
            states.append(r.state_dict())
    return tokens, merge_state_dicts(states)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_stops_and_layouts_deliver_each_record_once(bootstrap: str, seed: int) -> None:
    rng = random.Random(seed)
    topic, docs = _fill(bootstrap, 7, 250, seed)
    state: dict[str, Any] | None = None
    tokens: list[int] = []
    layouts = []
    for _ in range(12):
        world, workers = rng.randint(1, 3), rng.randint(1, 3)
        layouts.append((world, workers))
        got, state = _round(_base(bootstrap, topic, state), world, workers,
                            lambda: rng.choice((0, 1, 2, 5, 20, 10**6)))
        tokens += got
        if _base(bootstrap, topic, state).epoch == 1:
            break
    else:  # finish whatever is left with one reader
        got, state = _round(_base(bootstrap, topic, state), 1, 1, lambda: 10**6)
        tokens += got
        assert _base(bootstrap, topic, state).epoch == 1
    check_once(tokens, docs)
    assert len(layouts) >= 2, layouts


def test_fifty_partitions_feed_256_readers_and_back(bootstrap: str) -> None:
    topic, docs = _fill(bootstrap, 50, 1500, 7)
    tokens, state = _round(_base(bootstrap, topic, None), 1, 1, lambda: 40)
    got, state = _round(_base(bootstrap, topic, state), 64, 4, lambda: 3)
    assert got
    tokens += got
    got, state = _round(_base(bootstrap, topic, state), 3, 1, lambda: 10**6)
    tokens += got
    check_once(tokens, docs)
    assert _base(bootstrap, topic, state).epoch == 1
