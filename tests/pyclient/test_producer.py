"""Producer (Ingestor) against the real broker: round trips with checksums, formats,
malformed and oversized input, delivery failures, batch size fitted to the topic, checkpoints
keyed by real path, bounded start on a missing topic or unreachable servers."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import corpus, make_topic, read_all
from pyclient.admin import Admin
from pyclient.checkpoint import CheckpointMismatch
from pyclient.probe import TopicMissing, Unreachable
from pyclient.producer import Ingestor
from pyclient.smoke import checksum


def test_text_round_trip_checksum_and_positions(bootstrap: str, backend: str, topic_name: str,
                                                tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=3)
    f = tmp_path / "c.txt"
    docs = corpus(f, 3000)
    rep = Ingestor(bootstrap, topic, backend=backend).run([str(f)])
    assert rep.ok and rep.produced == rep.delivered == 3000 and rep.malformed == 0
    recs = read_all(bootstrap, topic)
    values = [r.value for r in recs]
    assert len(values) == 3000 and len(set(values)) == 3000
    assert checksum(values) == checksum([d.encode() for d in docs])
    for r in recs[:50]:
        h = dict(r.headers or [])
        assert h["src"] == str(f).encode()
        assert docs[int(h["pos"]) - 1].encode() == r.value  # 1-based line number


def test_jsonl_key_field_keeps_order_per_key(bootstrap: str, backend: str, topic_name: str,
                                             tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=4)
    f = tmp_path / "c.jsonl"
    rows = [{"text": f"doc {i} é", "user": f"u{i % 5}", "i": i} for i in range(500)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = Ingestor(bootstrap, topic, backend=backend).run([str(f)], key_field="user")
    assert rep.ok and rep.produced == 500
    recs = read_all(bootstrap, topic)
    by_key: dict[bytes, set[int]] = {}
    for r in recs:
        by_key.setdefault(r.key or b"", set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    assert sorted(r.value for r in recs) == sorted(f"doc {i} é".encode() for i in range(500))
    for k in by_key:  # per key, the order of the file is kept
        seq = [int(r.value.split()[1]) for r in recs if r.key == k]
        assert seq == sorted(seq)


def test_parquet_column_and_glob(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name)
    for part in range(2):
        texts = [f"p{part}-{i}" for i in range(300)] + [None, ""]
        pq.write_table(pa.table({"content": texts, "n": list(range(302))}),
                       tmp_path / f"part-{part}.parquet")
    rep = Ingestor(bootstrap, topic).run([str(tmp_path / "*.parquet")], field="content")
    assert rep.ok and rep.produced == 600
    assert rep.malformed == 4 and rep.malformed_by_reason["null value in column 'content'"] == 2
    vals = sorted(r.value for r in read_all(bootstrap, topic))
    assert vals == sorted(f"p{p}-{i}".encode() for p in range(2) for i in range(300))


def test_malformed_input_is_counted_located_and_dead_lettered(bootstrap: str, backend: str,
                                                              topic_name: str,
                                                              tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name)
    j = tmp_path / "bad.jsonl"
    j.write_bytes(b'{"text": "good one"}\n'
                  b'{"text": "broken\n'            # 2: bad JSON
                  b'\n'                            # 3: empty line
                  b'{"title": "no text"}\n'        # 4: missing field
                  b'{"text": 42}\n'                # 5: non-string
                  b'{"text": "caf\xe9"}\n'         # 6: not UTF-8
                  b'[1, 2]\n'                      # 7: not an object
                  b'{"text": "good two"}\n')
    t = tmp_path / "bad.txt"
    t.write_bytes(b"fine\n\xff\xfe latin garbage\n   \nalso fine\r\n")
    dl = tmp_path / "dead.jsonl"
    rep = Ingestor(bootstrap, topic, backend=backend, dead_letter=dl).run([str(j), str(t)])
    assert rep.ok and rep.produced == 4 and rep.malformed == 8 and rep.records_read == 12
    where = {(Path(p.source).name, p.position): p.reason for p in rep.malformed_examples}
    assert where[("bad.jsonl", 2)].startswith("bad JSON")
    assert where[("bad.jsonl", 3)] == "empty line"
    assert where[("bad.jsonl", 4)] == "missing field 'text'"
    assert where[("bad.jsonl", 5)] == "non-string field 'text'"
    assert where[("bad.jsonl", 6)].startswith("not UTF-8")
    assert where[("bad.jsonl", 7)] == "missing field 'text'"
    assert where[("bad.txt", 2)].startswith("not UTF-8")
    assert where[("bad.txt", 3)] == "empty line"
    dead = [json.loads(x) for x in dl.read_text().splitlines()]
    assert len(dead) == 8
    assert {d["source"] for d in dead} == {str(j), str(t)}
    six = next(d for d in dead if d["source"] == str(j) and d["line"] == 6)
    assert base64.b64decode(six["raw_base64"]) == b'{"text": "caf\xe9"}\n'
    assert sorted(r.value for r in read_all(bootstrap, topic)) == [
        b"also fine", b"fine", b"good one", b"good two"]


def test_delivery_failures_are_counted_with_reason_and_position(bootstrap: str, backend: str,
                                                                topic_name: str,
                                                                tmp_path: Path) -> None:
    # Records older than the broker's clock by more than 0 ms are refused (INVALID_RECORD):
    # every record, unless one reaches the broker within the millisecond it was made.
    topic = make_topic(bootstrap, topic_name, config={"message.timestamp.before.max.ms": "0"})
    f = tmp_path / "in.txt"
    f.write_text("one\ntwo\nthree\n")
    ck = tmp_path / "ck.json"
    settings = {"linger.ms": 5, "delivery.timeout.ms": 5000, "request.timeout.ms": 4000}
    rep = Ingestor(bootstrap, topic, backend=backend, settings=settings, checkpoint=ck).run([str(f)])
    assert not rep.ok and rep.failed >= 1 and rep.failed + rep.delivered == 3
    assert rep.failure_examples and all(
        p.source == str(f) and p.position in (1, 2, 3) and "INVALID" in p.reason.upper()
        for p in rep.failure_examples), rep.failure_examples
    assert not ck.exists()  # a failed record is never behind a checkpoint
    assert len(read_all(bootstrap, topic)) == rep.delivered


def test_oversized_records_are_rejected_located_dead_lettered_and_ingest_goes_on(
        bootstrap: str, backend: str, topic_name: str, tmp_path: Path) -> None:
    """A record over the topic's limit (and one over the client's own 1 MB ceiling) is counted
    with source, line and reason, dead-lettered; every other line is delivered; the checkpoint
    moves past it, so a rerun sends nothing again."""
    topic = make_topic(bootstrap, topic_name, partitions=2, config={"max.message.bytes": "20000"})
    f = tmp_path / "c.txt"
    lines = [f"line {i}" for i in range(3000)]
    lines[999] = "x" * 50_000          # line 1000: above the topic's limit
    lines[1999] = "y" * 1_500_000      # line 2000: above librdkafka's / kafka-python's 1 MB
    f.write_text("".join(x + "\n" for x in lines))
    dl, ck = tmp_path / "dead.jsonl", tmp_path / "ck.json"
    rep = Ingestor(bootstrap, topic, backend=backend, dead_letter=dl, checkpoint=ck).run([str(f)])
    assert rep.ok and rep.failed == 0
    assert rep.oversized == 2 and rep.produced == rep.delivered == 2998
    where = {(p.source, p.position): p.reason for p in rep.oversized_examples}
    assert set(where) == {(str(f), 1000), (str(f), 2000)}
    assert "max.message.bytes=20000" in where[(str(f), 1000)]
    dead = [json.loads(x) for x in dl.read_text().splitlines()]
    assert [(d["source"], d["line"]) for d in dead] == [(str(f), 1000), (str(f), 2000)]
    assert base64.b64decode(dead[0]["raw_base64"]) == b"x" * 50_000 + b"\n"
    got = sorted(r.value for r in read_all(bootstrap, topic))
    assert got == sorted(x.encode() for i, x in enumerate(lines) if i not in (999, 1999))
    saved = json.loads(ck.read_text())["inputs"][0]
    assert saved["done"] and saved["line"] == 3000
    again = Ingestor(bootstrap, topic, backend=backend, checkpoint=ck).run([str(f)])
    assert again.produced == 0 and again.oversized == 0


def test_batch_size_fits_a_small_topic_limit(bootstrap: str, backend: str, topic_name: str,
                                             tmp_path: Path) -> None:
    """The 1 MiB default batch.size would make the broker refuse every batch of a topic with
    max.message.bytes=4096: it is fitted; a batch.size the user set above it fails at start."""
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "4096"})
    f = tmp_path / "c.txt"
    docs = corpus(f, 5000)
    settings = {"compression.type": "none", "delivery.timeout.ms": 60000}
    rep = Ingestor(bootstrap, topic, backend=backend, settings=settings).run([str(f)])
    assert rep.ok and rep.delivered == 5000 and rep.failed == 0, rep.failures_by_reason
    assert rep.max_message_bytes == 4096 and 0 < rep.batch_size <= 4096
    assert sorted(r.value for r in read_all(bootstrap, topic)) == sorted(d.encode() for d in docs)
    with pytest.raises(ValueError, match=r"batch.size=65536 is above .*max.message.bytes=4096"):
        Ingestor(bootstrap, topic, backend=backend,
                 settings={**settings, "batch.size": 65536}).run([str(f)])


def test_missing_topic_and_unreachable_servers_fail_at_start(bootstrap: str, backend: str,
                                                             tmp_path: Path) -> None:
    f = tmp_path / "c.txt"
    f.write_text("one\n")
    with pytest.raises(TopicMissing, match="'no-such-topic' does not exist on "):
        Ingestor(bootstrap, "no-such-topic", backend=backend).run([str(f)])
    with Admin({"bootstrap.servers": bootstrap}) as a:
        assert a.describe_topic("no-such-topic") is None  # the check did not create it
    t0 = time.monotonic()
    with pytest.raises(Unreachable, match=r"cannot reach the Kafka cluster at 127.0.0.1:1 within 2s"):
        Ingestor("127.0.0.1:1", "t", backend=backend, timeout=2).run([str(f)])
    assert time.monotonic() - t0 < 10


def test_checkpoint_keys_inputs_by_real_path(bootstrap: str, topic_name: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """data/*.txt, ./data/a.txt, an absolute path and a symlink are one input: ingested once."""
    topic = make_topic(bootstrap, topic_name)
    (tmp_path / "data").mkdir()
    docs = corpus(tmp_path / "data" / "a.txt", 1200)
    (tmp_path / "link.txt").symlink_to(tmp_path / "data" / "a.txt")
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "ck.json"
    first = Ingestor(bootstrap, topic, checkpoint=ck).run(["data/*.txt", "./data/a.txt"])
    assert first.produced == 1200 and first.duplicate_inputs == ["./data/a.txt"]
    for spelling in (str(tmp_path / "data" / "a.txt"), "./data/a.txt", "link.txt",
                     "data/../data/a.txt"):
        again = Ingestor(bootstrap, topic, checkpoint=ck).run([spelling])
        assert again.produced == 0 and again.resumed == {spelling: 1200}, spelling
    vals = [r.value for r in read_all(bootstrap, topic)]
    assert sorted(vals) == sorted(d.encode() for d in docs)
    other = tmp_path / "b.txt"
    corpus(other, 10)
    rep = Ingestor(bootstrap, topic, checkpoint=ck).run([str(other)])
    assert rep.produced == 10
    assert rep.stale_checkpoint_inputs == [str((tmp_path / "data" / "a.txt").resolve())]


def test_stop_is_seen_after_a_few_large_documents(bootstrap: str, backend: str, topic_name: str,
                                                  tmp_path: Path) -> None:
    """Checks run on produced bytes and time too, not only every 1024 records: a stop asked
    for after the first check lands long before 1024 large documents; the checkpoint is exact."""
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "1048588"})
    f, ck = tmp_path / "big.txt", tmp_path / "ck.json"
    with f.open("w") as fh:
        for i in range(600):
            fh.write(f"doc-{i:04d} " + "w" * 32_000 + "\n")
    ing: Ingestor

    def stop_at_first(_p: object) -> None:
        ing.stop()

    ing = Ingestor(bootstrap, topic, backend=backend, checkpoint=ck, on_progress=stop_at_first,
                   progress_interval=0)
    rep = ing.run([str(f)])
    assert rep.interrupted and rep.ok
    assert 0 < rep.produced <= 64, rep.produced  # 1 MiB / 32 KB per check: ~33 documents
    line = json.loads(ck.read_text())["inputs"][0]["line"]
    assert line == rep.produced == len(read_all(bootstrap, topic))


def test_checkpoint_resume_skips_done_inputs_and_refuses_changed_files(
        bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=2)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    da, db = corpus(a, 1500), corpus(b, 700)
    ck = tmp_path / "ck.json"
    r1 = Ingestor(bootstrap, topic, checkpoint=ck).run([str(a)])
    assert r1.ok and r1.produced == 1500
    saved = json.loads(ck.read_text())["inputs"]
    assert saved[0]["line"] == 1500 and saved[0]["done"] is True
    r2 = Ingestor(bootstrap, topic, checkpoint=ck).run([str(a), str(b)])
    assert r2.ok and r2.produced == 700 and r2.resumed == {str(a): 1500}
    vals = [r.value for r in read_all(bootstrap, topic)]
    assert len(vals) == 2200 and sorted(vals) == sorted(d.encode() for d in da + db)
    with a.open("a") as fh:
        fh.write("appended\n")
    with pytest.raises(CheckpointMismatch, match="changed since the checkpoint"):
        Ingestor(bootstrap, topic, checkpoint=ck).run([str(a)])
    with pytest.raises(CheckpointMismatch, match="not 'other'"):
        Ingestor(bootstrap, "other", checkpoint=ck).run([str(b)])


def test_old_checkpoint_keyed_as_spelled_is_resolved(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint written before real-path keys (relative spelling) still resumes."""
    from pyclient.checkpoint import IngestCheckpoint

    (tmp_path / "data").mkdir()
    f = tmp_path / "data" / "a.txt"
    f.write_text("x\n")
    st = f.stat()
    ck = tmp_path / "ck.json"
    ck.write_text(json.dumps({"version": 1, "topic": "t", "inputs": [
        {"path": "./data/a.txt", "size": st.st_size, "mtime_ns": st.st_mtime_ns, "line": 1,
         "offset": 2, "done": True}]}))
    monkeypatch.chdir(tmp_path)
    loaded = IngestCheckpoint.load(ck, "t")
    assert loaded.state_for("data/a.txt").done
    assert loaded.state_for(str(f)).line == 1 and loaded.stale([str(f)]) == []
