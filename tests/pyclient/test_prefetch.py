"""pyclient.prefetch.Prefetcher on the real broker: a StatefulDataLoader (2 workers, fork
and spawn) behind it stops at random batches, checkpoints through the Prefetcher and resumes
to exactly the batches of the run that never stopped; errors, breaks and the reader with no
data."""

from __future__ import annotations

import json
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers import corpus, make_topic
from pyclient.dataset import KafkaTokenDataset
from pyclient.prefetch import Prefetcher, PrefetchError
from pyclient.producer import Ingestor

torch = pytest.importorskip("torch")
sdl = pytest.importorskip("torchdata.stateful_dataloader")
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

SEQ, BATCH = 48, 2


@pytest.fixture(scope="module")
def topic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = make_topic(bootstrap, f"prefetch-{uuid.uuid4().hex[:8]}", partitions=4)
    f = tmp_path_factory.mktemp("prefetch") / "docs.txt"
    corpus(f, 400)
    assert Ingestor(bootstrap, name, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return name


def _loader(bootstrap: str, name: str, ctx: str | None, state: Any = None) -> Any:
    ds = KafkaTokenDataset(bootstrap, name, seq_len=SEQ, batch_size=BATCH, tokenizer="bytes",
                           last_batch="pad")
    dl = sdl.StatefulDataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=ctx)
    if state is not None:
        dl.load_state_dict(state)
    return dl


def _rows(b: dict[str, Any]) -> list[list[int]]:
    return [[t for t, k in zip(r, m) if k] for r, m in
            zip(b["input_ids"].tolist(), b["attention_mask"].tolist())]


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_resumes_to_the_uninterrupted_batches_at_random_stops(
        bootstrap: str, topic: str, ctx: str) -> None:
    """Stop after a random number of batches (0 included), save the Prefetcher's state as
    JSON, resume in a new loader and Prefetcher, again, to the end: the batches equal the
    loader's alone (no Prefetcher, never stopped), batch by batch, and the state after the
    end resumes as the loader's own end state does (StatefulDataLoader: another pass).
    With the loader's own state_dict() (fetched ahead) the test fails."""
    dl = _loader(bootstrap, topic, ctx)
    whole = [_rows(b) for b in dl]
    end = dl.state_dict()
    del dl
    assert len(whole) > 20
    rnd = random.Random(f"prefetch-{ctx}")
    got: list[list[list[int]]] = []
    state = None
    stops = 0
    while True:
        pf = Prefetcher(_loader(bootstrap, topic, ctx, state), depth=rnd.choice([1, 2, 4]))
        k = rnd.choice([0, 1, rnd.randint(2, 250)])  # 0: saved again before any batch
        ended = k > 0
        for b in pf if k else ():
            assert not b["input_ids"].is_shared()  # own_memory: copied out of shared memory
            got.append(_rows(b))
            k -= 1
            if k == 0:
                ended = False
                break
        state = json.loads(json.dumps(pf.state_dict()))
        if ended:
            break
        stops += 1
    assert stops >= 3
    assert got == whole
    assert ([_rows(b) for b in Prefetcher(_loader(bootstrap, topic, ctx, state))]
            == [_rows(b) for b in _loader(bootstrap, topic, ctx, end)])


def test_the_reader_with_no_data(bootstrap: str, topic_name: str) -> None:
    """An empty topic: no batch, a state that resumes to none, the thread gone."""
    make_topic(bootstrap, topic_name, partitions=2)
    pf = Prefetcher(_loader(bootstrap, topic_name, None))
    assert list(pf) == []
    assert list(Prefetcher(_loader(bootstrap, topic_name, None, pf.state_dict()))) == []
    assert not [t for t in threading.enumerate() if t.name == "pyclient-prefetch"]


class _Failing(IterableDataset):  # type: ignore[misc]
    """Yields ``n`` batches, then raises."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        for i in range(self.n):
            yield {"i": torch.tensor([i])}
        raise ValueError("bad record at 5")


@pytest.mark.parametrize("workers", [0, 1])
def test_an_error_comes_after_the_batches_before_it(workers: int) -> None:
    pf = Prefetcher(DataLoader(_Failing(5), batch_size=None, num_workers=workers), depth=3)
    taken = []
    with pytest.raises(ValueError, match="bad record at 5"):
        for b in pf:
            taken.append(int(b["i"]))
    assert taken == [0, 1, 2, 3, 4]
    assert not [t for t in threading.enumerate() if t.name == "pyclient-prefetch"]


def test_a_break_ends_the_thread_and_the_next_epoch_starts_over() -> None:
    class Ten(IterableDataset):  # type: ignore[misc]
        def __iter__(self) -> Any:
            return iter(range(10))

    pf = Prefetcher(DataLoader(Ten(), batch_size=None, num_workers=1), depth=2)
    for b in pf:
        if b == 3:
            break
    assert not [t for t in threading.enumerate() if t.name == "pyclient-prefetch"]
    assert [int(b) for b in pf] == list(range(10))


def test_misuse_is_refused_with_the_fix(bootstrap: str, topic: str, tmp_path: Path) -> None:
    with pytest.raises(PrefetchError, match="depth must be an int >= 1"):
        Prefetcher([], depth=0)
    plain = Prefetcher(DataLoader(list(range(3)), batch_size=None))
    assert list(plain) == [0, 1, 2]
    with pytest.raises(PrefetchError, match="has no state_dict.*StatefulDataLoader"):
        plain.state_dict()
    pf = Prefetcher(_loader(bootstrap, topic, None))
    it = iter(pf)
    next(it)
    with pytest.raises(PrefetchError, match="while iterating"):
        pf.load_state_dict({})
    with pytest.raises(PrefetchError, match="already being iterated"):
        next(iter(pf))
    del it
