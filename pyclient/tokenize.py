"""Tokenizers for the training feed: a byte-level one built in, Hugging Face supported."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

Encoder = Callable[[list[str]], list[list[int]]]


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255; id 256 is end-of-document. No dependencies."""

    vocab_size = 257
    eos_id = 256

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8", "surrogatepass")) for t in texts]

    def encode_values(self, values: list[bytes]) -> list[list[int]]:
        """Record values (UTF-8 bytes) straight to ids: no decode/encode round trip."""
        return [list(v) for v in values]

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", "replace")


def as_encoder(tokenizer: Any) -> Encoder:
    """Accept a ByteTokenizer, a ``tokenizers.Tokenizer`` (``encode_batch`` returning
    ``Encoding`` objects with ``.ids``), a ``transformers`` fast tokenizer (callable
    returning ``{"input_ids": ...}``) or a plain function ``list[str] -> list[list[int]]``."""
    if isinstance(tokenizer, ByteTokenizer):
        return tokenizer.encode_batch
    if hasattr(tokenizer, "encode_batch"):
        enc = tokenizer.encode_batch

        def hf(texts: list[str]) -> list[list[int]]:
            out = enc(texts)
            return [e.ids if hasattr(e, "ids") else list(e) for e in out]
        return hf
    if callable(tokenizer):
        def call(texts: list[str]) -> list[list[int]]:
            out = tokenizer(texts)
            return list(out["input_ids"]) if isinstance(out, dict) or hasattr(out, "keys") else out
        return call
    raise TypeError(f"unsupported tokenizer {type(tokenizer).__name__}")


def as_value_encoder(tokenizer: Any) -> Callable[[list[bytes]], list[list[int]]]:
    """Like :func:`as_encoder`, for record values (UTF-8 bytes): the byte tokenizer takes
    the bytes as they are; every other tokenizer gets them decoded (invalid bytes become
    U+FFFD; the producer already counts non-UTF-8 input as malformed)."""
    if isinstance(tokenizer, ByteTokenizer):
        return tokenizer.encode_values
    encode = as_encoder(tokenizer)

    def decoded(values: list[bytes]) -> list[list[int]]:
        return encode([v.decode("utf-8", "replace") for v in values])
    return decoded


def load_tokenizer(spec: str) -> Any:
    """The tokenizer named by ``spec``: ``bytes`` for :class:`ByteTokenizer`, else the path
    of a Hugging Face ``tokenizer.json`` (loaded with the ``tokenizers`` package). Used by
    ``pyclient produce --tokenize SPEC`` and accepted as ``tokenizer=`` by the feed."""
    if spec == "bytes":
        return ByteTokenizer()
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"tokenizer {spec!r}: neither 'bytes' nor a tokenizer.json file")
    try:
        from tokenizers import Tokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("a tokenizer.json needs the tokenizers package: "
                           "pip install 'pyclient[tokenizers]'") from e
    try:
        return Tokenizer.from_file(spec)
    except Exception as e:  # the Rust side raises its own exception type
        raise ValueError(f"tokenizer {spec!r} is not a Hugging Face tokenizer.json: {e}") from e


def eos_of(tokenizer: Any, eos_id: int | None) -> int | None:
    """The end-of-document id: explicit, else the tokenizer's ``eos_id``/``eos_token_id``."""
    if eos_id is not None:
        return eos_id
    for name in ("eos_id", "eos_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            return v
    return None
