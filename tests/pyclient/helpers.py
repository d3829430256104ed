"""Helpers shared by the pyclient tests: topics, corpora and reading a topic back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyclient.admin import Admin
from pyclient.backends import Record, make_consumer
from pyclient.tokenize import ByteTokenizer

EOS = ByteTokenizer.eos_id


def make_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    with Admin({"bootstrap.servers": bootstrap}) as a:
        a.ensure_topic(name, partitions, 1, config or {}, if_exists="fail")
    return name


def corpus(path: Path, n: int, width: int = 40) -> list[str]:
    """Write ``n`` distinct documents of varying length, one per line; return them."""
    docs = [f"doc-{i:06d} " + "lorem ipsum dolor "[: i % 17] * (1 + i % width) for i in range(n)]
    path.write_text("".join(d + "\n" for d in docs))
    return docs


def read_all(bootstrap: str, topic: str) -> list[Record]:
    """Every record of ``topic`` (all partitions, from the beginning up to the end offsets)."""
    c = make_consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}",
                       "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        parts = c.partitions_for(topic)
        ends = {p: c.watermarks(topic, p)[1] for p in parts}
        c.assign([(topic, p, 0) for p in parts])
        out: list[Record] = []
        want = sum(ends.values())
        idle = 0
        while len(out) < want and idle < 30:
            got = c.consume(10000, 1.0)
            idle = 0 if got else idle + 1
            out.extend(got)
        return out
    finally:
        c.close()


def ids(batch: dict[str, Any]) -> list[list[int]]:
    """The batch's sequences as lists (a tensor where torch is installed)."""
    x = batch["input_ids"]
    return x.tolist() if hasattr(x, "tolist") else x


def flat(batches: list[dict[str, Any]]) -> list[int]:
    return [t for b in batches for seq in ids(b) for t in seq]


def docs_of(tokens: list[int]) -> list[str]:
    out, cur = [], bytearray()
    for t in tokens:
        if t == EOS:
            out.append(cur.decode())
            cur = bytearray()
        else:
            cur.append(t)
    assert not cur, "stream ends inside a document"
    return out
