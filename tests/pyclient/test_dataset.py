"""Training feed against the real broker: exact packing, data-parallel split, resume after
a kill, world-size change, tokenizers; all without torch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers import corpus, docs_of, flat, ids, make_topic
from pyclient import dataset as ds_mod
from pyclient.dataset import (FeedState, KafkaTokenDataset, LayoutError, merge_state_dicts)
from pyclient.producer import Ingestor

N_DOCS, PARTS = 1200, 4


@pytest.fixture(scope="module")
def feed_topic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    topic = make_topic(bootstrap, f"feed-{uuid.uuid4().hex[:8]}", partitions=PARTS)
    f = tmp_path_factory.mktemp("feed") / "docs.txt"
    docs = corpus(f, N_DOCS)
    assert Ingestor(bootstrap, topic, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return topic, docs


def leftover(state: dict[str, Any]) -> list[int]:
    return [t for g in sorted(state["readers"], key=int) for t in state["readers"][g]["tokens"]]


def test_torch_is_optional() -> None:
    if ds_mod.torch is None:
        assert KafkaTokenDataset.__mro__[1] is object
    else:  # pragma: no cover - only where torch is installed
        assert issubclass(KafkaTokenDataset, ds_mod.torch.utils.data.IterableDataset)


def test_batches_are_tensors_with_torch_and_lists_without(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = list(range(12))
    rows = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    if ds_mod.torch is not None:
        t = ds_mod.as_batch(tokens, 3, 4)
        assert t.dtype == ds_mod.torch.int64 and t.tolist() == rows
    monkeypatch.setattr(ds_mod, "torch", None)  # what a host without torch runs
    assert ds_mod.as_batch(tokens, 3, 4) == rows


def test_packs_every_document_exactly_once(bootstrap: str, backend: str,
                                           feed_topic: tuple[str, list[str]]) -> None:
    topic, docs = feed_topic
    ds = KafkaTokenDataset(bootstrap, topic, seq_len=64, batch_size=4, backend=backend)
    batches = list(ds)
    assert batches and all(len(ids(b)) == 4 and all(len(s) == 64 for s in ids(b))
                           for b in batches)
    state = ds.state_dict()
    assert len(leftover(state)) < 64 * 4
    assert sorted(docs_of(flat(batches) + leftover(state))) == sorted(docs)


def test_ranks_and_workers_split_without_overlap(bootstrap: str,
                                                 feed_topic: tuple[str, list[str]]) -> None:
    topic, docs = feed_topic
    seen: list[str] = []
    for rank in range(2):
        for worker in range(2):
            ds = KafkaTokenDataset(bootstrap, topic, seq_len=32, batch_size=2, rank=rank,
                                   world_size=2, worker_id=worker, num_workers=2)
            batches = list(ds)
            st = ds.state_dict()
            assert list(st["readers"]) == [str(rank * 2 + worker)]
            part = docs_of(flat(batches) + leftover(st))
            assert part, f"reader {rank}/{worker} got nothing"
            seen.extend(part)
    assert len(seen) == len(set(seen)) == N_DOCS and sorted(seen) == sorted(docs)


def test_more_readers_than_partitions_is_refused(bootstrap: str,
                                                 feed_topic: tuple[str, list[str]]) -> None:
    ds = KafkaTokenDataset(bootstrap, feed_topic[0], seq_len=8, batch_size=1, rank=0,
                           world_size=3, num_workers=2, worker_id=0)
    with pytest.raises(LayoutError, match="4 partitions for 6 readers"):
        next(iter(ds))


CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pyclient.dataset import KafkaTokenDataset
    boot, topic, out, backend = sys.argv[1:5]
    ds = KafkaTokenDataset(boot, topic, seq_len=48, batch_size=2, backend=backend)
    with open(out, "w") as f:
        for b in ds:
            x = b["input_ids"]
            x = x.tolist() if hasattr(x, "tolist") else x
            f.write(json.dumps({"tokens": [t for s in x for t in s],
                                "state": b["kafka_state"]}) + "\\n")
            f.flush()
            os.fsync(f.fileno())
            time.sleep(0.02)   # a training step
""")


def test_resume_after_kill_continues_with_the_next_record(
        bootstrap: str, backend: str, feed_topic: tuple[str, list[str]], tmp_path: Path) -> None:
    topic, _ = feed_topic
    ref_ds = KafkaTokenDataset(bootstrap, topic, seq_len=48, batch_size=2, backend=backend)
    reference = flat(list(ref_ds)) + leftover(ref_ds.state_dict())

    out = tmp_path / "steps.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, bootstrap, topic, str(out), backend])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 40:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the child finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    steps = [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]
    assert len(steps) >= 40
    seen = [t for s in steps for t in s["tokens"]]  # what training took before the kill

    ds = KafkaTokenDataset(bootstrap, topic, seq_len=48, batch_size=2, backend=backend)
    ds.load_state_dict(steps[-1]["state"])
    rest = flat(list(ds)) + leftover(ds.state_dict())
    assert seen + rest == reference  # no record skipped, none repeated, same order


def test_world_size_change_needs_merged_state(bootstrap: str,
                                              feed_topic: tuple[str, list[str]]) -> None:
    topic, docs = feed_topic
    emitted, states = {}, []
    for rank in range(2):
        ds = KafkaTokenDataset(bootstrap, topic, seq_len=40, batch_size=2, rank=rank, world_size=2)
        tracker = FeedState()
        took = []
        for i, b in enumerate(ds):
            took.append(b)
            tracker.update(b)
            if i == 9:
                break
        emitted[rank] = flat(took)
        states.append(tracker.state_dict())

    one = KafkaTokenDataset(bootstrap, topic, seq_len=40, batch_size=2, rank=0, world_size=1)
    one.load_state_dict(states[0])
    with pytest.raises(LayoutError, match="merge_state_dicts"):
        next(iter(one))

    merged = merge_state_dicts(states)
    one = KafkaTokenDataset(bootstrap, topic, seq_len=40, batch_size=2, rank=0, world_size=1)
    one.load_state_dict(merged)
    new = flat(list(one)) + leftover(one.state_dict())
    l0, l1 = (len(merged["readers"][g]["tokens"]) for g in ("0", "1"))
    streams = [emitted[0] + new[:l0], emitted[1] + new[l0:l0 + l1], new[l0 + l1:]]
    seen = [d for s in streams for d in docs_of(s)]
    assert len(seen) == N_DOCS and sorted(seen) == sorted(docs)


def test_hugging_face_tokenizer(bootstrap: str, feed_topic: tuple[str, list[str]]) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    topic, docs = feed_topic
    words = sorted({w for d in docs for w in d.split()})
    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    ds = KafkaTokenDataset(bootstrap, topic, seq_len=16, batch_size=4, tokenizer=tok, eos_id=1)
    tokens = flat(list(ds)) + leftover(ds.state_dict())
    assert 0 not in tokens  # every word known
    assert tokens.count(1) == N_DOCS
    assert len(tokens) == sum(len(d.split()) + 1 for d in docs)
