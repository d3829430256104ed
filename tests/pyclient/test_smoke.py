"""Smoke command against the session broker: passes on a healthy 1-broker cluster, fails
clearly when the expectation does not match."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest

from pyclient.admin import Admin
from pyclient.smoke import checksum, rack_spread_problems, run_smoke


def test_checksum_is_order_independent_and_sees_duplicates() -> None:
    a, b, c = b"a", b"b", b"c"
    assert checksum([a, b, c]) == checksum([c, a, b])
    assert checksum([a, b, c]) != checksum([a, b, c, c])
    assert checksum([a, b]) != checksum([a, c])


def test_smoke_library_passes_on_one_broker(bootstrap: str, backend: str) -> None:
    rep = run_smoke(bootstrap, expect_brokers=1, replication_factor=1, min_insync_replicas=1,
                    records=2000, record_size=512, expect_racks=True, backend=backend)
    assert rep.ok, rep.failures
    assert [b.id for b in rep.brokers] == [1]
    assert rep.records_sent == rep.records_received == 2000
    names = {c.name for c in rep.checks}
    assert {"brokers", "produce", "consume count", "checksum", "no duplicates",
            "rack spread", "delete topic"} <= names
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        assert admin.describe_topic(rep.topic) is None, "smoke topic left behind"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyclient", "smoke", *args],
                          capture_output=True, text=True, timeout=180)


def test_smoke_cli_json_ok(bootstrap: str) -> None:
    r = _cli("--bootstrap-servers", bootstrap, "--expect-brokers", "1", "--replication-factor",
             "1", "--min-insync-replicas", "1", "--records", "3000", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] is True
    assert rep["records_received"] == 3000
    assert rep["produce_mb_s"] > 0 and rep["consume_mb_s"] > 0


def test_smoke_cli_fails_when_brokers_missing(bootstrap: str) -> None:
    r = _cli("--bootstrap-servers", bootstrap, "--expect-brokers", "3", "--records", "100")
    assert r.returncode == 1
    assert "smoke FAILED" in r.stderr
    assert "1 registered, 3 expected" in r.stderr
    assert "[FAIL] brokers" in r.stdout


@pytest.mark.parametrize("backend", ["confluent", "kafka-python"])
def test_smoke_cli_unreachable_cluster_fails_fast_with_one_message(backend: str) -> None:
    t0 = time.monotonic()
    r = _cli("--bootstrap-servers", "127.0.0.1:1", "--backend", backend, "--records", "10",
             "--timeout", "3")
    assert time.monotonic() - t0 < 20
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "smoke FAILED: connect (cannot reach the Kafka cluster at 127.0.0.1:1 within 3s" in r.stderr
    assert "refused" in r.stderr.lower() or "ECONNREFUSED" in r.stderr
    assert "[FAIL] connect" in r.stdout


def test_bad_setting_is_usage_error(bootstrap: str) -> None:
    r = _cli("--bootstrap-servers", bootstrap, "-X", "nonsense")
    assert r.returncode == 2 and "key=value" in r.stderr


# -- rack spread: each partition spans min(replication factor, racks) racks ---------------------
def test_rack_spread_two_racks_rf3_is_valid() -> None:
    """Two racks and RF 3 (a valid rack-aware placement: copies on both racks) passes; the old
    rule (every replica on its own rack) failed it."""
    racks = {1: "a", 2: "b", 3: "a", 4: "b"}
    assert rack_spread_problems({0: [1, 2, 3], 1: [2, 3, 4], 2: [4, 1, 2]}, racks) == []
    assert rack_spread_problems({0: [1, 3, 2], 1: [1, 3, 4]}, racks) == []
    assert rack_spread_problems({0: [1, 3], 1: [1, 3, 1]}, racks) == [0, 1]  # one rack only


def test_rack_spread_three_racks_needs_three() -> None:
    racks = {1: "a", 2: "b", 3: "c", 4: "a"}
    assert rack_spread_problems({0: [1, 2, 3], 1: [4, 2, 3]}, racks) == []
    assert rack_spread_problems({0: [1, 4, 2], 1: [2, 3, 4]}, racks) == [0]


def test_rack_spread_without_racks_and_rf1() -> None:
    assert rack_spread_problems({0: [1]}, {1: None}) == []
    assert rack_spread_problems({0: [1], 1: [2]}, {1: "a", 2: "b"}) == []


def test_rack_spread_property_random_clusters() -> None:
    """Seeded random clusters: a placement that uses min(RF, racks) racks is never flagged; the
    same placement with one replica moved onto an already used rack always is."""
    rng = random.Random(20261201)
    for _ in range(500):
        n_racks = rng.randint(1, 4)
        brokers = list(range(1, rng.randint(n_racks, 12) + 1))
        racks = {b: f"r{i % n_racks}" for i, b in enumerate(brokers)}
        by_rack: dict[str, list[int]] = {}
        for b, r in racks.items():
            by_rack.setdefault(r, []).append(b)
        rf = rng.randint(1, len(brokers))
        order = list(by_rack)
        rng.shuffle(order)
        # Rack-aware: round-robin over racks first, then any broker not yet used.
        reps: list[int] = [by_rack[r][0] for r in order][:rf]
        rest = [b for b in brokers if b not in reps]
        rng.shuffle(rest)
        reps += rest[:rf - len(reps)]
        assert rack_spread_problems({0: reps}, racks) == [], (reps, racks)
        need = min(rf, n_racks)
        if need >= 2:
            used = {racks[b] for b in reps}
            # Keep one broker per rack on `need - 1` racks, fill the rest from those racks only.
            keep_racks = sorted(used)[:need - 1]
            pool = [b for b in brokers if racks[b] in keep_racks]
            if len(pool) >= rf:
                worse = rng.sample(pool, rf)
                assert rack_spread_problems({0: worse}, racks) == [0], (worse, racks)
