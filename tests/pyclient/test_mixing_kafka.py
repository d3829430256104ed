"""pyclient.mixing over Kafka topics on the real broker (both backends), without the
training feed class: topic_source for a 3-partition "web" topic and a small 1-partition
"code" topic that repeats; the restored sequence equals the uninterrupted one, and mixing
then packing resumes from the packer's state alone to identical batches."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest

from helpers import make_topic
from pyclient.backends import make_producer
from pyclient.mixing import Mixer, mix, topic_source
from pyclient.packing import Packer
from pyclient.tokenize import ByteTokenizer, as_value_encoder

ENC = as_value_encoder(ByteTokenizer())
W = {"web": 0.7, "code": 0.3}


@pytest.fixture(scope="module")
def topics(bootstrap: str) -> dict[str, str]:
    web = make_topic(bootstrap, f"mix-web-{uuid.uuid4().hex[:8]}", partitions=3)
    code = make_topic(bootstrap, f"mix-code-{uuid.uuid4().hex[:8]}", partitions=1)
    errors: list[str] = []
    p = make_producer({"bootstrap.servers": bootstrap}, lambda r, k, h: errors.append(r),
                      "confluent")
    for i in range(60):
        p.produce(web, f"web-{i}-".encode() + b"w" * (i % 7 * 9), key=str(i).encode())
    for i in range(7):
        p.produce(code, f"code-{i}".encode())
    assert p.flush(30) == 0 and not errors
    p.close()
    return {"web": web, "code": code}


def sources(bootstrap: str, topics: dict[str, str], backend: str) -> dict[str, Any]:
    def decode(recs: list[Any]) -> list[list[int]]:
        return ENC([r.value or b"" for r in recs])
    return {n: topic_source(bootstrap, t, decode, backend=backend, chunk=4)
            for n, t in topics.items()}


def run(bootstrap: str, topics: dict[str, str], backend: str, state: dict[str, Any] | None,
        n: int) -> list[tuple[Any, ...]]:
    m = Mixer(W, seed=3)
    if state is not None:
        m.load_state(json.loads(json.dumps(state)))
    it = mix(sources(bootstrap, topics, backend), m)
    try:
        return list(itertools.islice(it, n))
    finally:
        it.close()


def test_kafka_mix_resumes_exactly(bootstrap: str, backend: str,
                                   topics: dict[str, str]) -> None:
    full = run(bootstrap, topics, backend, None, 90)
    names = [n for n, *_ in full]
    assert abs(names.count("code") - 27) <= 1 and abs(names.count("web") - 63) <= 1
    code = [bytes(d).decode() for n, d, _, _ in full if n == "code"]
    assert code == [f"code-{i % 7}" for i in range(len(code))]  # repeats, in order
    assert full[-1][3]["sources"]["code"]["epochs"] == len(code) // 7 - (len(code) % 7 == 0)
    web = [bytes(d).decode().split("-")[1] for n, d, _, _ in full if n == "web"]
    assert len(set(web)) == 60 and len(web) == 63  # one whole pass of web, then a new one
    for k in (17, 61):
        rest = run(bootstrap, topics, backend, full[k - 1][3], 90 - k)
        assert [x[:2] for x in rest] == [x[:2] for x in full[k:]], f"resume after {k}"


def test_kafka_mix_then_pack_resumes_from_the_packer_state(bootstrap: str,
                                                           topics: dict[str, str]) -> None:
    pk = {"seq_len": 24, "batch_size": 2, "eos_id": ByteTokenizer.eos_id,
          "labels": "mask_boundaries"}

    def batches(state: dict[str, Any] | None, n: int) -> list[tuple[Any, dict[str, Any]]]:
        p, m = Packer(**pk), Mixer(W, seed=3)
        if state is not None:
            p.load_state(state)
            m.load_state(state["cursor"][0]["pos"])
        out: list[tuple[Any, dict[str, Any]]] = []
        it = mix(sources(bootstrap, topics, "confluent"), m)
        try:
            for _, doc, before, after in it:
                p.push(doc, source="mix", pos=before, next_pos=after)
                while (b := p.pop()) is not None:
                    out.append((b, json.loads(json.dumps(p.state()))))
                    if len(out) == n:
                        return out
        finally:
            it.close()
        return out
    full = batches(None, 30)
    inside = False
    for k in (5, 23):
        st = full[k - 1][1]
        inside |= st["cursor"][0]["skip"] > 0
        assert [b for b, _ in batches(st, 30 - k)] == [b for b, _ in full[k:]]
    assert inside
    assert len(json.dumps(full[-1][1])) < 1500
