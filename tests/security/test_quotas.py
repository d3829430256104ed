"""Client quotas as code (roles/kafka_access, pyclient/access.py ensure_quotas) on the real
secure broker of _secure.py, through ansible-playbook and the role's real module: check mode
reports and changes nothing, a run sets the declared quotas (read back by Kafka's own
kafka-configs.sh), a rerun changes nothing, a changed value and a key left out are applied,
undeclared entities are reported and cleared only on request, and a producer over its quota is
throttled by the broker. Bad declarations fail naming the entry."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pyclient.access import AccessError, declared_quotas
from test_access import INGEST_PW, _admin_settings, _play, _recap_changed, _settings

INGEST_RATE = 1024 * 1024          # bytes/s per broker for training-ingest
QUOTAS = [
    {"user": "training-ingest", "producer_byte_rate": INGEST_RATE},
    {"user": "<default>", "consumer_byte_rate": 52428800, "request_percentage": 50},
    {"user": "training-reader", "client_id": "feed-1", "consumer_byte_rate": 104857600},
]


def _quota_play(c: dict, *args: str, quotas=None, remove: bool = False):
    return _play(c, *args, extra={"kafka_access_quotas": QUOTAS if quotas is None else quotas,
                                  "kafka_access_remove_undeclared_quotas": remove})


def _described(c: dict) -> str:
    """Kafka's own view: kafka-configs.sh --describe of every user and client-id quota."""
    from _secure import describe_quotas
    return describe_quotas(c)


@pytest.fixture(scope="module")
def applied(secure_cluster: dict) -> dict:
    c = secure_cluster
    before = _described(c)
    check = _quota_play(c, "--check", "--diff")
    after_check = _described(c)
    run = _quota_play(c, "-v", "--diff")
    after_run = _described(c)
    rerun = _quota_play(c)
    return {"c": c, "before": before, "check": check, "after_check": after_check, "run": run,
            "after_run": after_run, "rerun": rerun}


def test_check_mode_reports_quotas_and_sets_none(applied):
    assert applied["check"].returncode == 0, applied["check"].stdout[-3000:]
    assert "quota user=training-ingest: producer_byte_rate=1048576" in applied["check"].stdout
    assert "training-ingest' are producer_byte_rate" not in applied["after_check"]
    assert "byte_rate" not in applied["after_check"], applied["after_check"]


def test_run_sets_the_declared_quotas_as_kafka_reads_them(applied):
    assert applied["run"].returncode == 0, applied["run"].stdout[-3000:]
    assert _recap_changed(applied["run"].stdout) == 1
    got = applied["after_run"]
    assert "user-principal 'training-ingest' are producer_byte_rate=1048576.0" in got, got
    assert "the default user-principal are" in got and "request_percentage=50.0" in got, got
    assert "user-principal 'training-reader', client-id 'feed-1' are consumer_byte_rate=1.048576E8" in got, got


def test_rerun_changes_nothing(applied):
    assert applied["rerun"].returncode == 0
    assert _recap_changed(applied["rerun"].stdout) == 0, applied["rerun"].stdout[-2000:]


def test_producer_over_its_quota_is_throttled(applied):
    """16 MiB from training-ingest at 1 MiB/s (Kafka measures a rate over its 11 one-second
    windows, so the burst must exceed about 10 s of quota): the broker throttles it, reported to
    the client as a throttle time (librdkafka's throttle_cb) and seen as a slower send; the same
    from the admin (the default user quota sets no producer rate) is not throttled."""
    c = applied["c"]
    admin = AdminClient(_admin_settings(c))
    topic = f"quota-{uuid.uuid4().hex[:6]}"
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result()
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    acls = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:training-ingest", "*",
                       op, AclPermissionType.ALLOW) for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    for f in admin.create_acls(acls).values():
        f.result()

    def send(settings: dict) -> tuple[float, int]:
        errors: list[str] = []
        throttled_ms: list[int] = []
        p = Producer({**settings, "linger.ms": 5, "batch.size": 262144,
                      "throttle_cb": lambda e: throttled_ms.append(int(e.throttle_time * 1000))})
        report = lambda err, _m: errors.append(str(err)) if err else None  # noqa: E731
        for _ in range(30):   # the new ACLs reach the authorizer
            p.produce(topic, b"warm-up", on_delivery=report)
            p.flush(30)
            if not errors:
                break
            errors.clear()
            time.sleep(1)
        t0 = time.monotonic()
        for _ in range(256):
            p.produce(topic, b"x" * 65536, on_delivery=report)
            p.poll(0)
        assert p.flush(120) == 0 and not errors, errors
        return time.monotonic() - t0, max(throttled_ms, default=0)

    slow, throttle = send(_settings(c, "training-ingest", INGEST_PW))
    fast, none = send(_admin_settings(c))
    assert throttle > 0 and none == 0, (throttle, none)
    assert slow > 2 * fast, (slow, fast)


def test_changed_value_and_removed_key_applied(applied):
    c = applied["c"]
    changed = [dict(QUOTAS[0], producer_byte_rate=2 * INGEST_RATE), {"user": "<default>", "consumer_byte_rate": 52428800},
               QUOTAS[2]]
    out = _quota_play(c, "--diff", quotas=changed)
    assert out.returncode == 0 and _recap_changed(out.stdout) == 1, out.stdout[-3000:]
    assert "-quota user=training-ingest: producer_byte_rate=1048576" in out.stdout
    assert "+quota user=training-ingest: producer_byte_rate=2097152" in out.stdout
    got = _described(c)
    assert "producer_byte_rate=2097152.0" in got and "request_percentage" not in got, got
    assert _recap_changed(_quota_play(c, quotas=changed).stdout) == 0


def test_undeclared_quotas_reported_then_cleared_on_request(applied):
    c = applied["c"]
    only = [QUOTAS[0]]
    assert _quota_play(c, quotas=only).returncode == 0   # training-ingest back at its declared rate
    reported = _quota_play(c, "-v", quotas=only)
    assert reported.returncode == 0 and _recap_changed(reported.stdout) == 0, reported.stdout[-3000:]
    assert "quota user=training-reader client-id=feed-1: consumer_byte_rate=104857600" in reported.stdout
    cleared = _quota_play(c, "--diff", quotas=only, remove=True)
    assert cleared.returncode == 0 and _recap_changed(cleared.stdout) == 1, cleared.stdout[-3000:]
    got = _described(c)
    assert "feed-1" not in got and "the default user-principal" not in got, got
    assert "training-ingest" in got
    assert _recap_changed(_quota_play(c, quotas=only, remove=True).stdout) == 0


@pytest.mark.parametrize("entry, message", [
    ({"producer_byte_rate": 1}, "quotas[0]: name a user and/or a client_id"),
    ({"user": "a", "producer_rate": 1}, "quotas[0]: unknown keys ['producer_rate']"),
    ({"user": "a"}, "quotas[0]: set at least one of producer_byte_rate"),
    ({"user": "a", "consumer_byte_rate": "fast"}, "quotas[0].consumer_byte_rate='fast': a number is needed"),
    ({"user": "a", "consumer_byte_rate": 0}, "quotas[0].consumer_byte_rate=0: must be above 0"),
    ({"user": "", "consumer_byte_rate": 1}, "quotas[0].user is empty"),
])
def test_bad_quota_entries_named(entry, message):
    with pytest.raises(AccessError, match=None) as e:
        declared_quotas([entry])
    assert message in str(e.value)


def test_a_quota_declared_twice_is_refused_by_the_role(secure_cluster):
    out = _quota_play(secure_cluster, quotas=[{"user": "x", "producer_byte_rate": 1},
                                              {"user": "x", "consumer_byte_rate": 1}])
    assert out.returncode != 0
    assert "Nothing was changed: quotas[1]: user=x is declared twice" in out.stdout, out.stdout[-2000:]
