"""Input readers for the producer: text lines, JSONL and a Parquet column, from files,
globs and stdin. Each reader yields one tuple per input record so that the hot loop stays
small:

``(position, end_offset, value, key, bad_reason, raw)``

``position`` is the 1-based line (text, JSONL) or row (Parquet) number; ``end_offset``
the byte offset just after the line (text, JSONL; -1 for Parquet) so that a resume can
seek; ``value`` the document as UTF-8 bytes, or None when the record is malformed, in which
case ``bad_reason`` says why and ``raw`` holds the input bytes.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

Item = tuple[int, int, "bytes | None", "bytes | None", "str | None", bytes]
FORMATS = ("text", "jsonl", "parquet")
STDIN = "-"


def expand(paths: list[str]) -> list[str]:
    """Expand globs (sorted, so the order is stable across a resume); ``-`` is stdin."""
    out: list[str] = []
    for p in paths:
        if p == STDIN:
            out.append(p)
            continue
        hits = sorted(glob.glob(p, recursive=True))
        if not hits and not os.path.exists(p):
            raise FileNotFoundError(f"no input matches {p!r}")
        out.extend(h for h in (hits or [p]) if os.path.isfile(h))
    return out


def guess_format(path: str) -> str:
    name = path.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def read(path: str, fmt: str, *, field: str = "text", key_field: str | None = None,
         start_line: int = 0, start_offset: int = 0) -> Iterator[Item]:
    """Yield items of ``path`` after ``start_line`` (lines/rows already ingested)."""
    if fmt == "parquet":
        yield from _parquet(path, field, key_field, start_line)
        return
    if path == STDIN:
        if start_line:
            raise ValueError("stdin cannot be resumed from a checkpoint")
        yield from _lines(sys.stdin.buffer, fmt, field, key_field, 0, 0)
        return
    with open(path, "rb", buffering=1 << 20) as f:
        f.seek(start_offset)
        yield from _lines(f, fmt, field, key_field, start_line, start_offset)


def _lines(f: BinaryIO, fmt: str, field: str, key_field: str | None, n: int,
           offset: int) -> Iterator[Item]:
    jsonl = fmt == "jsonl"
    loads = json.loads
    for raw in f:
        n += 1
        offset += len(raw)
        line = raw.rstrip(b"\r\n")
        if not line or line.isspace():
            yield n, offset, None, None, "empty line", raw
            continue
        if not jsonl:
            if line.isascii():  # fast path: ASCII is valid UTF-8
                yield n, offset, line, None, None, raw
                continue
            try:
                line.decode()
            except UnicodeDecodeError as e:
                yield n, offset, None, None, f"not UTF-8 ({e.reason} at byte {e.start})", raw
                continue
            yield n, offset, line, None, None, raw
            continue
        try:
            obj = loads(line)
        except UnicodeDecodeError as e:
            yield n, offset, None, None, f"not UTF-8 ({e.reason} at byte {e.start})", raw
            continue
        except ValueError as e:
            yield n, offset, None, None, f"bad JSON ({e})", raw
            continue
        doc = obj.get(field) if isinstance(obj, dict) else None
        if not isinstance(doc, str):
            why = "missing field" if doc is None else "non-string field"
            yield n, offset, None, None, f"{why} {field!r}", raw
            continue
        if not doc.strip():
            yield n, offset, None, None, f"empty field {field!r}", raw
            continue
        key = None
        if key_field is not None:
            k = obj.get(key_field)
            if k is None:
                yield n, offset, None, None, f"missing key field {key_field!r}", raw
                continue
            key = str(k).encode()
        try:
            yield n, offset, doc.encode(), key, None, raw
        except UnicodeEncodeError:  # lone surrogates from \ud800 escapes
            yield n, offset, None, None, f"field {field!r} is not valid Unicode", raw


def _parquet(path: str, column: str, key_field: str | None, start_row: int) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("Parquet input needs pyarrow: pip install 'pyclient[parquet]'") from e
    pf = pq.ParquetFile(path)
    if column not in pf.schema_arrow.names:
        raise ValueError(f"{path}: no column {column!r} (columns: {pf.schema_arrow.names})")
    cols = [column] + ([key_field] if key_field else [])
    row = 0
    for batch in pf.iter_batches(columns=cols, batch_size=8192):
        docs = batch.column(0).to_pylist()
        keys = batch.column(1).to_pylist() if key_field else [None] * len(docs)
        for doc, k in zip(docs, keys):
            row += 1
            if row <= start_row:
                continue
            if not isinstance(doc, str) or not doc.strip():
                why = "null value" if doc is None else ("empty value" if isinstance(doc, str)
                                                        else "non-string value")
                yield row, -1, None, None, f"{why} in column {column!r}", repr(doc).encode()
                continue
            yield row, -1, doc.encode("utf-8", "surrogatepass"), (
                None if k is None else str(k).encode()), None, b""
