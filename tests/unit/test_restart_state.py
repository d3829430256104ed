"""The pending-restart record (roles/kafka/filter_plugins/kafka_restart.py): what makes a host
pending, what the drift report says, and the controller catch-up gate's parsing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "kafka" / "filter_plugins"))

from kafka_restart import (  # noqa: E402
    kafka_quorum_replication,
    kafka_restart_reasons,
    kafka_restart_record,
    kafka_voter_caught_up,
)

STATS = [
    {"item": "/etc/kafka/server.properties", "stat": {"exists": True, "checksum": "aaa"}},
    {"item": "/etc/kafka/kafka.env", "stat": {"exists": True, "checksum": "bbb"}},
    {"item": "/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf", "stat": {"exists": False}},
]


def test_record_holds_version_and_checksums_missing_files_absent():
    rec = kafka_restart_record(STATS, "kafka_2.13-4.4.0")
    assert rec == {"version": "kafka_2.13-4.4.0",
                   "files": {"/etc/kafka/server.properties": "aaa", "/etc/kafka/kafka.env": "bbb",
                             "/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf": "absent"}}


def test_same_record_is_not_pending():
    rec = kafka_restart_record(STATS, "v")
    assert kafka_restart_reasons(rec, dict(rec)) == []


def test_each_difference_is_a_reason():
    was = kafka_restart_record(STATS, "kafka_2.13-4.3.1")
    now_stats = [dict(STATS[0], stat={"exists": True, "checksum": "zzz"}), STATS[1],
                 {"item": "/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf",
                  "stat": {"exists": True, "checksum": "ccc"}},
                 {"item": "/etc/systemd/system/kafka.service.d/99-user.conf", "stat": {"exists": True, "checksum": "d"}}]
    now = kafka_restart_record(now_stats, "kafka_2.13-4.4.0")
    reasons = kafka_restart_reasons(now, was)
    assert reasons == [
        "version kafka_2.13-4.3.1 -> kafka_2.13-4.4.0",
        "/etc/kafka/server.properties changed",
        "/etc/systemd/system/kafka.service.d/60-kafka-kit-limits.conf added",
        "/etc/systemd/system/kafka.service.d/99-user.conf added",
    ]
    # A drop-in deleted since the start is a change too.
    assert kafka_restart_reasons(was, now)[-1] == "/etc/systemd/system/kafka.service.d/99-user.conf removed"


def test_missing_or_foreign_record_means_pending():
    now = kafka_restart_record(STATS, "v")
    for was in (None, {}, {"files": "x"}, [], "garbage"):
        assert kafka_restart_reasons(now, was) == ["no record of the configuration the running service started with"]


REPLICATION = """NodeId	DirectoryId           	LogEndOffset	Lag	LastFetchTimestamp	LastCaughtUpTimestamp	Status	
1     	AAAAAAAAAAAAAAAAAAAAAA	120         	0  	1796155122681     	1796155122681        	Leader	
2     	AAAAAAAAAAAAAAAAAAAAAA	118         	2  	1796155122670     	1796155122500        	Follower	
3     	AAAAAAAAAAAAAAAAAAAAAA	-1          	-1 	-1                	-1                   	Follower	
4     	AAAAAAAAAAAAAAAAAAAAAA	120         	0  	1796155122681     	1796155122681        	Observer	
"""


def test_replication_rows_parsed():
    rows = kafka_quorum_replication(REPLICATION)
    assert [r["node_id"] for r in rows] == [1, 2, 3, 4]
    assert rows[1] == {"node_id": 2, "directory_id": "AAAAAAAAAAAAAAAAAAAAAA", "log_end_offset": 118,
                       "lag": 2, "last_fetch_ms": 1796155122670, "last_caught_up_ms": 1796155122500,
                       "status": "Follower"}


def test_catch_up_needs_a_fetch_after_the_restart_not_only_a_small_lag():
    # Node 2 lags 2 records only, but its last catch-up predates the restart: not proven.
    assert not kafka_voter_caught_up(REPLICATION, 2, 1796155122600, 100)
    assert kafka_voter_caught_up(REPLICATION, 2, 1796155122500, 100)
    # Caught up after the restart, but lagging more than allowed.
    assert not kafka_voter_caught_up(REPLICATION, 2, 1796155122500, 1)
    # Never fetched; an observer is not a voter; an unknown node; no leader at all.
    assert not kafka_voter_caught_up(REPLICATION, 3, 0, 100)
    assert not kafka_voter_caught_up(REPLICATION, 4, 0, 100)
    assert not kafka_voter_caught_up(REPLICATION, 9, 0, 100)
    assert not kafka_voter_caught_up(REPLICATION.replace("Leader", "Follower"), 2, 0, 100)
    # The leader itself (a single-controller lab) is caught up by definition.
    assert kafka_voter_caught_up(REPLICATION, 1, 1896155122681, 0)
    assert not kafka_voter_caught_up("", 1, 0, 0)
