"""Token-id records: a document tokenized once, stored as a compact array of token ids.

Value: the ids as a fixed-width little-endian array, ``uint16`` when the vocabulary fits
(``vocab_size <= 65536``), else ``uint32`` (2 or 4 bytes a token; no EOS, the packer adds
it). Headers (Kafka record headers, ``list[(str, bytes)]``):

- ``tok.name``: the tokenizer's name (``pyclient.ByteTokenizer``, a Hugging Face
  ``name_or_path``, or the name given);
- ``tok.hash``: SHA-256 (hex) of the tokenizer's full configuration: a Hugging Face
  tokenizer's JSON (``Tokenizer.to_str()``: vocabulary, merges, normalizer, pre-tokenizer,
  special tokens), the byte tokenizer's fixed description, or the hash given;
- ``tok.dtype``: ``u16le`` or ``u32le``.

A reader states the tokenizer it expects (:class:`TokenizerId`); :class:`RecordDecoder`
refuses a record whose name or hash differ, naming both (ids of another vocabulary would
train silently on garbage). Any other tokenizer needs an explicit
``TokenizerId(name, hash, vocab_size)``: pyclient cannot fingerprint a plain function.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

NAME, HASH, DTYPE = "tok.name", "tok.hash", "tok.dtype"
#: dtype header -> array typecode; both are 2 and 4 bytes on every platform CPython runs on.
_CODES = {"u16le": "H", "u32le": "I"}
_BIG = sys.byteorder == "big"
Headers = list[tuple[str, bytes]]


class TokenRecordError(ValueError):
    """A token-id record that cannot be written or read as asked."""


class TokenizerMismatch(TokenRecordError):
    """The record was written with another tokenizer than the reader's."""


@dataclass(frozen=True)
class TokenizerId:
    """What a token-id record says about its tokenizer."""

    name: str
    hash: str
    vocab_size: int

    @property
    def dtype(self) -> str:
        return "u16le" if self.vocab_size <= 1 << 16 else "u32le"

    def headers(self) -> Headers:
        return [(NAME, self.name.encode()), (HASH, self.hash.encode()),
                (DTYPE, self.dtype.encode())]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tokenizer_id(tokenizer: Any, name: str | None = None) -> TokenizerId:
    """The :class:`TokenizerId` of a ByteTokenizer, a ``tokenizers.Tokenizer`` or a
    ``transformers`` fast tokenizer (or a TokenizerId, returned as is)."""
    from .tokenize import ByteTokenizer

    if isinstance(tokenizer, TokenizerId):
        return tokenizer
    if isinstance(tokenizer, ByteTokenizer):
        desc = json.dumps({"kind": "utf-8 bytes", "vocab_size": tokenizer.vocab_size,
                           "eos_id": tokenizer.eos_id}, sort_keys=True)
        return TokenizerId(name or "pyclient.ByteTokenizer", _sha(desc), tokenizer.vocab_size)
    backend = getattr(tokenizer, "backend_tokenizer", None)  # transformers fast tokenizer
    if backend is not None and hasattr(backend, "to_str"):
        return TokenizerId(name or str(getattr(tokenizer, "name_or_path", "") or
                                       type(tokenizer).__name__),
                           _sha(backend.to_str()), int(len(tokenizer)))
    if hasattr(tokenizer, "to_str") and hasattr(tokenizer, "get_vocab_size"):
        return TokenizerId(name or "tokenizers.Tokenizer", _sha(tokenizer.to_str()),
                           int(tokenizer.get_vocab_size(with_added_tokens=True)))
    raise TokenRecordError(f"cannot fingerprint tokenizer {type(tokenizer).__name__}: pass "
                           "TokenizerId(name, hash, vocab_size) with a hash of its vocabulary "
                           "and configuration")


def encode(ids: Sequence[int], tid: TokenizerId) -> bytes:
    """The record value for ``ids`` (token ids of one document, without EOS)."""
    a = array(_CODES[tid.dtype])
    try:
        a.extend(ids)
    except (OverflowError, TypeError):
        a = array(_CODES[tid.dtype])  # find the offending id for the message
    if len(a) != len(ids) or (len(a) and max(a) >= tid.vocab_size):
        bad = next((i for i in ids if isinstance(i, bool) or not isinstance(i, int)
                    or not 0 <= i < tid.vocab_size), None)
        raise TokenRecordError(f"token id {bad!r} is outside the vocabulary of tokenizer "
                               f"{tid.name} (size {tid.vocab_size}): not a token id of it")
    if _BIG:  # pragma: no cover - little-endian hosts only in CI
        a.byteswap()
    return a.tobytes()


def record_tokenizer(headers: Headers | None) -> tuple[str, str, str]:
    """(name, hash, dtype) from a record's headers; TokenRecordError if it has none."""
    h = {k: v for k, v in (headers or []) if k in (NAME, HASH, DTYPE)}
    if len(h) != 3:
        raise TokenRecordError(f"not a token-id record: headers {NAME}, {HASH}, {DTYPE} missing "
                               f"(has {[k for k, _ in headers or []]}); read the topic as text or "
                               "write it with `pyclient produce --tokenize`")
    vals = {k: (v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v))
            for k, v in h.items()}
    return vals[NAME], vals[HASH], vals[DTYPE]


class RecordDecoder:
    """Decode token-id records written with ``expect``; refuses any other tokenizer."""

    def __init__(self, expect: TokenizerId) -> None:
        self.expect = expect
        self._ok: set[tuple[str, str, str]] = set()
        #: The last three headers of a record already checked, when they are exactly the
        #: tok.* headers (as pyclient's producer writes them), and their dtype: a record whose
        #: headers end the same way has the same tokenizer (later headers win in
        #: record_tokenizer), so it skips parsing them. Per-record cost on the feed's hot path.
        self._tail: Any = None
        self._tail_dtype = ""

    def check(self, headers: Headers | None, where: str | Callable[[], str] = "") -> str:
        """The record's dtype once its tokenizer is checked against ``expect``."""
        if self._tail is not None and headers is not None and headers[-3:] == self._tail:
            return self._tail_dtype
        key = record_tokenizer(headers)
        if key not in self._ok:
            self._validate(key, where)
        tail = headers[-3:] if headers else []  # a slice of the same type: compared as is
        if sorted(k for k, _ in tail) == sorted((NAME, HASH, DTYPE)):
            self._tail, self._tail_dtype = tail, key[2]
        return key[2]

    def _validate(self, key: tuple[str, str, str], where: str | Callable[[], str]) -> None:
        name, h, dtype = key
        at = _where(where)
        if h != self.expect.hash or name != self.expect.name:
            raise TokenizerMismatch(
                f"token-id record{at} was written with tokenizer "
                f"{name} (hash {h[:16]}), this reader expects {self.expect.name} (hash "
                f"{self.expect.hash[:16]}): its ids mean other tokens. Use the tokenizer the "
                "topic was written with, or write the topic again with this one")
        if dtype not in _CODES or dtype != self.expect.dtype:
            raise TokenRecordError(f"token-id record{at}: dtype "
                                   f"{dtype!r}, expected {self.expect.dtype!r} for vocabulary "
                                   f"size {self.expect.vocab_size}")
        self._ok.add(key)

    def decode(self, value: bytes | None, headers: Headers | None,
               where: str | Callable[[], str] = "") -> list[int]:
        """The record's token ids. ``where`` (or a function giving it, called only for an
        error message) says which record it is."""
        dtype = self.check(headers, where)
        a = array(_CODES[dtype])
        data = value or b""
        if len(data) % a.itemsize:
            raise TokenRecordError(f"token-id record{_where(where)}: "
                                   f"{len(data)} bytes is not a whole number of {dtype} ids")
        a.frombytes(data)
        if _BIG:  # pragma: no cover
            a.byteswap()
        ids = a.tolist()
        if ids and max(ids) >= self.expect.vocab_size:  # max of a list: twice as fast as of the array
            raise TokenRecordError(f"token-id record{_where(where)}: id {max(ids)} "
                                   f"is outside the vocabulary (size {self.expect.vocab_size}) "
                                   f"of tokenizer {self.expect.name}: the record is corrupt")
        return ids


def _where(where: str | Callable[[], str]) -> str:
    text = where() if callable(where) else where
    return " " + text if text else ""


@functools.cache
def _torch() -> Any:
    """torch, imported once (None without it): asked on every decode call of the feed."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch


def _vocab_ok(a: array, vocab_size: int) -> bool | None:
    """Whether every id of ``a`` is below ``vocab_size``, checked with one vectorised torch
    reduction over the array's memory (None without torch: the caller checks by itself)."""
    if not a or (a.typecode == "H" and vocab_size >= 1 << 16):
        return True
    torch = _torch()
    if torch is None:  # pragma: no cover - torch is installed wherever tensors are made
        return None
    t = torch.frombuffer(a, dtype=torch.int16 if a.typecode == "H" else torch.int32)
    if a.typecode == "H" and vocab_size > 1 << 15:
        t = t.to(torch.int32) & 0xFFFF  # the int16 view is negative from 32768 up
    lo, hi = torch.aminmax(t)
    return bool(lo >= 0) and bool(hi < vocab_size)


def records_decoder(expect: TokenizerId) -> Any:
    """A function ``records -> token id lists`` for consumed records (with headers) of a
    pre-tokenized topic: the training feed's replacement for tokenizing the values.

    All records of one call are decoded at once (their values joined into one array, one
    ``tolist()``, the vocabulary checked with one vectorised reduction, the lists cut from
    it): ``benchmarks/bench_token_decode.py`` prints both side by side. Any record that
    would fail makes the call decode record by record instead, so the error raised is the
    first record's in order, named, exactly as before."""
    dec = RecordDecoder(expect)
    code = _CODES[expect.dtype]
    size = array(code).itemsize

    def one_by_one(recs: Sequence[Any]) -> list[list[int]]:
        return [dec.decode(r.value, r.headers,
                           lambda r=r: f"at partition {r.partition} offset {r.offset}")
                for r in recs]

    def decode_records(recs: Sequence[Any]) -> list[list[int]]:
        if len(recs) < 2:
            return one_by_one(recs)
        vals = []
        try:
            for r in recs:
                if dec.check(r.headers) != expect.dtype:
                    return one_by_one(recs)
                v = r.value or b""
                if len(v) % size:
                    return one_by_one(recs)
                vals.append(v)
        except TokenRecordError:
            return one_by_one(recs)
        a = array(code)
        a.frombytes(b"".join(vals))
        if _BIG:  # pragma: no cover
            a.byteswap()
        ok = _vocab_ok(a, expect.vocab_size)
        flat = a.tolist()
        if ok is None:
            ok = not flat or max(flat) < expect.vocab_size
        if not ok:
            return one_by_one(recs)
        out, at = [], 0
        for v in vals:
            n = len(v) // size
            out.append(flat[at:at + n])
            at += n
        return out
    return decode_records
