"""pyclient.token_records without a broker: exact little-endian bytes, the uint16/uint32
boundary, random round trips, ids outside the vocabulary refused on both sides, a real
trained Hugging Face BPE tokenizer fingerprinted stably, and a record written with another
tokenizer refused with both names in the message; packing decoded records gives the same
batches as packing the tokenizer's output; records and headers through the real broker
with both backends."""

from __future__ import annotations

import random

import pytest

from pyclient.packing import Packer, pack_documents
from pyclient.token_records import (RecordDecoder, TokenizerId, TokenizerMismatch,
                                    TokenRecordError, encode, tokenizer_id)
from pyclient.tokenize import ByteTokenizer

tokenizers = pytest.importorskip("tokenizers")

TEXT = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen jugs",
        "kafka feeds the trainer", "ünïcödé text too"] * 20


def bpe(vocab: int) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    t = Tokenizer(models.BPE(unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=vocab, show_progress=False,
                                                    special_tokens=["[UNK]", "[EOS]"]))
    return t


def test_little_endian_bytes_and_width_boundary() -> None:
    small = TokenizerId("t", "h", 65536)
    big = TokenizerId("t", "h", 65537)
    assert small.dtype == "u16le" and big.dtype == "u32le"
    assert encode([1, 258, 65535], small) == b"\x01\x00\x02\x01\xff\xff"
    assert encode([1, 65536], big) == b"\x01\x00\x00\x00\x00\x00\x01\x00"
    assert dict(small.headers())["tok.dtype"] == b"u16le"
    for tid, bad in ((small, 65536), (big, 65537), (small, -1), (big, -1)):
        with pytest.raises(TokenRecordError, match=f"token id {bad} is outside the vocabulary "
                                                   f"of tokenizer t"):
            encode([3, bad], tid)


@pytest.mark.parametrize("vocab", [257, 65536, 65537, 200_000])
def test_random_round_trip(vocab: int) -> None:
    rng = random.Random(vocab)
    tid = TokenizerId("x", "abc", vocab)
    dec = RecordDecoder(tid)
    for _ in range(50):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(0, 300))]
        v = encode(ids, tid)
        assert len(v) == len(ids) * (2 if vocab <= 65536 else 4)
        assert dec.decode(v, tid.headers()) == ids


def test_byte_tokenizer_id_and_corrupt_records() -> None:
    tid = tokenizer_id(ByteTokenizer())
    assert tid.name == "pyclient.ByteTokenizer" and tid.vocab_size == 257
    assert tid == tokenizer_id(ByteTokenizer())
    dec = RecordDecoder(tid)
    with pytest.raises(TokenRecordError, match="3 bytes is not a whole number of u16le ids"):
        dec.decode(b"\x01\x00\x02", tid.headers())
    with pytest.raises(TokenRecordError, match=r"id 300 is outside the vocabulary \(size 257\)"):
        dec.decode(b"\x2c\x01", tid.headers())
    with pytest.raises(TokenRecordError, match="not a token-id record.*pyclient produce "
                                               "--tokenize"):
        dec.decode(b"hello", [("src", b"a.txt")])
    with pytest.raises(TokenRecordError, match="dtype 'u32le', expected 'u16le'"):
        dec.decode(b"", [(k, b"u32le" if k == "tok.dtype" else v) for k, v in tid.headers()])
    with pytest.raises(TokenRecordError, match="cannot fingerprint tokenizer function"):
        tokenizer_id(lambda texts: [[1] for _ in texts])


def test_hf_tokenizer_hash_is_stable_and_a_mismatch_names_both() -> None:
    from tokenizers import Tokenizer
    a, b = bpe(60), bpe(80)
    ta, tb = tokenizer_id(a, name="bpe-60"), tokenizer_id(b, name="bpe-80")
    assert ta.vocab_size == a.get_vocab_size(with_added_tokens=True)
    assert tokenizer_id(Tokenizer.from_str(a.to_str()), name="bpe-60") == ta  # reloaded
    assert ta.hash != tb.hash
    ids = [e.ids for e in a.encode_batch(TEXT[:4])]
    recs = [(encode(x, ta), ta.headers()) for x in ids]
    assert [RecordDecoder(ta).decode(v, h) for v, h in recs] == ids
    with pytest.raises(TokenizerMismatch, match=r"written with tokenizer bpe-60 \(hash "
                                                f"{ta.hash[:16]}\\), this reader expects "
                                                f"bpe-80 \\(hash {tb.hash[:16]}\\)"):
        RecordDecoder(tb).decode(*recs[0], where="at partition 0 offset 7")
    same_vocab_other_name = TokenizerId("other", ta.hash, ta.vocab_size)
    with pytest.raises(TokenizerMismatch, match="other"):
        RecordDecoder(same_vocab_other_name).decode(*recs[0])


def test_packing_records_equals_packing_the_tokenizer_output() -> None:
    t = bpe(120)
    tid = tokenizer_id(t, name="bpe")
    eos = t.token_to_id("[EOS]")
    direct = [e.ids for e in t.encode_batch(TEXT)]
    dec = RecordDecoder(tid)
    stored = [dec.decode(encode(x, tid), tid.headers()) for x in direct]
    kw = {"seq_len": 16, "batch_size": 2, "eos_id": eos, "last_batch": "pad",
          "labels": "mask_boundaries"}
    assert list(pack_documents(Packer(**kw), stored)) == list(pack_documents(Packer(**kw),
                                                                             direct))


def test_records_round_trip_through_the_broker(bootstrap: str, backend: str) -> None:
    """Token-id records written and read through the real broker with each backend: values
    and headers come back byte for byte, u16 and u32; another tokenizer is refused."""
    import uuid

    from helpers import make_topic
    from pyclient.backends import make_consumer, make_producer

    topic = make_topic(bootstrap, f"tokrec-{uuid.uuid4().hex[:8]}")
    rng = random.Random(7)
    small = TokenizerId("bpe-small", "a" * 64, 50_000)  # u16
    big = TokenizerId("bpe-big", "b" * 64, 150_000)      # u32
    sent = [(tid, [rng.randrange(tid.vocab_size) for _ in range(rng.randrange(0, 500))])
            for tid in (small, big) * 50]
    errors: list[str] = []
    p = make_producer({"bootstrap.servers": bootstrap}, lambda r, k, h: errors.append(r),
                      backend)
    for tid, x in sent:
        p.produce(topic, encode(x, tid), headers=tid.headers())
    assert p.flush(30) == 0 and not errors
    p.close()
    c = make_consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                       "enable.auto.commit": False, "auto.offset.reset": "earliest"}, backend)
    got = []
    try:
        c.assign([(topic, 0, 0)])
        for _ in range(60):
            got += c.consume(1000, 1.0)
            if len(got) >= len(sent):
                break
    finally:
        c.close()
    assert len(got) == len(sent)
    decs = {small.name: RecordDecoder(small), big.name: RecordDecoder(big)}
    for r, (tid, x) in zip(got, sent):
        assert decs[tid.name].decode(r.value, r.headers, f"at offset {r.offset}") == x
    with pytest.raises(TokenizerMismatch, match="at offset 1 was written with tokenizer bpe-big"):
        decs["bpe-small"].decode(got[1].value, got[1].headers, "at offset 1")


def test_records_decoder_names_the_record() -> None:
    from pyclient.backends import Record
    from pyclient.token_records import records_decoder

    t = TokenizerId("a", "h" * 64, 300)
    other = TokenizerId("b", "z" * 64, 300)
    f = records_decoder(t)
    assert f([Record("x", 0, 5, None, encode([1, 2, 299], t), t.headers()),
              Record("x", 1, 6, None, None, t.headers())]) == [[1, 2, 299], []]
    with pytest.raises(TokenizerMismatch, match="at partition 2 offset 9 was written with "
                                                "tokenizer b"):
        f([Record("x", 2, 9, None, b"", other.headers())])


def test_a_reused_decoder_decides_every_record_as_a_fresh_one() -> None:
    """RecordDecoder caches the tokenizer check (the set of checked tokenizers, and the last
    checked record's trailing tok.* headers). Random records, all decoded by one decoder and
    each by a fresh one, give the same ids or the same error: other tokenizers and dtypes
    after accepted records, tok.* headers in any order, other headers before or after them,
    duplicated tok.* headers whose later value wins, headers missing."""
    good = TokenizerId("a", "h" * 64, 300)
    others = [TokenizerId("b", "h" * 64, 300), TokenizerId("a", "z" * 64, 300),
              TokenizerId("a", "h" * 64, 70000)]  # another name, hash, dtype (u32)
    rnd = random.Random(5)

    def record() -> tuple[bytes, list[tuple[str, bytes]]]:
        tid = good if rnd.random() < 0.7 else rnd.choice(others)
        ids = [rnd.randrange(300) for _ in range(rnd.randrange(4))]
        tok = tid.headers()
        rnd.shuffle(tok)
        if rnd.random() < 0.15:  # a duplicate tok.* header before: the later one counts
            k, _ = rnd.choice(tok)
            tok = [(k, rnd.choice([b"x", b"u32le", b"b"]))] + tok
        if rnd.random() < 0.1:
            tok = tok[1:]
        extra = [("src", b"a.txt"), ("pos", str(rnd.randrange(99)).encode())]
        hdrs = extra + tok if rnd.random() < 0.8 else tok + extra
        return encode(ids, tid) if tid.dtype == good.dtype else encode(ids, good), hdrs

    def outcome(dec: RecordDecoder, value: bytes, hdrs: list) -> object:
        try:
            return dec.decode(value, hdrs)
        except (TokenRecordError, TokenizerMismatch) as e:
            return type(e).__name__
    reused = RecordDecoder(good)
    seen = set()
    for _ in range(3000):
        value, hdrs = record()
        got, want = outcome(reused, value, hdrs), outcome(RecordDecoder(good), value, hdrs)
        assert got == want, (hdrs, got, want)
        seen.add(want if isinstance(want, str) else "ok")
    assert seen == {"ok", "TokenizerMismatch", "TokenRecordError"}


@pytest.mark.parametrize("vocab", [300, 8000, 32768, 40000, 65536, 70000])
def test_the_batched_feed_decoder_equals_decoding_record_by_record(vocab: int) -> None:
    """records_decoder decodes a call's records at once (joined values, one vectorised
    vocabulary check). On 400 random lists of records with random faults -- an id at or past
    the vocabulary's end anywhere, a value cut mid-id, another tokenizer or dtype, headers
    missing, empty values -- it returns the same ids as one fresh RecordDecoder per record,
    or raises the same error (type and message, naming the first bad record)."""
    from pyclient.backends import Record
    from pyclient.token_records import records_decoder

    good = TokenizerId("bpe", "h" * 64, vocab)
    other = TokenizerId("bpe", "z" * 64, vocab)
    wide = TokenizerId("bpe", "h" * 64, max(vocab, 70000) if vocab <= 65536 else 300)
    rnd = random.Random(vocab)
    top = (1 << 16) if good.dtype == "u16le" else (1 << 32)

    def record(i: int) -> Record:
        ids = [rnd.choice([0, vocab - 1, rnd.randrange(vocab)]) for _ in range(rnd.randrange(40))]
        value, headers = encode(ids, good), good.headers()
        fault = rnd.random()
        if fault < 0.02 and ids:
            bad = rnd.choice([vocab, top - 1, rnd.randrange(vocab, top)]) if vocab < top else None
            if bad is not None:
                k = rnd.randrange(len(ids))
                w = 2 if good.dtype == "u16le" else 4
                value = value[:k * w] + bad.to_bytes(w, "little") + value[(k + 1) * w:]
        elif fault < 0.03 and value:
            value = value[:-1]
        elif fault < 0.04:
            headers = rnd.choice([other, wide]).headers()
        elif fault < 0.045:
            headers = headers[1:]
        elif fault < 0.06:
            value = None if rnd.random() < 0.5 else b""
        return Record("t", rnd.randrange(3), i, None, value, headers)

    def outcome(f: object, recs: list) -> object:
        try:
            return f(recs)  # type: ignore[operator]
        except (TokenRecordError, TokenizerMismatch) as e:
            return (type(e).__name__, str(e))
    errors = 0
    batched = records_decoder(good)  # one decoder for every call, as the feed keeps it
    for _ in range(400):
        recs = [record(i) for i in range(rnd.choice([1, 2, rnd.randrange(3, 70)]))]
        want = outcome(lambda rs: [RecordDecoder(good).decode(
            r.value, r.headers, f"at partition {r.partition} offset {r.offset}") for r in rs], recs)
        assert outcome(batched, recs) == want
        errors += isinstance(want, tuple)
    assert errors >= 20  # the faults were met, not only clean lists
