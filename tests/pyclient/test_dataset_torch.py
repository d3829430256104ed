"""The training feed through torch's own DataLoader (worker processes: fork, spawn,
forkserver), torch.distributed (gloo, ranks initialised without RANK/WORLD_SIZE) and
torchdata's StatefulDataLoader. Exactly-once is checked with the tagged tokenizer of
test_dataset.py: every token names its document and position."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers import corpus, make_topic
from pyclient.dataset import KafkaTokenDataset, from_stateful_dataloader, merge_state_dicts
from pyclient.producer import Ingestor
from test_dataset import check_once, real, tagged

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

SEQ, BATCH = 40, 3


@pytest.fixture(scope="module")
def topic(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    name = make_topic(bootstrap, f"torch-{uuid.uuid4().hex[:8]}", partitions=4)
    f = tmp_path_factory.mktemp("torch") / "docs.txt"
    docs = corpus(f, 900)
    assert Ingestor(bootstrap, name, settings={"sticky.partitioning.linger.ms": 0}).run([str(f)]).ok
    return name, docs


def _dataset(bootstrap: str, name: str, **kw: Any) -> KafkaTokenDataset:
    kw.setdefault("last_batch", "pad")
    return KafkaTokenDataset(bootstrap, name, seq_len=SEQ, batch_size=BATCH, tokenizer=tagged,
                             eos_id=1, **kw)


def test_docs_loop_resumes_when_only_one_worker_yielded(bootstrap: str,
                                                        topic: tuple[str, list[str]]) -> None:
    """The docs' loop with DataLoader(num_workers=2), stopped after the first batch (only
    worker 0 has yielded), checkpointed as JSON, resumed in a new DataLoader: exactly once."""
    name, docs = topic
    ds = _dataset(bootstrap, name)
    assert isinstance(ds, IterableDataset)
    taken: list[dict[str, Any]] = []
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        x = batch["input_ids"]
        assert isinstance(x, torch.Tensor) and x.shape == (BATCH, SEQ) and x.dtype == torch.int64
        taken.append(batch)
        ds.update(batch)  # the loop took it
        break
    ckpt = json.loads(json.dumps({"feed": ds.state_dict()}))

    ds2 = _dataset(bootstrap, name)
    ds2.load_state_dict(ckpt["feed"])
    loader = DataLoader(ds2, batch_size=None, num_workers=2)
    for epoch in range(ds2.epoch, 1):
        ds2.set_epoch(epoch)
        for batch in loader:
            taken.append(batch)
            ds2.update(batch)
    check_once(real(taken), docs)
    # The state after the epoch resumes into epoch 1.
    ds3 = _dataset(bootstrap, name)
    ds3.load_state_dict(ds2.state_dict())
    assert ds3.epoch == 1


def test_reader_with_less_than_one_batch(bootstrap: str, topic_name: str) -> None:
    """Partition 1 holds one short document: its worker never yields in drop mode, and a
    state taken then (and one merged from the workers) resumes exactly."""
    import confluent_kafka as ck

    make_topic(bootstrap, topic_name, partitions=2)
    docs = [f"doc-{i:06d} " + "w" * (i % 50) for i in range(300)]
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for i, d in enumerate(docs):
        p.produce(topic_name, d.encode(), partition=1 if i == 7 else 0)
    assert p.flush(30) == 0
    ds = _dataset(bootstrap, topic_name, last_batch="drop")
    seen_readers = set()
    taken = []
    for batch in DataLoader(ds, batch_size=None, num_workers=2):
        seen_readers.add(batch["kafka_state"]["reader"])
        taken.append(batch)
        ds.update(batch)
        if len(taken) == 5:
            break
    assert seen_readers == {0}
    ds2 = _dataset(bootstrap, topic_name)  # pad: the tail and the short document arrive
    ds2.load_state_dict(ds.state_dict())
    for batch in DataLoader(ds2, batch_size=None, num_workers=2):
        taken.append(batch)
    check_once(real(taken), docs)


DIST_CHILD = textwrap.dedent("""
    import json, os, sys
    import torch, torch.distributed as dist
    from torch.utils.data import DataLoader
    sys.path.insert(0, sys.argv[6])
    from test_dataset import tagged
    from pyclient.dataset import KafkaTokenDataset
    from pyclient.feed_sync import even_batches
    boot, topic, init, rank, out, _, ctx, policy = sys.argv[1:9]
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)
    kw = dict(seq_len=40, batch_size=3, tokenizer=tagged, eos_id=1, last_batch="pad")
    early = KafkaTokenDataset(boot, topic, **kw)   # built before the process group: world 1
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=2)
    try:
        next(iter(early))
        refused = ""
    except Exception as e:
        refused = f"{type(e).__name__}: {e}"
    ds = KafkaTokenDataset(boot, topic, **kw)
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=ctx)
    tokens, steps, pads = [], 0, 0
    for b in even_batches(loader, policy, pad_id=1, shape=(3, 40)):
        steps += 1
        pads += bool(b.get("padding"))
        m = b["attention_mask"].flatten().tolist()
        tokens += [t for t, k in zip(b["input_ids"].flatten().tolist(), m) if k]
        ds.update(b)
    json.dump({"tokens": tokens, "steps": steps, "pads": pads, "refused": refused,
               "world": ds.world_size, "state": ds.state_dict()}, open(out, "w"))
    dist.destroy_process_group()
""")


@pytest.mark.parametrize("ctx,policy", [("spawn", "pad"), ("forkserver", "drop")])
def test_ranks_resolved_in_the_main_process_with_spawned_workers(
        bootstrap: str, topic_name: str, tmp_path: Path, ctx: str, policy: str) -> None:
    """Two gloo ranks initialised without RANK/WORLD_SIZE, workers started by spawn or
    forkserver (they do not inherit the process group): each rank reads only its share, and
    even_batches gives both ranks the same number of steps although their partitions hold
    3:1 documents. pad: the union is exact; drop: nothing repeated, and the merged states
    deliver exactly the rest. A dataset built before init_process_group is refused."""
    import confluent_kafka as ck

    make_topic(bootstrap, topic_name, partitions=4)
    docs = [f"doc-{i:06d} " + "v" * (i % 80) for i in range(400)]
    p = ck.Producer({"bootstrap.servers": bootstrap})
    for i, d in enumerate(docs):  # rank 0 (partitions 0, 1) gets 3x rank 1's documents
        p.produce(topic_name, d.encode(), partition=(0, 0, 0, 1, 1, 1, 2, 3)[i % 8])
    assert p.flush(30) == 0
    init = f"file://{tmp_path}/pg"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    here = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join([here, str(Path(here).parents[1])])
    procs = [subprocess.Popen([sys.executable, "-c", DIST_CHILD, bootstrap, topic_name, init,
                               str(r), str(tmp_path / f"r{r}.json"), here, ctx, policy], env=env)
             for r in range(2)]
    assert [pr.wait(timeout=240) for pr in procs] == [0, 0]
    res = [json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in res] == [2, 2]
    assert all("LayoutError" in r["refused"] and "init_process_group" in r["refused"] for r in res)
    assert res[0]["steps"] == res[1]["steps"]
    for r in res:
        assert r["tokens"], "a rank got nothing"
    tokens = res[0]["tokens"] + res[1]["tokens"]
    if policy == "pad":
        assert res[0]["pads"] + res[1]["pads"] > 0
    else:
        assert res[0]["pads"] == res[1]["pads"] == 0
        rest = _dataset(bootstrap, topic_name, rank=0, world_size=1)
        rest.load_state_dict(merge_state_dicts([r["state"] for r in res]))
        tokens += real(list(rest))
        assert len(tokens) > len(res[0]["tokens"] + res[1]["tokens"])  # something was dropped
    check_once(tokens, docs)


def test_stateful_dataloader(bootstrap: str, topic: tuple[str, list[str]]) -> None:
    """torchdata's StatefulDataLoader with 2 workers: its own state_dict() holds the feed's
    per-worker states; a new loader resumes from it exactly, and the merged feed state
    (from_stateful_dataloader) resumes under another layout (no workers, world 1)."""
    sdl = pytest.importorskip("torchdata.stateful_dataloader")
    name, docs = topic
    dl = sdl.StatefulDataLoader(_dataset(bootstrap, name), batch_size=None, num_workers=2)
    taken = []
    for batch in dl:
        taken.append(batch)
        if len(taken) == 5:
            break
    sd = dl.state_dict()
    del dl
    dl2 = sdl.StatefulDataLoader(_dataset(bootstrap, name), batch_size=None, num_workers=2)
    dl2.load_state_dict(sd)
    check_once(real(taken) + real(list(dl2)), docs)

    one = _dataset(bootstrap, name)
    one.load_state_dict(from_stateful_dataloader(sd))
    check_once(real(taken) + real(list(one)), docs)


LEAK_CHILD = textwrap.dedent("""
    import gc, json, sys
    import confluent_kafka as ck
    from torch.utils.data import DataLoader
    sys.path.insert(0, sys.argv[4])
    from test_dataset import tagged
    from pyclient.backends import make_admin
    from pyclient.dataset import KafkaTokenDataset
    boot, topic, out = sys.argv[1:4]
    gc.disable()  # the cycles below stay uncollected until the workers collect them
    c = ck.Consumer({"bootstrap.servers": boot, "group.id": "leak-" + topic})
    c.subscribe([topic])
    c.poll(3)  # joined: destroying it in a child aborts (rd_kafka_cgrp_destroy_final)
    a = make_admin({"bootstrap.servers": "127.0.0.1:9"})  # never closed, reconnecting
    box = [c, a]
    box.append(box)
    del c, a, box
    ds = KafkaTokenDataset(boot, topic, seq_len=40, batch_size=3, tokenizer=tagged, eos_id=1,
                           last_batch="pad")
    batches = []
    for b in DataLoader(ds, batch_size=None, num_workers=2,
                        worker_init_fn=lambda _: gc.collect()):
        m = b["attention_mask"].flatten().tolist()
        batches += [t for t, k in zip(b["input_ids"].flatten().tolist(), m) if k]
    json.dump(batches, open(out, "w"))
""")


def test_fork_workers_with_leaked_clients_in_the_parent(bootstrap: str, tmp_path: Path,
                                                        topic: tuple[str, list[str]]) -> None:
    """Kafka clients the training script left in reference cycles (a subscribed consumer, an
    admin never closed) are inherited by fork workers; their garbage collector must not
    destroy them (librdkafka's threads are gone there: abort or hang). Every record arrives
    once, and the run ends in bounded time."""
    name, docs = topic
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, str(Path(here).parents[1])])}
    out = tmp_path / "tokens.json"
    done = subprocess.run([sys.executable, "-c", LEAK_CHILD, bootstrap, name, str(out), here],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    check_once(json.loads(out.read_text()), docs)
