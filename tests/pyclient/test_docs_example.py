"""docs/pyclient.md's training loop (``train_ddp.py``) run as written: copied out of the docs,
launched with torchrun (2 gloo ranks x 2 DataLoader workers) against the real broker, stopped
after 4 steps, resumed from its checkpoint with 2 ranks for 9 steps and then with 1 rank to
the mix epoch's end; the batches it trained on (its ``--audit`` files) hold every document of
three weighted topics as often as the final state's passes and cursors say, and a rerun after
the epoch trains on nothing.

With ``KAFKA_KIT_EXAMPLE_LAB`` set to the lab's client files directory
(``inventories/lab/.kafka-kit/clients``, what ``make lab-example`` does), the same test runs
against the lab cluster as the docs tell a user to: topics ``training-ddp-*`` of RF 3 made
with ``admin.properties``, the documents produced as ``training-ingest``, the example run
with ``--client-config training-reader.properties`` (SASL_SSL, the reader's ACLs); the
topics are deleted afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EOS = 256
LAB = os.environ.get("KAFKA_KIT_EXAMPLE_LAB")


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Where the example runs: the test broker, or the lab (``KAFKA_KIT_EXAMPLE_LAB``) with
    its admin, ingest and reader client files."""
    if not LAB:
        yield {"bootstrap": request.getfixturevalue("bootstrap"), "prefix": "ddp", "rf": 1,
               "admin": {}, "producer": {}, "reader": []}
        return
    from pyclient.admin import Admin
    from pyclient.client_props import client_properties

    clients = Path(LAB).resolve()
    files = {u: clients / f"{u}.properties" for u in ("admin", "training-ingest", "training-reader")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    assert not missing, f"KAFKA_KIT_EXAMPLE_LAB={LAB}: no {missing}; run `make lab` first"
    admin = client_properties(files["admin"])
    made: list[str] = []
    yield {"bootstrap": admin["bootstrap.servers"], "prefix": "training-ddp", "rf": 3,
           "admin": admin, "producer": client_properties(files["training-ingest"]),
           "reader": ["--client-config", str(files["training-reader"])], "made": made}
    with Admin(admin) as a:
        for t in made:
            a.delete_topic(t)


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


def _streams(audit: Path) -> dict[tuple[int, str], list[int]]:
    """Each reader's tokens of each source in the order it delivered them (one run)."""
    out: dict[tuple[int, str], list[int]] = {}
    for f in sorted(audit.glob("rank*.jsonl")):
        for line in f.read_text().splitlines():
            reader, src, ids = json.loads(line)
            out.setdefault((reader, src), []).extend(ids)
    return out


def _documents(runs: list[dict[tuple[int, str], list[int]]], docs: set[str]
               ) -> tuple[Counter, list[str]]:
    """Documents from the runs' streams, counted, and the tails left over. A document cut by a
    stop ends a stream of one run without its EOS (a tail) and continues in a stream of a
    later run, wherever that reader's round-robin reaches its partition (a head: a segment
    that is no document, since every document starts with "document "). Each tail is joined
    to the head that completes a document; no head may be left over. A tail may be left over
    where the mix epoch ended inside a document (the state's cursor says so)."""
    whole: Counter = Counter()
    tails, heads = [], []
    for streams in runs:
        for toks in streams.values():
            cur: list[int] = []
            for t in toks:
                if t == EOS:
                    seg = bytes(cur).decode()
                    if seg in docs:
                        whole[seg] += 1
                    else:
                        heads.append(seg)
                    cur = []
                else:
                    cur.append(t)
            if cur:
                tails.append(bytes(cur).decode())
    left = []
    for t in tails:
        h = next((h for h in heads if t + h in docs), None)
        if h is None:
            left.append(t)
            continue
        heads.remove(h)
        whole[t + h] += 1
    assert not heads, f"pieces of documents whose start was never delivered: {heads[:3]}"
    return whole, left


#: topic suffix -> (documents, partitions, weight)
MIX = {"web": (500, 3, 0.7), "code": (150, 2, 0.2), "math": (40, 2, 0.1)}


def test_the_docs_training_loop_stops_resumes_and_trains_on_every_document_once(
        cluster: dict[str, Any], tmp_path: Path) -> None:
    """Three weighted topics; after the runs, each document was trained on as often as the
    final state says: k passes of its partition, plus one for exactly as many documents of
    the partition as its cursor has passed in pass k (the shuffled order's records before
    the cursor), plus a tail where the epoch ended inside a document."""
    pytest.importorskip("torchdata.stateful_dataloader")
    import confluent_kafka as ck

    from pyclient.admin import Admin
    from pyclient.client_props import for_backend

    tag = uuid.uuid4().hex[:6]
    bootstrap = cluster["bootstrap"]
    p = ck.Producer(for_backend({**cluster["producer"], "bootstrap.servers": bootstrap},
                                "confluent"))
    docs: dict[str, dict[int, list[str]]] = {}
    args = []
    for name, (n, parts, w) in MIX.items():
        topic = f"{cluster['prefix']}-{name}-{tag}"
        with Admin({**cluster["admin"], "bootstrap.servers": bootstrap}) as admin:
            admin.ensure_topic(topic, parts, cluster["rf"], {}, if_exists="fail")
        cluster.get("made", []).append(topic)
        docs[topic] = {q: [] for q in range(parts)}
        for i in range(n):
            d = f"document {name} {i} " + "abc " * (i % 20)
            p.produce(topic, d.encode(), partition=i % parts)
            docs[topic][i % parts].append(d)
        args += ["--topic", f"{topic}={w}"]
    assert p.flush(30) == 0
    script = tmp_path / "train_ddp.py"
    script.write_text(_example())
    audit, ckpt = tmp_path / "audit", tmp_path / "ckpt"
    args += ["--bootstrap", bootstrap, "--ckpt", str(ckpt), "--seq-len", "64",
             "--batch-size", "2", "--audit", str(audit), *cluster["reader"]]
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
    every = {d for per in docs.values() for ds in per.values() for d in ds}
    whole, left = _documents(runs[:-1], every)
    cut = []
    for topic, per in docs.items():
        src, passes = state["sources"][topic], state["passes"][topic]
        assert src["epoch"] == 0
        for q, ds in per.items():
            k = passes[str(q)][0]
            o, skip = src["cursor"][str(q)]
            ahead = o - src["start"][str(q)]  # records of pass k already delivered
            counts = sorted(whole[d] for d in ds)
            assert counts == sorted([k] * (len(ds) - ahead) + [k + 1] * ahead), (topic, q)
            if skip:
                cut.append(skip)
        done = [passes[str(q)][0] + (src["cursor"][str(q)][0] == src["end"][str(q)])
                for q in per]
        assert min(done) >= 1, (topic, done)  # the mix epoch ends once every source did a pass
    assert sorted(len(t.encode()) for t in left) == sorted(cut)
    assert all(any(d.startswith(t) for d in every) for t in left)
    assert sum(whole.values()) > sum(n for n, _, _ in MIX.values())  # the small ones repeated
