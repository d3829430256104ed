"""The produce/consume commands as a user runs them: stdin, exit codes, SIGTERM (nothing
lost, exact resume) and SIGKILL (at-least-once resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import make_topic, read_all


def pyclient(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyclient", *args], capture_output=True,
                          text=True, timeout=240, **kw)  # type: ignore[call-overload]


def test_stdin_produce_then_consume(bootstrap: str, backend: str, topic_name: str) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=2)
    r = pyclient("produce", "-b", bootstrap, "--backend", backend, "-t", topic, "-", "--json",
                 input="alpha\nbeta\n\ngamma\n")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["delivered"] == 3 and s["malformed"] == 1
    assert s["malformed_examples"] == [{"source": "-", "position": 3, "reason": "empty line"}]
    c = pyclient("consume", "-b", bootstrap, "--backend", backend, "-t", topic, "--stop-at-end")
    assert c.returncode == 0, c.stderr
    assert sorted(c.stdout.split()) == ["alpha", "beta", "gamma"]


def test_strict_and_undelivered_exit_nonzero(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "1000"})
    f = tmp_path / "in.txt"
    f.write_text("ok\n\n")
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--strict")
    assert r.returncode == 1 and "1 malformed" in r.stderr
    f.write_text("y" * 4000 + "\n")
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "-X", "compression.type=none")
    assert r.returncode == 1
    assert "not delivered" in r.stderr and "MSG_SIZE_TOO_LARGE" in r.stderr
    assert f"NOT DELIVERED {f}:1" in r.stdout


def _big(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(f"line-{i:07d} " + "z" * (i % 90) + "\n")


def _start(bootstrap: str, topic: str, f: Path, ck: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pyclient", "produce", "-b", bootstrap, "-t",
                             topic, str(f), "--checkpoint", str(ck), "--checkpoint-interval",
                             "0.2", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(ck: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("ingest finished before the signal could be sent (machine too fast)")


N = 400_000


def test_sigterm_flushes_checkpoints_and_resumes_exactly(bootstrap: str, topic_name: str,
                                                         tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=3)
    f, ck = tmp_path / "big.txt", tmp_path / "ck.json"
    _big(f, N)
    proc = _start(bootstrap, topic, f, ck)
    _wait_for(ck, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    s = json.loads(out)
    assert s["interrupted"] and s["failed"] == 0 and 0 < s["delivered"] < N
    line = json.loads(ck.read_text())["inputs"][0]["line"]
    assert line == s["produced"]  # the checkpoint is exactly what was delivered
    vals = [r.value for r in read_all(bootstrap, topic)]
    assert len(vals) == line == len(set(vals))  # nothing lost, nothing doubled so far

    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--checkpoint", str(ck), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["produced"] == N - line
    vals = [r.value for r in read_all(bootstrap, topic)]
    assert len(vals) == N and len(set(vals)) == N


def test_sigkill_resume_loses_nothing(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """A crash (kill -9) loses nothing; duplicates only after the last checkpoint."""
    topic = make_topic(bootstrap, topic_name, partitions=2)
    f, ck = tmp_path / "big.txt", tmp_path / "ck.json"
    _big(f, N)
    proc = _start(bootstrap, topic, f, ck)
    _wait_for(ck, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    line = json.loads(ck.read_text())["inputs"][0]["line"]
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--checkpoint", str(ck))
    assert r.returncode == 0, r.stderr
    counts = Counter(r.value for r in read_all(bootstrap, topic))
    assert len(counts) == N  # every line is there
    dup_lines = [int(v.split()[0][5:]) + 1 for v, c in counts.items() if c > 1]
    assert all(n > line for n in dup_lines)  # repeats only after the checkpoint


def test_usage_errors(bootstrap: str, tmp_path: Path) -> None:
    r = pyclient("produce", "-b", bootstrap, "-t", "x", str(tmp_path / "none-*.txt"))
    assert r.returncode == 2 and "no input matches" in r.stderr
    f, ck = tmp_path / "a.txt", tmp_path / "ck.json"
    f.write_text("one\n")
    ck.write_text(json.dumps({"version": 1, "topic": "other", "inputs": []}))
    r = pyclient("produce", "-b", bootstrap, "-t", "x", str(f), "--checkpoint", str(ck))
    assert r.returncode == 1 and "checkpoint for topic 'other'" in r.stderr
