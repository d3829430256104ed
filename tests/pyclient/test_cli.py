"""The produce/consume commands as a user runs them: stdin, exit codes, oversized records,
unreachable servers and missing topics (bounded, one message), --max-records, client
properties files, SIGTERM (nothing lost, exact resume) and SIGKILL (at-least-once resume)."""

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
from pyclient.backends import make_consumer


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


def test_strict_and_oversized(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    topic = make_topic(bootstrap, topic_name, config={"max.message.bytes": "1000"})
    f = tmp_path / "in.txt"
    f.write_text("ok\n\n")
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--strict")
    assert r.returncode == 1 and "1 malformed" in r.stderr
    # An oversized record is reported and dead-lettered; the lines after it are delivered.
    f.write_text("y" * 4000 + "\nafter\n")
    dl = tmp_path / "dead.jsonl"
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "-X", "compression.type=none",
                 "--dead-letter", str(dl))
    assert r.returncode == 0, r.stderr
    assert f"oversized {f}:1: record of " in r.stdout and "max.message.bytes=1000" in r.stdout
    assert f"1 records larger than the topic's max.message.bytes=1000 were not sent (see {dl})" in r.stderr
    assert [json.loads(x)["line"] for x in dl.read_text().splitlines()] == [1]
    assert [x.value for x in read_all(bootstrap, topic)] == [b"ok", b"after"]
    r = pyclient("produce", "-b", bootstrap, "-t", topic, str(f), "--strict")
    assert r.returncode == 1 and "1 oversized" in r.stderr


@pytest.mark.parametrize("backend", ["confluent", "kafka-python"])
@pytest.mark.parametrize("command", ["produce", "consume"])
def test_unreachable_servers_fail_in_bounded_time_with_one_message(
        command: str, backend: str, tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("one\n")
    args = [str(f)] if command == "produce" else []
    t0 = time.monotonic()
    r = pyclient(command, "-b", "127.0.0.1:1", "--backend", backend, "-t", "t", "--timeout", "3",
                 *args)
    assert time.monotonic() - t0 < 20
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("pyclient: cannot reach the Kafka cluster at 127.0.0.1:1 within 3s")
    assert "refused" in r.stderr.lower()
    # -v shows the client library's own lines, through Python logging
    r = pyclient(command, "-b", "127.0.0.1:1", "--backend", backend, "-t", "t", "--timeout", "2",
                 "-v", *args)
    assert r.returncode == 1 and r.stderr.count("\n") > 1
    assert ("pyclient: pyclient.librdkafka: " if backend == "confluent" else "pyclient: kafka.") \
        in r.stderr


def test_missing_topic_fails_at_start(bootstrap: str, tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("one\n")
    for cmd in (["produce", str(f)], ["consume"]):
        r = pyclient(*cmd, "-b", bootstrap, "-t", "not-declared")
        assert r.returncode == 1
        assert "topic 'not-declared' does not exist" in r.stderr and "Traceback" not in r.stderr


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    c = make_consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return sum(o or 0 for o in c.committed([(topic, p) for p in range(partitions)]).values())
    finally:
        c.close()


@pytest.mark.parametrize("n", [0, 1, 5, 2500])
def test_consume_max_records_writes_and_commits_exactly_n(bootstrap: str, topic_name: str,
                                                          n: int) -> None:
    topic = make_topic(bootstrap, topic_name, partitions=3)
    data = "".join(f"r{i}\n" for i in range(3000))
    assert pyclient("produce", "-b", bootstrap, "-t", topic, "-", input=data).returncode == 0
    group = f"g-{topic}"
    c = pyclient("consume", "-b", bootstrap, "-t", topic, "--group", group, "--stop-at-end",
                 "--max-records", str(n), "--batch-size", "1000")
    assert c.returncode == 0, c.stderr
    assert len(c.stdout.splitlines()) == n and f"consumed {n} records" in c.stderr
    assert _committed(bootstrap, group, topic, 3) == n
    # the rest follows, nothing repeated
    c2 = pyclient("consume", "-b", bootstrap, "-t", topic, "--group", group, "--stop-at-end")
    assert sorted(c.stdout.split() + c2.stdout.split()) == sorted(data.split())


def _props(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("backend", ["confluent", "kafka-python"])
def test_command_config_file_and_env_reach_every_command(bootstrap: str, backend: str,
                                                         topic_name: str, tmp_path: Path) -> None:
    """A Kafka client properties file (plaintext here: the test broker has no TLS) is used by
    produce, consume and smoke; a file asking for SSL on this plaintext listener makes each
    command fail within --timeout, so the file is really read (flag and environment)."""
    topic = make_topic(bootstrap, topic_name)
    good = _props(tmp_path / "client.properties",
                  "# as Kafka's tools take it\nsecurity.protocol = PLAINTEXT\n"
                  "client.id:pyclient-test\nrequest.timeout.ms=20000\n")
    bad = _props(tmp_path / "ssl.properties", "security.protocol=SSL\n"
                 "ssl.endpoint.identification.algorithm=\n")
    f = tmp_path / "in.txt"
    f.write_text("a\nb\n")
    base = ["-b", bootstrap, "--backend", backend]
    r = pyclient("produce", *base, "-t", topic, str(f), "--command-config", str(good))
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "KAFKA_KIT_CLIENT_CONFIG": str(good)}
    r = pyclient("consume", *base, "-t", topic, "--stop-at-end", env=env)
    assert r.returncode == 0 and sorted(r.stdout.split()) == ["a", "b"], r.stderr
    r = pyclient("smoke", *base, "--replication-factor", "1", "--min-insync-replicas", "0",
                 "--records", "200", "--command-config", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    bad_env = {**os.environ, "KAFKA_KIT_CLIENT_CONFIG": str(bad)}
    for cmd, kw in ((["produce", "-t", topic, str(f), "--command-config", str(bad)], {}),
                    (["consume", "-t", topic], {"env": bad_env}),
                    (["smoke", "--records", "10", "--command-config", str(bad)], {})):
        t0 = time.monotonic()
        r = pyclient(*cmd, *base, "--timeout", "3", **kw)
        assert r.returncode == 1 and "cannot reach the Kafka cluster" in r.stderr, (cmd, r.stderr)
        assert time.monotonic() - t0 < 20
    r = pyclient("produce", *base, "-t", topic, str(f), "--command-config", str(tmp_path / "no"))
    assert r.returncode == 2 and "client properties file" in r.stderr and "not found" in r.stderr


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
