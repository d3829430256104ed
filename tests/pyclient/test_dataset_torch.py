"""The training feed through torch's own DataLoader with worker processes: tensors, an exact
per-worker split, and a resume from the state of the batches the loop took. Runs where torch
is installed (`make deps` installs the `torch` extra)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from helpers import corpus, docs_of, flat, make_topic
from pyclient.dataset import FeedState, KafkaTokenDataset
from pyclient.producer import Ingestor

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

SEQ, BATCH, WORKERS = 40, 3, 2


@pytest.fixture(scope="module")
def topic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    name = make_topic(bootstrap, f"torch-{uuid.uuid4().hex[:8]}", partitions=4)
    f = tmp_path_factory.mktemp("torch") / "docs.txt"
    docs = corpus(f, 900)
    assert Ingestor(bootstrap, name, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return name, docs


def _dataset(bootstrap: str, name: str, **kw: Any) -> KafkaTokenDataset:
    return KafkaTokenDataset(bootstrap, name, seq_len=SEQ, batch_size=BATCH, **kw)


def _reader(batch: dict[str, Any]) -> str:
    (g,) = batch["kafka_state"]["readers"]
    return g


def _tail(bootstrap: str, name: str, state: dict[str, Any], worker: int) -> list[int]:
    """What reader ``worker`` still holds after ``state``: its batches and its leftover,
    read in this process with the same layout."""
    ds = _dataset(bootstrap, name, worker_id=worker, num_workers=WORKERS)
    ds.load_state_dict(state)
    out = flat(list(ds))
    return out + list(ds.state_dict()["readers"][str(worker)]["tokens"])


def test_dataloader_workers_resume_exactly(bootstrap: str, topic: tuple[str, list[str]]) -> None:
    name, docs = topic
    assert isinstance(_dataset(bootstrap, name), IterableDataset)

    # Reference: each worker's whole stream, read in this process.
    reference = {str(w): _tail(bootstrap, name, {}, w) for w in range(WORKERS)}
    seen = [d for w in reference for d in docs_of(reference[w])]
    assert len(seen) == len(docs) and sorted(seen) == sorted(docs)  # split: exact, disjoint

    # Train for 8 batches with 2 worker processes (they prefetch ahead), then stop.
    got: dict[str, list[int]] = {str(w): [] for w in range(WORKERS)}
    tracker = FeedState()
    loader = DataLoader(_dataset(bootstrap, name), batch_size=None, num_workers=WORKERS)
    for i, batch in enumerate(loader):
        x = batch["input_ids"]
        assert isinstance(x, torch.Tensor) and x.shape == (BATCH, SEQ) and x.dtype == torch.int64
        got[_reader(batch)].extend(x.flatten().tolist())
        tracker.update(batch)
        if i == 7:
            break
    del loader  # workers stop
    state = tracker.state_dict()
    assert sorted(state["readers"]) == ["0", "1"]

    # Resume in a new DataLoader from the state of the batches taken: to the end.
    ds = _dataset(bootstrap, name)
    ds.load_state_dict(state)
    for batch in DataLoader(ds, batch_size=None, num_workers=WORKERS):
        got[_reader(batch)].extend(batch["input_ids"].flatten().tolist())
        tracker.update(batch)  # the same tracker, as a training loop keeps one
    final = tracker.state_dict()
    for w in map(str, range(WORKERS)):
        # No record skipped, none repeated, same order: taken before + after + what is left.
        assert got[w] + _tail(bootstrap, name, final, int(w)) == reference[w]
