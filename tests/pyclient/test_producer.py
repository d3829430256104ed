"""Producer (Ingestor) against the real broker: round trips with checksums, formats,
malformed input, delivery failures, checkpoints."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import corpus, make_topic, read_all
from pyclient.checkpoint import CheckpointMismatch
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
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "2000"})
    f = tmp_path / "big.txt"
    f.write_text("small\n" + "x" * 5000 + "\nsmall too\n")
    settings = {"compression.type": "none", "linger.ms": 0, "delivery.timeout.ms": 10000,
                "request.timeout.ms": 5000}
    rep = Ingestor(bootstrap, topic, backend=backend, settings=settings).run([str(f)])
    assert not rep.ok
    # The oversized record fails; records batched with it fail with it (same request).
    assert rep.failed >= 1 and rep.failed + rep.delivered == 3
    big = [p for p in rep.failure_examples if p.position == 2]
    assert big and big[0].source == str(f)
    assert "TOO" in big[0].reason.upper() and "LARGE" in big[0].reason.upper()
    assert len(read_all(bootstrap, topic)) == rep.delivered


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
