"""docs/pyclient.md's training loop (``train_ddp.py``) run as written: copied out of the docs,
launched with torchrun (2 gloo ranks x 2 DataLoader workers) against the real broker, stopped
after 4 steps, resumed from its checkpoint with 2 ranks for 9 steps and then with 1 rank to
the epoch's end; the batches it trained on (its ``--audit`` files) hold every document of the
topic exactly once, and a rerun after the epoch trains on nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import make_topic

REPO = Path(__file__).resolve().parents[2]
EOS = 256


def _example() -> str:
    text = (REPO / "docs" / "pyclient.md").read_text()
    m = re.search(r"<!-- example: train_ddp.py -->\n```python\n(.*?)\n```", text, re.S)
    assert m, "the train_ddp.py block is gone from docs/pyclient.md"
    return m.group(1)


def _run(script: Path, nproc: int, args: list[str], tmp: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={nproc}", str(script), *args], env=env, cwd=tmp,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]


def _streams(audit: Path) -> dict[int, list[int]]:
    """Each reader's tokens in the order it delivered them (one run)."""
    out: dict[int, list[int]] = {}
    for f in sorted(audit.glob("rank*.jsonl")):
        for line in f.read_text().splitlines():
            reader, ids = json.loads(line)
            out.setdefault(reader, []).extend(ids)
    return out


def _documents(runs: list[dict[int, list[int]]], docs: list[str]) -> list[str]:
    """Documents from the runs' streams. A document cut by a stop ends a stream of one run
    without its EOS (a tail) and continues in a stream of a later run, wherever that
    reader's round-robin reaches its partition (a head: a segment that is no document, since
    every document starts with "document "). Each tail is joined to the head that completes
    a document; none may be left over."""
    known = set(docs)
    whole, tails, heads = [], [], []
    for streams in runs:
        for toks in streams.values():
            cur: list[int] = []
            for t in toks:
                if t == EOS:
                    seg = bytes(cur).decode()
                    (whole if seg in known else heads).append(seg)
                    cur = []
                else:
                    cur.append(t)
            if cur:
                tails.append(bytes(cur).decode())
    for t in tails:
        h = next((h for h in heads if t + h in known), None)
        assert h is not None, f"a stream ends inside a document that never continues: {t!r}"
        heads.remove(h)
        whole.append(t + h)
    assert not heads, f"pieces of documents whose start was never delivered: {heads[:3]}"
    return whole


def test_the_docs_training_loop_stops_resumes_and_trains_on_every_document_once(
        bootstrap: str, tmp_path: Path) -> None:
    pytest.importorskip("torchdata.stateful_dataloader")
    import confluent_kafka as ck

    topic = make_topic(bootstrap, f"ddp-{uuid.uuid4().hex[:8]}", partitions=5)
    docs = [f"document {i} " + "abc " * (i % 20) for i in range(700)]
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for i, d in enumerate(docs):
        p.produce(topic, d.encode(), partition=i % 5)
    assert p.flush(30) == 0
    script = tmp_path / "train_ddp.py"
    script.write_text(_example())
    audit, ckpt = tmp_path / "audit", tmp_path / "ckpt"
    args = ["--bootstrap", bootstrap, "--topic", topic, "--ckpt", str(ckpt), "--seq-len", "64",
            "--batch-size", "2", "--audit", str(audit)]
    runs = []
    for nproc, extra in ((2, ["--max-steps", "4"]), (2, ["--max-steps", "9"]), (1, []), (1, [])):
        audit.mkdir()
        _run(script, nproc, args + extra, tmp_path)
        runs.append(_streams(audit))
        shutil.rmtree(audit)
        if len(runs) == 1:
            assert (ckpt / "data.json").exists() and (ckpt / "model.pt").exists()
            assert sum(len(s) for s in runs[0].values()) <= 4 * 2 * 2 * 64  # 4 steps, 2 ranks
    assert runs[-1] == {}, "the epoch was over: the rerun trained on something"
    state = json.loads((ckpt / "data.json").read_text())
    assert state["epoch"] == 0 and all(c[0] == state["end"][p] for p, c in state["cursor"].items())
    assert sorted(_documents(runs[:-1], docs)) == sorted(docs)
