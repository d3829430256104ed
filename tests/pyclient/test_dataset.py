"""Training feed against the real broker, without DataLoader: exact packing, the
data-parallel split, resume after a kill, layout changes, epochs, resume safety (retention,
recreated topic, foreign state), bounded state, tokenizers, flow control."""

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
from pyclient.admin import Admin
from pyclient.backends import KafkaKitError
from pyclient.dataset import KafkaTokenDataset, LayoutError, merge_state_dicts
from pyclient.producer import Ingestor

N_DOCS, PARTS = 1200, 4


@pytest.fixture(scope="module")
def feed_topic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    topic = make_topic(bootstrap, f"feed-{uuid.uuid4().hex[:8]}", partitions=PARTS)
    f = tmp_path_factory.mktemp("feed") / "docs.txt"
    docs = corpus(f, N_DOCS)
    assert Ingestor(bootstrap, topic, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return topic, docs


def real(batches: list[dict[str, Any]]) -> list[int]:
    """The tokens of batches without padding (last_batch='pad')."""
    out: list[int] = []
    for b in batches:
        m = b.get("attention_mask")
        for s, ms in zip(ids(b), ids({"input_ids": m}) if m is not None else [None] * 99):
            out.extend(s if ms is None else [t for t, k in zip(s, ms) if k])
    return out


def feed(bootstrap: str, topic: str, **kw: Any) -> KafkaTokenDataset:
    kw.setdefault("seq_len", 64)
    kw.setdefault("batch_size", 4)
    kw.setdefault("last_batch", "pad")
    return KafkaTokenDataset(bootstrap, topic, **kw)


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
    ds = feed(bootstrap, topic, backend=backend)
    batches = list(ds)
    assert batches and all(len(ids(b)) == 4 and all(len(s) == 64 for s in ids(b))
                           for b in batches)
    assert sorted(docs_of(real(batches))) == sorted(docs)
    # drop mode: the same batches minus the padded last one; at most one batch's tokens lost.
    dropped = list(feed(bootstrap, topic, backend=backend, last_batch="drop"))
    assert [ids(b) for b in dropped] == [ids(b) for b in batches[:-1]]


def test_ranks_and_workers_split_without_overlap_even_beyond_the_partitions(
        bootstrap: str, feed_topic: tuple[str, list[str]]) -> None:
    """2x2 readers share 4 partitions; 3x3 = 9 readers: 5 of them read nothing, and the
    data is still read exactly once."""
    topic, docs = feed_topic
    for world, workers in ((2, 2), (3, 3)):
        seen: list[str] = []
        empty = 0
        for rank in range(world):
            for worker in range(workers):
                ds = feed(bootstrap, topic, seq_len=32, batch_size=2, rank=rank,
                          world_size=world, worker_id=worker, num_workers=workers)
                part = docs_of(real(list(ds)))
                empty += not part
                seen.extend(part)
        assert empty == max(0, world * workers - PARTS)
        assert len(seen) == len(set(seen)) == N_DOCS and sorted(seen) == sorted(docs)


CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pyclient.dataset import KafkaTokenDataset
    boot, topic, out, backend = sys.argv[1:5]
    ds = KafkaTokenDataset(boot, topic, seq_len=48, batch_size=2, backend=backend,
                           last_batch="pad")
    with open(out, "w") as f:
        for b in ds:
            x = b["input_ids"]
            x = x.tolist() if hasattr(x, "tolist") else x
            f.write(json.dumps({"tokens": [t for s in x for t in s],
                                "state": ds.state_dict()}) + "\\n")
            f.flush()
            os.fsync(f.fileno())
            time.sleep(0.02)   # a training step
""")


def test_resume_after_kill_continues_with_the_next_record(
        bootstrap: str, backend: str, feed_topic: tuple[str, list[str]], tmp_path: Path) -> None:
    topic, _ = feed_topic
    reference = flat(list(feed(bootstrap, topic, seq_len=48, batch_size=2, backend=backend)))

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
    state = steps[-1]["state"]
    assert len(json.dumps(state)) < 1024  # offsets and positions, no tokens

    ds = feed(bootstrap, topic, seq_len=48, batch_size=2, backend=backend)
    ds.load_state_dict(json.loads(json.dumps(state)))  # as read back from a JSON checkpoint
    assert seen + flat(list(ds)) == reference  # no record skipped, none repeated, same order


def tagged(texts: list[str]) -> list[list[int]]:
    """A tokenizer whose every token names its document and position ("doc-000123 ..." ->
    123*10000 + 2 + j): a token seen twice or never is a record repeated or lost, however
    documents are split between batches, readers and resumes. EOS is 1."""
    return [[int(t[4:10]) * 10000 + 2 + j for j in range(len(t))] for t in texts]


def expected_tags(docs: list[str]) -> list[int]:
    return sorted(t for d in tagged(docs) for t in d)


def check_once(tokens: list[int], docs: list[str]) -> None:
    got = sorted(t for t in tokens if t != 1)
    assert len(got) == len(set(got)), "a token delivered twice"
    assert got == expected_tags(docs), "tokens missing"
    assert tokens.count(1) == len(docs)


def test_merged_rank_states_resume_under_any_world_size(
        bootstrap: str, feed_topic: tuple[str, list[str]]) -> None:
    """Rank 0 takes 10 batches, rank 1 none (it never yielded); their states merged (in
    either order, or rank 0's alone: the same) resume with 1 and with 3 ranks: exactly once."""
    topic, docs = feed_topic
    kw = {"seq_len": 40, "batch_size": 2, "tokenizer": tagged, "eos_id": 1}
    r0 = feed(bootstrap, topic, rank=0, world_size=2, **kw)
    it = iter(r0)
    taken = [next(it) for _ in range(10)]
    it.close()
    r1 = feed(bootstrap, topic, rank=1, world_size=2, **kw)
    states = [r0.state_dict(), r1.state_dict()]
    merged = merge_state_dicts(states)
    assert merge_state_dicts(states[::-1]) == merged == merge_state_dicts([states[0]])
    assert any(c[1] for c in merged["cursor"].values())  # stopped inside a document
    for world in (1, 3):
        tokens = real(taken)
        for rank in range(world):
            ds = feed(bootstrap, topic, rank=rank, world_size=world, **kw)
            ds.load_state_dict(merged)
            tokens += real(list(ds))
        check_once(tokens, docs)


def test_epochs_reread_the_recorded_range(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """Epoch 0's range is fixed when it starts: records written meanwhile wait for epoch 1;
    a state saved at an epoch's end resumes into the next epoch; a mid-epoch resume does not
    move where later epochs start."""
    make_topic(bootstrap, topic_name, partitions=2)
    f = tmp_path / "a.txt"
    docs = corpus(f, 300)
    assert Ingestor(bootstrap, topic_name, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    ds = feed(bootstrap, topic_name)
    g = tmp_path / "b.txt"
    g.write_text("".join(f"late-{i}\n" for i in range(50)))
    assert Ingestor(bootstrap, topic_name).run([str(g)]).ok  # after epoch 0 was planned
    it = iter(ds)
    first = [next(it) for _ in range(5)]
    it.close()
    mid = ds.state_dict()
    ds2 = feed(bootstrap, topic_name)
    ds2.load_state_dict(mid)
    e0 = first + list(ds2)
    assert sorted(docs_of(real(e0))) == sorted(docs)  # no late records in epoch 0
    assert list(ds2) == []  # iterating again without set_epoch: the epoch is finished
    end = ds2.state_dict()
    ds3 = feed(bootstrap, topic_name)
    ds3.load_state_dict(end)
    assert ds3.epoch == 1
    e1 = docs_of(real(list(ds3)))
    assert sorted(e1) == sorted(docs + [f"late-{i}" for i in range(50)])
    ds2.set_epoch(1)  # the mid-epoch resumed dataset: epoch 1 starts at the log start
    assert sorted(docs_of(real(list(ds2)))) == sorted(e1)
    with pytest.raises(ValueError, match="epoch 1 already"):
        ds2.set_epoch(0)


def test_a_fresh_feed_ignores_consumer_group_commits(bootstrap: str, topic_name: str,
                                                     tmp_path: Path) -> None:
    make_topic(bootstrap, topic_name, partitions=2)
    f = tmp_path / "a.txt"
    docs = corpus(f, 200)
    assert Ingestor(bootstrap, topic_name).run([str(f)]).ok
    from pyclient.consumer import FeedConsumer
    with FeedConsumer(bootstrap, topic_name, stop_at_end=True) as c:  # default group id
        c.consume(150, timeout=20)
        c.commit()
    assert sorted(docs_of(real(list(feed(bootstrap, topic_name))))) == sorted(docs)


def _delete_records(bootstrap: str, topic: str, upto: dict[int, int]) -> None:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap})
    for fut in a.delete_records([ck.TopicPartition(topic, p, o) for p, o in upto.items()]).values():
        fut.result(30)


def test_records_gone_below_the_state_fail_or_are_skipped_and_counted(
        bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    make_topic(bootstrap, topic_name, partitions=2)
    f = tmp_path / "a.txt"
    docs = corpus(f, 400)
    assert Ingestor(bootstrap, topic_name, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    ds = feed(bootstrap, topic_name, tokenizer=tagged, eos_id=1)
    it = iter(ds)
    taken = [next(it) for _ in range(3)]
    it.close()
    state = ds.state_dict()
    lost_to = {int(p): c[0] + 10 for p, c in state["cursor"].items()}
    _delete_records(bootstrap, topic_name, lost_to)  # retention passes the saved positions
    with pytest.raises(LayoutError, match=r"partition 0: next offset \d+.*log now \[\d+") as e:
        feed(bootstrap, topic_name, tokenizer=tagged, eos_id=1).load_state_dict(state)
    assert "partition 1" in str(e.value) and "on_missing='skip'" in str(e.value)
    ds = feed(bootstrap, topic_name, on_missing="skip", tokenizer=tagged, eos_id=1)
    ds.load_state_dict(state)
    assert ds.skipped_records == 20 and ds.state_dict()["skipped_records"] == 20
    got = [t for t in real(taken) + real(list(ds)) if t != 1]
    assert len(got) == len(set(got))  # nothing repeated
    # every document is whole except the 20 deleted ones and the <= 2 cut by the deletion
    whole = {d // 10000 for d in got}
    full = [n for n, d in enumerate(tagged(docs)) if set(d) <= set(got)]
    assert len(full) >= len(docs) - 22 and len(whole) >= len(docs) - 20


def test_recreated_topic_is_refused(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    make_topic(bootstrap, topic_name, partitions=2)
    f = tmp_path / "a.txt"
    corpus(f, 100)
    assert Ingestor(bootstrap, topic_name).run([str(f)]).ok
    ds = feed(bootstrap, topic_name)
    state = ds.state_dict()
    assert state["topic_id"]
    with Admin({"bootstrap.servers": bootstrap}) as a:
        a.delete_topic(topic_name)
    deadline = time.monotonic() + 60
    while True:  # deletion is asynchronous
        try:
            make_topic(bootstrap, topic_name, partitions=2)
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    # The same records again: the saved offsets are all valid, only the id tells.
    while True:  # the new topic's leaders and metadata may still be moving in
        try:
            if Ingestor(bootstrap, topic_name).run([str(f)]).ok:
                fresh = feed(bootstrap, topic_name)
                break
        except KafkaKitError as e:
            assert time.monotonic() < deadline, e
        time.sleep(0.5)
    assert fresh.state_dict()["topic_id"] != state["topic_id"]
    with pytest.raises(LayoutError, match="field 'topic_id'.*created again"):
        fresh.load_state_dict(state)


@pytest.mark.parametrize("edit,field", [
    (lambda s: {}, "format"),
    (lambda s: {**s, "version": 1}, "version"),
    (lambda s: {**s, "cursor": []}, "cursor"),
    (lambda s: {**s, "cursor": {"0": 5}}, "cursor.0"),
    (lambda s: {**s, "cursor": {"x": [0, 0]}}, "cursor"),
    (lambda s: {**s, "cursor": {"0": [10**9, 0]}}, "cursor.0"),
    (lambda s: {**s, "epoch": -1}, "epoch"),
    (lambda s: {**s, "seq_len": 65}, "seq_len"),
    (lambda s: {**s, "topic": "other"}, "topic"),
    (lambda s: {**s, "end": {"0": 1}}, "start' and 'end"),
    (lambda s: {**s, "order": None}, "order"),
])
def test_malformed_or_foreign_state_names_the_field(bootstrap: str, feed_topic: tuple[str, list[str]],
                                                    edit: Any, field: str) -> None:
    ds = feed(bootstrap, feed_topic[0])
    with pytest.raises(LayoutError, match=f"field '{field}"):
        ds.load_state_dict(edit(ds.state_dict()))
    with pytest.raises(LayoutError, match="expected a dict"):
        ds.load_state_dict([1, 2])  # type: ignore[arg-type]


def test_state_stays_small_with_a_huge_document(bootstrap: str, topic_name: str) -> None:
    """A 900 KB document: every batch's state and the dataset state stay under 1 KB, and a
    resume inside the document continues exactly."""
    make_topic(bootstrap, topic_name, partitions=1)
    import confluent_kafka as ck
    big = ("x" * 899_999).encode()
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for v in (b"small one", big, b"tail"):
        p.produce(topic_name, v, partition=0)
    assert p.flush(30) == 0
    ds = feed(bootstrap, topic_name, seq_len=512, batch_size=8)
    it = iter(ds)
    head = [next(it) for _ in range(30)]
    it.close()
    assert max(len(json.dumps(b["kafka_state"])) for b in head) < 1024
    state = ds.state_dict()
    assert len(json.dumps(state)) < 1024 and state["cursor"]["0"][0] == 1
    ds2 = feed(bootstrap, topic_name, seq_len=512, batch_size=8)
    ds2.load_state_dict(state)
    assert docs_of(real(head) + real(list(ds2))) == ["small one", big.decode(), "tail"]


def test_tokenizer_without_eos_is_refused(bootstrap: str, feed_topic: tuple[str, list[str]]) -> None:
    def plain(texts: list[str]) -> list[list[int]]:
        return [[len(t)] for t in texts]
    with pytest.raises(ValueError, match="no eos_id.*pass eos_id="):
        feed(bootstrap, feed_topic[0], tokenizer=plain)
    assert next(iter(feed(bootstrap, feed_topic[0], tokenizer=plain, eos_id=0)))


@pytest.mark.parametrize("budget", [1])
def test_flow_control_never_stalls(bootstrap: str, backend: str, feed_topic: tuple[str, list[str]],
                                   budget: int) -> None:
    """A byte budget far below one partition's data (1 byte: every fetch pauses partitions)
    with small fetches (the prefetch cannot hold the topic) still delivers every document,
    with both backends: a paused partition that strict order waits on is resumed."""
    import threading

    topic, docs = feed_topic
    small = {"max.partition.fetch.bytes": 2048, "fetch.max.bytes": 4096}  # many small fetches
    if backend == "confluent":
        small.update({"queued.max.messages.kbytes": 1, "message.max.bytes": 4096})
    ds = feed(bootstrap, topic, backend=backend, max_buffered_bytes=budget, settings=small)
    out: list[list[dict[str, Any]]] = []
    t = threading.Thread(target=lambda: out.append(list(ds)), daemon=True)
    t.start()
    t.join(120)  # a stall would wait forever: fail instead
    assert out, "the feed stalled"
    assert sorted(docs_of(real(out[0]))) == sorted(docs)


def test_unreachable_brokers_fail_in_bounded_time_naming_them() -> None:
    t0 = time.monotonic()
    with pytest.raises(Exception, match="127.0.0.1:9"):
        KafkaTokenDataset("127.0.0.1:9", "t", seq_len=8, batch_size=1, timeout=3,
                          settings={"socket.connection.setup.timeout.ms": 1000})
    assert time.monotonic() - t0 < 30


def test_hugging_face_tokenizer(bootstrap: str, feed_topic: tuple[str, list[str]]) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers

    topic, docs = feed_topic
    words = sorted({w for d in docs for w in d.split()})
    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    ds = feed(bootstrap, topic, seq_len=16, batch_size=4, tokenizer=tok, eos_id=1)
    tokens = real(list(ds))
    assert 0 not in tokens  # every word known
    assert tokens.count(1) == N_DOCS
    assert len(tokens) == sum(len(d.split()) + 1 for d in docs)
