"""Smoke command against the session broker: passes on a healthy 1-broker cluster, fails
clearly when the expectation does not match."""

from __future__ import annotations

import json
import subprocess
import sys

from pyclient.admin import Admin
from pyclient.smoke import checksum, run_smoke


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


def test_smoke_cli_unreachable_cluster_fails() -> None:
    r = _cli("--bootstrap-servers", "127.0.0.1:1", "--records", "10", "--timeout", "5", "-X",
             "socket.connection.setup.timeout.ms=2000", "-X", "log_level=0")
    assert r.returncode == 1
    assert "smoke FAILED" in r.stderr and "brokers" in r.stderr


def test_bad_setting_is_usage_error(bootstrap: str) -> None:
    r = _cli("--bootstrap-servers", bootstrap, "-X", "nonsense")
    assert r.returncode == 2 and "key=value" in r.stderr
