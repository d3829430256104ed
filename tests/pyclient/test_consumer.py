"""FeedConsumer against the real broker: partition split, manual offsets, long steps,
rebalances."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import corpus, make_topic
from pyclient.consumer import FeedConsumer, reader_index, split_partitions
from pyclient.producer import Ingestor


@pytest.mark.parametrize("parts,world,workers", [
    (p, w, k) for p in (1, 4, 7, 12) for w, k in ((1, 1), (2, 1), (2, 3), (4, 2)) if p >= w * k])
def test_split_covers_every_partition_once(parts: int, world: int, workers: int) -> None:
    seen: list[int] = []
    for rank in range(world):
        for w in range(workers):
            g, n = reader_index(rank, world, w, workers)
            seen.extend(split_partitions(list(range(parts)), g, n))
    assert sorted(seen) == list(range(parts))


def _fill(bootstrap: str, topic: str, tmp_path: Path, n: int, parts: int) -> list[bytes]:
    make_topic(bootstrap, topic, partitions=parts)
    f = tmp_path / "c.txt"
    docs = corpus(f, n)
    # Spread records evenly (no sticky batching) so every partition has plenty.
    assert Ingestor(bootstrap, topic, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return [d.encode() for d in docs]


def test_commit_only_what_was_taken(bootstrap: str, backend: str, topic_name: str,
                                   tmp_path: Path) -> None:
    docs = _fill(bootstrap, topic_name, tmp_path, 2000, 3)
    s = {"group.id": f"g-{topic_name}"}
    with FeedConsumer(bootstrap, topic_name, settings=s, backend=backend, stop_at_end=True) as c:
        first = c.consume(700, timeout=30)
        assert len(first) == 700
        pos = c.commit()
        assert sum(pos.values()) == 700
        c.consume(300, timeout=30)  # taken but never committed
    with FeedConsumer(bootstrap, topic_name, settings=s, backend=backend, stop_at_end=True) as c:
        assert c.committed() == pos
        rest = []
        while not c.at_end():
            rest.extend(c.consume(5000, timeout=5))
    got = [r.value for r in first + rest]
    assert len(got) == 2000 and sorted(got) == sorted(docs)


def test_strict_order_is_round_robin_and_repeatable(bootstrap: str, topic_name: str,
                                                    tmp_path: Path) -> None:
    _fill(bootstrap, topic_name, tmp_path, 1500, 3)
    runs = []
    for _ in range(2):
        with FeedConsumer(bootstrap, topic_name, stop_at_end=True) as c:
            seq = []
            while not c.at_end():
                seq.extend((r.partition, r.offset) for r in c.consume(97, timeout=5))
            runs.append(seq)
    assert runs[0] == runs[1] and len(runs[0]) == 1500
    head = [p for p, _ in runs[0][:9]]
    assert head == [0, 1, 2] * 3


def test_long_step_beyond_max_poll_interval(bootstrap: str, backend: str, topic_name: str,
                                            tmp_path: Path) -> None:
    """A step longer than max.poll.interval.ms (a slow checkpoint save) neither loses nor
    repeats records: the feed uses assign(), so there is no group membership to lose."""
    docs = _fill(bootstrap, topic_name, tmp_path, 600, 2)
    s = {"group.id": f"g-{topic_name}", "session.timeout.ms": 6000, "max.poll.interval.ms": 6000,
         "heartbeat.interval.ms": 1000}
    got = []
    with FeedConsumer(bootstrap, topic_name, settings=s, backend=backend, stop_at_end=True) as c:
        got.extend(c.consume(100, timeout=30))
        c.commit()
        time.sleep(7.5)  # longer than max.poll.interval.ms
        while not c.at_end():
            got.extend(c.consume(1000, timeout=5))
        c.commit()
        assert sum(v for v in c.committed().values() if v) == 600
    vals = [r.value for r in got]
    assert len(vals) == 600 and sorted(vals) == sorted(docs)


def test_group_rebalance_loses_and_repeats_nothing(bootstrap: str, backend: str, topic_name: str,
                                                  tmp_path: Path) -> None:
    """A second member joins mid-stream: revoked partitions' positions are committed in the
    rebalance callback and their unreturned records dropped, so the union is exact."""
    docs = _fill(bootstrap, topic_name, tmp_path, 3000, 4)
    s = {"group.id": f"g-{topic_name}", "session.timeout.ms": 6000,
         "heartbeat.interval.ms": 500}
    a = FeedConsumer(bootstrap, topic_name, settings=s, backend=backend, group_subscribe=True)
    got_a: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got_a) < 500 and time.monotonic() < deadline:
        got_a.extend(r.value for r in a.consume(50, timeout=1))
    b = FeedConsumer(bootstrap, topic_name, settings=s, backend=backend, group_subscribe=True)
    got_b: list[bytes] = []
    deadline = time.monotonic() + 90
    idle = 0
    b_parts: set[int] = set()
    while len(got_a) + len(got_b) < 3000 or idle < 3:
        if time.monotonic() > deadline:
            break
        x = a.consume(50, timeout=0.5)
        y = b.consume(50, timeout=0.5)
        got_a.extend(r.value for r in x)
        got_b.extend(r.value for r in y)
        b_parts.update(b.positions)
        idle = idle + 1 if not x and not y else 0
    a.close()
    b.close()
    assert b_parts and got_b, "the second member never got partitions"
    allv = got_a + got_b
    assert len(allv) == 3000, f"{len(allv)} records, {len(allv) - len(set(allv))} repeated"
    assert sorted(allv) == sorted(docs)
