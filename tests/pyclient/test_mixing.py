"""pyclient.mixing without a broker: property-style (seeded random weights, source sizes,
schedules and cut points) checks that a restored state continues with exactly the sequence
of the uninterrupted run, that the stride schedule keeps every prefix within about one
document of its weights (tested below 1.05), that small sources repeat with epochs counted
or stop the mix, and that mixing followed by packing resumes to identical batches from the
packer's state alone (including at a source's epoch wrap)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from pyclient.mixing import Mixer, MixError, mix, sequence_source
from pyclient.packing import Packer


def rand_mix(rng: random.Random) -> tuple[dict[str, float], dict[str, list[Any]], dict[str, Any]]:
    names = ["web", "code", "math", "books"][:rng.randrange(1, 5)]
    weights = {n: rng.choice([0.7, 0.2, 0.1, 1, 3, rng.random() + 0.01]) for n in names}
    data = {n: [(n, i, [rng.randrange(10, 99)] * rng.randrange(0, 9))
                for i in range(rng.randrange(1, 30))] for n in names}
    kw = {"seed": rng.randrange(10 ** 6), "schedule": rng.choice(["stride", "random"]),
          "on_exhausted": rng.choice(["repeat", "stop"])}
    kw["by"] = "tokens" if kw["schedule"] == "stride" and rng.random() < 0.3 else "docs"
    return weights, data, kw


def run(weights: dict[str, float], data: dict[str, list[Any]], kw: dict[str, Any],
        state: dict[str, Any] | None, n: int) -> list[tuple[Any, ...]]:
    m = Mixer(weights, **kw)
    if state is not None:
        m.load_state(json.loads(json.dumps(state)))
    srcs = {k: sequence_source(v) for k, v in data.items()}
    return list(itertools.islice(mix(srcs, m, size=lambda d: len(d[2])), n))


@pytest.mark.parametrize("seed", range(80))
def test_restore_continues_the_uninterrupted_sequence(seed: int) -> None:
    rng = random.Random(seed)
    weights, data, kw = rand_mix(rng)
    full = run(weights, data, kw, None, 300)
    for k in sorted({0, rng.randrange(len(full) + 1), len(full) // 3, len(full)}):
        state = full[k - 1][3] if k else None
        rest = run(weights, data, kw, state, 300 - k)
        assert [x[:2] for x in rest] == [x[:2] for x in full[k:]], f"cut after {k}"
        if k:  # the state before a document resumes at that document
            again = run(weights, data, kw, full[k - 1][2], 300 - k + 1)
            assert [x[:2] for x in again] == [x[:2] for x in full[k - 1:]]
    for name, doc, _, after in full:  # every source's documents in order, each pass whole
        assert doc[0] == name
    for name in data:
        idx = [d[1] for n, d, _, _ in full if n == name]
        assert idx == [i % len(data[name]) for i in range(len(idx))]


@pytest.mark.parametrize("seed", range(20))
def test_stride_keeps_every_prefix_within_about_one_document(seed: int) -> None:
    rng = random.Random(seed)
    names = ["a", "b", "c", "d", "e"][:rng.randrange(2, 6)]
    weights = {n: rng.random() + 0.001 for n in names}
    m = Mixer(weights, seed=seed)
    srcs = {n: sequence_source([[1]] * 7) for n in names}  # small: they repeat
    for k, (_, _, _, st) in enumerate(itertools.islice(mix(srcs, m), 2000), start=1):
        for n in names:
            assert abs(st["sources"][n]["docs"] - m.weights[n] * k) < 1.05, (k, n, st)
    rep = m.report()
    assert abs(sum(r["share"] for r in rep.values()) - 1) < 1e-9
    for n in names:
        assert rep[n]["epochs"] == (rep[n]["docs"] - 1) // 7
        assert abs(rep[n]["share"] - m.weights[n]) <= 1 / 2000


def test_random_schedule_is_seeded_and_close_to_the_weights() -> None:
    w = {"web": 0.7, "code": 0.2, "math": 0.1}

    def seq(seed: int) -> list[str]:
        srcs = {n: sequence_source([[1]] * 5) for n in w}
        return [n for n, *_ in itertools.islice(mix(srcs, Mixer(w, seed=seed,
                                                                 schedule="random")), 20000)]
    a, b, c = seq(1), seq(1), seq(2)
    assert a == b and a != c
    for n, p in w.items():
        sd = (p * (1 - p) / 20000) ** 0.5
        assert abs(a.count(n) / 20000 - p) < 5 * sd, n


def test_docs_example_web_code_math() -> None:
    """The docs' example: web 0.7, code 0.2, math 0.1, math is small and repeats."""
    m = Mixer({"web": 0.7, "code": 0.2, "math": 0.1}, seed=1)
    srcs = {"web": sequence_source(["w"] * 1000), "code": sequence_source(["c"] * 1000),
            "math": sequence_source(["m"] * 3)}
    got = "".join(d for _, d, _, _ in itertools.islice(mix(srcs, m), 100))
    assert (got.count("w"), got.count("c"), got.count("m")) == (70, 20, 10)
    assert m.report()["math"] == {"weight": pytest.approx(0.1), "docs": 10, "tokens": 10,
                                  "share": 0.1, "epochs": 3}


def test_stop_ends_the_mix_at_the_first_exhausted_source() -> None:
    m = Mixer({"big": 0.5, "small": 0.5}, seed=3, on_exhausted="stop")
    srcs = {"big": sequence_source([[i] for i in range(100)]),
            "small": sequence_source([[7], [8], [9]])}
    out = list(mix(srcs, m))
    assert [d for n, d, _, _ in out if n == "small"] == [[7], [8], [9]]
    assert m.stopped_by == "small" and m.state()["stopped_by"] == "small"
    again = Mixer({"big": 0.5, "small": 0.5}, seed=3, on_exhausted="stop")
    again.load_state(m.state())
    assert list(mix(srcs, again)) == []


def test_bad_weights_sources_and_states_are_named() -> None:
    for w in ({}, {"a": 0}, {"a": -1}, {"a": float("nan")}, {"a": True}):
        with pytest.raises(MixError):
            Mixer(w)
    with pytest.raises(MixError, match="source 'a': weight must be"):
        Mixer({"a": 0, "b": 1})
    with pytest.raises(MixError, match="by='tokens' needs schedule='stride'"):
        Mixer({"a": 1}, schedule="random", by="tokens")
    with pytest.raises(MixError, match="source 'e' has no documents"):
        list(mix({"a": sequence_source([[1]]), "e": sequence_source([])},
                 Mixer({"a": 1, "e": 1})))
    with pytest.raises(MixError, match=r"do not match the weights"):
        list(mix({"a": sequence_source([[1]])}, Mixer({"a": 1, "b": 1})))
    m = Mixer({"a": 1, "b": 1}, seed=1)
    with pytest.raises(MixError, match=r"'seed': the state has 1, this mixer 2"):
        Mixer({"a": 1, "b": 1}, seed=2).load_state(m.state())
    with pytest.raises(MixError, match=r"'weights'"):
        Mixer({"a": 1, "b": 2}, seed=1).load_state(m.state())
    with pytest.raises(MixError, match="expected format"):
        m.load_state({"format": "pyclient.feed"})
    bad = m.state()
    bad["step"] = 5
    with pytest.raises(MixError, match="'step'"):
        m.load_state(bad)


@pytest.mark.parametrize("seed", range(30))
def test_mix_then_pack_resumes_to_identical_batches(seed: int) -> None:
    """The packer keeps the mixer's state before each document as its position: its state
    alone restores both, and the batches after a resume are those of the uninterrupted run."""
    rng = random.Random(seed)
    weights, data, kw = rand_mix(rng)
    kw["on_exhausted"] = "repeat"
    data = {n: v[:rng.randrange(1, 6)] for n, v in data.items()}  # small: they wrap
    pk = {"seq_len": rng.choice([3, 8, 17]), "batch_size": rng.choice([1, 2]), "eos_id": 1,
          "max_doc_len": rng.choice([None, 4]), "labels": "mask_boundaries"}

    def batches(state: dict[str, Any] | None, n: int) -> list[tuple[Any, dict[str, Any]]]:
        p, m = Packer(**pk), Mixer(weights, **kw)
        if state is not None:
            state = json.loads(json.dumps(state))
            p.load_state(state)
            m.load_state(state["cursor"][0]["pos"])
        out: list[tuple[Any, dict[str, Any]]] = []
        srcs = {k: sequence_source(v) for k, v in data.items()}
        for _, doc, before, after in mix(srcs, m, size=lambda d: len(d[2])):
            p.push(doc[2], source="mix", pos=before, next_pos=after)
            while (b := p.pop()) is not None:
                out.append((b, p.state()))
                if len(out) == n:
                    return out
        return out
    full = batches(None, 40)
    wraps = sum(s["epochs"] for s in full[-1][1]["cursor"][0]["pos"]["sources"].values())
    assert wraps > 0  # a source passed its end: the resumes below cross epoch wraps
    for k in (1, rng.randrange(1, 40), 39):
        assert [b for b, _ in batches(full[k - 1][1], 40 - k)] == [b for b, _ in full[k:]]
    assert len(json.dumps(full[-1][1])) < 2000  # positions and counters, no tokens
