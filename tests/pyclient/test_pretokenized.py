"""Tokenize once: ``pyclient produce --tokenize`` writes token-id records, the training feed
reads them with ``records="tokens"``, on the real broker. The same corpus as text and as
token records gives the same batches and cursors (byte tokenizer, a trained BPE, a
word-level vocabulary above 65536 ids); a stop and resume on a token topic continues
exactly; another tokenizer, a text reader on a token topic and a token reader on a text
topic are refused; the CLI counts and reports malformed and oversized lines; tokenizer
worker processes give the one-worker records in the one-worker order, and a stop while they
run resumes without a loss or a duplicate."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import docs_of, make_topic, read_all
from pyclient.dataset import KafkaTokenDataset
from pyclient.producer import Ingestor
from pyclient.token_records import (RecordDecoder, TokenizerMismatch, TokenRecordError,
                                    tokenizer_id)
from pyclient.tokenize import ByteTokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")

PARTS, N_DOCS = 3, 400
BYTES = tokenizer_id(ByteTokenizer())


def pyclient(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyclient", *args], capture_output=True,
                          text=True, timeout=240)


def documents(n: int) -> list[str]:
    """Distinct documents of 12-200 characters, some of them not ASCII."""
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "café", "ünïcode", "日本語", "kafka"]
    return [f"doc-{i:05d} " + " ".join(words[(i * 7 + j) % len(words)] for j in range(i % 31))
            for i in range(n)]


def train_bpe(docs: list[str], vocab: int, path: Path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    t = Tokenizer(models.BPE(unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                                    special_tokens=["[UNK]", "[EOS]"]))
    t.save(str(path))
    return str(path)


def word_level_u32(docs: list[str], path: Path) -> str:
    """A word-level vocabulary of 70,000 ids whose real words all sit above 65535 (u32)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    words = sorted({w for d in docs for w in d.split()})
    vocab = {"[UNK]": 0, "[EOS]": 1, **{f"filler{i}": i for i in range(2, 65_600)}}
    vocab.update({w: 65_600 + i for i, w in enumerate(words)})
    vocab.update({f"more{i}": len(vocab) for i in range(70_000 - len(vocab))})
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    t.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, Any]]:
    """A JSONL corpus with a key field (the key fixes each record's partition, so the text
    topic and a token topic hold the same records per partition in the same order) and the
    tokenizers: name -> (spec, eos id)."""
    d = tmp_path_factory.mktemp("pretok")
    docs = documents(N_DOCS)
    f = d / "docs.jsonl"
    f.write_text("".join(json.dumps({"text": t, "k": f"k{i % 11}"}) + "\n"
                         for i, t in enumerate(docs)))
    specs = {"bytes": ("bytes", ByteTokenizer.eos_id),
             "bpe": (train_bpe(docs, 300, d / "bpe.json"), 1),
             "wordlevel-u32": (word_level_u32(docs, d / "wl.json"), 1)}
    return f, docs, specs


@pytest.fixture(scope="module")
def topics(bootstrap: str, corpus: tuple[Path, list[str], dict[str, Any]]) -> Callable[[str], str]:
    """topics("text") / topics(tokenizer name): the corpus ingested once per module."""
    f, docs, specs = corpus
    made: dict[str, str] = {}

    def get(which: str) -> str:
        if which not in made:
            topic = make_topic(bootstrap, f"pretok-{which}-{uuid.uuid4().hex[:8]}", PARTS)
            tok = None if which == "text" else specs[which][0]
            rep = Ingestor(bootstrap, topic, tokenizer=tok).run([str(f)], key_field="k")
            assert rep.ok and rep.produced == N_DOCS and rep.malformed == rep.oversized == 0
            made[which] = topic
        return made[which]
    return get


def plain(x: Any) -> Any:
    return x.tolist() if hasattr(x, "tolist") else x


def summary(batches: Any) -> list[tuple[Any, ...]]:
    """What a training loop sees of each batch: ids, mask and the feed's cursors."""
    out = []
    for b in batches:
        s = b["kafka_state"]
        out.append((plain(b["input_ids"]), plain(b.get("attention_mask")),
                    {str(p): c for p, c in s["cursor"].items()}, s["next"], s["reader"]))
    return out


def real(batches: Any) -> list[int]:
    """The tokens of batches without their padding."""
    return [t for b in batches for row, mask in zip(plain(b["input_ids"]),
                                                    plain(b["attention_mask"]))
            for t, m in zip(row, mask) if m]


def steps(ds: KafkaTokenDataset) -> list[tuple[Any, Any, dict[str, Any]]]:
    """(ids, mask, the dataset's state after it) of every batch of an iteration."""
    return [(plain(b["input_ids"]), plain(b.get("attention_mask")), ds.state_dict())
            for b in ds]


def steps_of(batches: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(plain(b["input_ids"]), plain(b.get("attention_mask"))) for b in batches]


def state_of(ds: KafkaTokenDataset) -> dict[str, Any]:
    return {k: v for k, v in ds.state_dict().items() if k not in ("topic", "topic_id")}


@pytest.mark.parametrize("which", ["bytes", "bpe", "wordlevel-u32"])
def test_token_topic_gives_the_batches_of_the_text_topic(
        bootstrap: str, corpus: tuple[Path, list[str], dict[str, Any]],
        topics: Callable[[str], str], which: str) -> None:
    _, docs, specs = corpus
    spec, eos = specs[which]
    text, tokens = topics("text"), topics(which)
    layouts = [{"seq_len": 64, "batch_size": 4, "last_batch": "pad"},
               {"seq_len": 29, "batch_size": 3, "last_batch": "drop", "rank": 1,
                "world_size": 2}]
    for kw in layouts:
        a = KafkaTokenDataset(bootstrap, text, tokenizer=spec, eos_id=eos, **kw)
        b = KafkaTokenDataset(bootstrap, tokens, tokenizer=spec, eos_id=eos, records="tokens",
                              **kw)
        got_a, got_b = summary(a), summary(b)
        assert len(got_a) > 5 and got_b == got_a
        assert state_of(b) == state_of(a)
    ids = [t for batch in got_a for row in batch[0] for t in row]
    if which == "bytes":  # the first layout reads every document, each once
        full = KafkaTokenDataset(bootstrap, tokens, records="tokens", **layouts[0])
        assert sorted(docs_of(real(full))) == sorted(docs)
    elif which == "wordlevel-u32":
        assert tokenizer_id(load_tokenizer(spec)).dtype == "u32le" and max(ids) >= 65_600
    else:
        assert 0 not in ids and tokenizer_id(load_tokenizer(spec)).dtype == "u16le"


def test_stop_and_resume_on_the_token_topic_is_the_uninterrupted_sequence(
        bootstrap: str, backend: str, topics: Callable[[str], str]) -> None:
    topic = topics("bytes")
    kw: dict[str, Any] = {"seq_len": 48, "batch_size": 2, "last_batch": "pad",
                          "records": "tokens", "backend": backend}
    reference = steps(KafkaTokenDataset(bootstrap, topic, **kw))
    n = len(reference)
    inside = 0
    for k in (1, n // 3, n - 1):
        ds = KafkaTokenDataset(bootstrap, topic, **kw)
        it = iter(ds)
        taken = [next(it) for _ in range(k)]
        it.close()
        state = json.loads(json.dumps(ds.state_dict()))  # as read back from a checkpoint
        assert state == reference[k - 1][2]
        inside += any(c[1] for c in state["cursor"].values())
        again = KafkaTokenDataset(bootstrap, topic, **kw)
        again.load_state_dict(state)
        rest = steps(again)
        assert [x[:2] for x in steps_of(taken)] + [x[:2] for x in rest] == \
            [x[:2] for x in reference], k
        assert [x[2] for x in rest] == [x[2] for x in reference[k:]]  # the state after each
    assert inside, "no stop fell inside a document"


def test_a_reader_with_another_tokenizer_is_refused_naming_both(
        bootstrap: str, corpus: tuple[Path, list[str], dict[str, Any]],
        topics: Callable[[str], str], tmp_path: Path) -> None:
    _, docs, specs = corpus
    kw: dict[str, Any] = {"seq_len": 32, "batch_size": 2, "eos_id": 1}
    bpe = tokenizer_id(load_tokenizer(specs["bpe"][0]))
    with pytest.raises(TokenizerMismatch) as e:
        list(KafkaTokenDataset(bootstrap, topics("bytes"), tokenizer=specs["bpe"][0],
                               records="tokens", **kw))
    assert (f"written with tokenizer pyclient.ByteTokenizer (hash {BYTES.hash[:16]}), this "
            f"reader expects tokenizers.Tokenizer (hash {bpe.hash[:16]})") in str(e.value)
    # The same kind and name, another vocabulary: the hashes tell them apart.
    other = train_bpe(docs, 200, tmp_path / "other.json")
    oid = tokenizer_id(load_tokenizer(other))
    with pytest.raises(TokenizerMismatch) as e:
        list(KafkaTokenDataset(bootstrap, topics("bpe"), tokenizer=other, records="tokens",
                               **kw))
    assert f"(hash {bpe.hash[:16]})" in str(e.value) and f"(hash {oid.hash[:16]})" in str(e.value)
    # A text reader does not tokenize token-id records as text; a token reader needs them.
    with pytest.raises(TokenRecordError, match=r"holds token-id records \(tokenizer "
                                               r"pyclient.ByteTokenizer.*records='tokens'"):
        list(KafkaTokenDataset(bootstrap, topics("bytes"), seq_len=32, batch_size=2))
    with pytest.raises(TokenRecordError, match="not a token-id record"):
        list(KafkaTokenDataset(bootstrap, topics("text"), seq_len=32, batch_size=2,
                               records="tokens"))


def test_cli_produce_tokenize_bytes_counts_and_reports_bad_and_oversized_lines(
        bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """A 1,500-byte line fits the topic's 2,000 bytes as text but not as u16 token ids: it is
    oversized only with --tokenize, reported and dead-lettered; an empty line and a non-UTF-8
    line are malformed as in a text ingest; everything else arrives as token-id records, in
    order, and the feed reads them."""
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "2000"})
    f = tmp_path / "in.txt"
    big = "b" * 1500
    lines = [b"first doc", b"", b"caf\xe9 latin-1", big.encode(), "zweite é".encode(), b"last"]
    f.write_bytes(b"".join(x + b"\n" for x in lines))
    dl = tmp_path / "dead.jsonl"
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--tokenize", "bytes",
                 "--dead-letter", str(dl), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["records_read"], s["delivered"], s["malformed"], s["oversized"]) == (6, 3, 2, 1)
    assert s["tokenizer"] == {"name": BYTES.name, "hash": BYTES.hash, "dtype": "u16le"}
    assert [(p["position"], p["reason"].split(" (")[0]) for p in s["malformed_examples"]] == [
        (2, "empty line"), (3, "not UTF-8")]
    [over] = s["oversized_examples"]
    size = re.match(r"token-id record of (\d+) bytes with framing exceeds", over["reason"])
    assert over["position"] == 4 and size and 3000 < int(size[1]) < 3400  # 1,500 ids x 2
    assert "max.message.bytes=2000" in over["reason"]
    assert "1 records larger than the topic's max.message.bytes=2000 were not sent" in r.stderr
    dead = [json.loads(x) for x in dl.read_text().splitlines()]
    assert [d["line"] for d in dead] == [2, 3, 4]
    assert base64.b64decode(dead[2]["raw_base64"]) == big.encode() + b"\n"
    recs = read_all(bootstrap, topic)
    dec = RecordDecoder(BYTES)
    got = [bytes(dec.decode(x.value, x.headers)).decode() for x in recs]
    assert got == ["first doc", "zweite é", "last"]
    assert [dict(x.headers or [])["pos"] for x in recs] == [b"1", b"5", b"6"]
    feed = KafkaTokenDataset(bootstrap, topic, seq_len=8, batch_size=1, last_batch="pad",
                             records="tokens")
    assert docs_of(real(feed)) == got
    # As text the same line fits: the size check is on the record actually written.
    plain_topic = make_topic(bootstrap, topic_name + "-text", config={"max.message.bytes": "2000"})
    r = pyclient("produce", "-b", bootstrap, "-t", plain_topic, str(f), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["oversized"] == 0
    # The human summary names the tokenizer and the bad lines; --strict fails the command.
    r = pyclient("produce", "-b", bootstrap, "-t", plain_topic, str(f), "--tokenize", "bytes",
                 "--strict")
    assert r.returncode == 1 and "2 malformed records, 1 oversized" in r.stderr
    assert f"token-id records (tokenizer pyclient.ByteTokenizer, hash {BYTES.hash[:16]}" in r.stdout
    assert f"malformed {f}:2: empty line" in r.stdout
    assert f"oversized {f}:4: token-id record of" in r.stdout
    # Usage errors, before any record.
    for args, msg in ((["--tokenize", str(tmp_path / "nope.json")], "neither 'bytes' nor"),
                      (["--tokenize", "bytes", "--tokenize-workers", "0"], ">= 1, got 0"),
                      (["--tokenize-workers", "2"], "need --tokenize")):
        r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)


def test_tokenize_workers_give_the_records_of_one_worker_in_order(
        bootstrap: str, corpus: tuple[Path, list[str], dict[str, Any]], tmp_path: Path) -> None:
    """Two tokenizer processes (BPE from a tokenizer.json) against one: the same values and
    headers in the same order, the same report and the same checkpoint."""
    _, docs, specs = corpus
    f = tmp_path / "in.txt"
    lines = [d.encode() for d in documents(2000)]
    lines[700], lines[1500] = b"", b"\xff broken"
    f.write_bytes(b"".join(x + b"\n" for x in lines))
    out = {}
    for n in (1, 2):
        topic = make_topic(bootstrap, f"pretok-w{n}-{uuid.uuid4().hex[:8]}")
        ck = tmp_path / f"ck{n}.json"
        r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--json", "--tokenize",
                     specs["bpe"][0], "--tokenize-workers", str(n), "--checkpoint", str(ck))
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert (s["delivered"], s["malformed"]) == (1998, 2)
        recs = [(x.value, x.headers) for x in read_all(bootstrap, topic)]
        keep = ("records_read", "produced", "malformed_examples", "tokenizer")
        out[n] = recs, {k: s[k] for k in keep}, json.loads(ck.read_text())["inputs"]
    assert out[2] == out[1]
    dec = RecordDecoder(tokenizer_id(load_tokenizer(specs["bpe"][0])))
    bpe = load_tokenizer(specs["bpe"][0])
    good = [x.decode() for i, x in enumerate(lines) if i not in (700, 1500)]
    assert [dec.decode(v, h) for v, h in out[2][0]] == [e.ids for e in bpe.encode_batch(good)]


def test_a_stop_while_workers_tokenize_resumes_without_loss_or_duplicate(
        bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """Chunks in flight in the workers at a stop are not checkpointed: the resume reads them
    again, and the topic holds every line once, in order."""
    topic = make_topic(bootstrap, topic_name)
    f, ck = tmp_path / "in.txt", tmp_path / "ck.json"
    docs = documents(5000)
    f.write_text("".join(d + "\n" for d in docs))
    ing: Ingestor

    def stop_at_first(_p: object) -> None:
        ing.stop()

    ing = Ingestor(bootstrap, topic, tokenizer="bytes", tokenize_workers=2, checkpoint=ck,
                   on_progress=stop_at_first, progress_interval=0)
    first = ing.run([str(f)])
    assert first.interrupted and first.ok and 0 < first.produced < len(docs)
    assert json.loads(ck.read_text())["inputs"][0]["line"] == first.produced
    rest = Ingestor(bootstrap, topic, tokenizer="bytes", tokenize_workers=2,
                    checkpoint=ck).run([str(f)])
    assert rest.ok and first.produced + rest.produced == len(docs)
    dec = RecordDecoder(BYTES)
    got = [bytes(dec.decode(x.value, x.headers)).decode() for x in read_all(bootstrap, topic)]
    assert got == docs


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_token_topic_through_dataloader_workers_stops_and_resumes_exactly(
        bootstrap: str, topics: Callable[[str], str], start_method: str) -> None:
    """records="tokens" in torch's DataLoader with 2 workers (fork and spawn: the dataset and
    its decoder are pickled), as the docs' loop runs it: stopped after 3 batches, the
    checkpoint (JSON) loaded into a new DataLoader, the epoch finished. The batches delivered
    are those of the uninterrupted 2-worker run (same layout, so the same packed batches, each
    once), and they hold every document once."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    topic = topics("bytes")
    kw: dict[str, Any] = {"seq_len": 48, "batch_size": 2, "last_batch": "pad", "records": "tokens"}

    def loader(ds: KafkaTokenDataset) -> Any:
        return DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=start_method)

    def key(b: dict[str, Any]) -> tuple[Any, ...]:
        return (json.dumps(plain(b["input_ids"])), json.dumps(plain(b["attention_mask"])))

    whole = list(loader(KafkaTokenDataset(bootstrap, topic, **kw)))
    assert len(whole) > 6 and all(isinstance(b["input_ids"], torch.Tensor) for b in whole)
    ds = KafkaTokenDataset(bootstrap, topic, **kw)
    taken: list[dict[str, Any]] = []
    for batch in loader(ds):
        taken.append(batch)
        ds.update(batch)
        if len(taken) == 3:
            break
    checkpoint = json.loads(json.dumps({"feed": ds.state_dict()}))
    again = KafkaTokenDataset(bootstrap, topic, **kw)
    again.load_state_dict(checkpoint["feed"])
    for batch in loader(again):
        taken.append(batch)
        again.update(batch)
    assert sorted(map(key, taken)) == sorted(map(key, whole))
    readers = sorted({b["kafka_state"]["reader"] for b in taken})
    assert len(readers) == 2
    delivered = [d for r in readers  # each reader's batches in order hold whole documents
                 for d in docs_of(real([b for b in taken if b["kafka_state"]["reader"] == r]))]
    assert sorted(delivered) == sorted(documents(N_DOCS))
