"""Smoke test of a deployed cluster: brokers registered, a topic round trip verified exactly,
and on a SASL listener that an anonymous client, a wrong password and a user without ACLs are
refused, each with the broker's error.

``run_smoke()`` returns a :class:`SmokeReport`; it never prints or exits (the CLI does).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .admin import Admin
from .backends import BrokerInfo, KafkaKitError, make_consumer, make_producer, resolve
from .client_props import for_backend
from .config import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, client_properties, merged
from .probe import Unreachable, probe

MASK = (1 << 64) - 1


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    bootstrap_servers: str
    backend: str
    topic: str
    brokers: list[BrokerInfo] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    partitions: int = 0
    replication_factor: int = 0
    records_sent: int = 0
    records_received: int = 0
    produce_mb_s: float = 0.0
    consume_mb_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def checksum(payloads: list[bytes]) -> int:
    """Order-independent checksum: the sum of 64-bit BLAKE2b digests modulo 2**64.

    A sum (not XOR) so that a duplicated payload changes it too.
    """
    return sum(int.from_bytes(hashlib.blake2b(p, digest_size=8).digest(), "big")
               for p in payloads) & MASK


def _payloads(n: int, size: int) -> list[bytes]:
    filler = os.urandom(max(size, 16))
    return [(b"%012d:" % i + filler)[:max(size, 13)] for i in range(n)]


def run_smoke(bootstrap_servers: str, *, expect_brokers: int | None = None,
              replication_factor: int = 3, min_insync_replicas: int | None = 2,
              partitions: int | None = None, records: int = 10000, record_size: int = 1024,
              expect_racks: bool = False, settings: dict[str, Any] | None = None,
              backend: str | None = None, topic: str | None = None,
              timeout: float = 60.0, command_config: str | None = None) -> SmokeReport:
    """Check the cluster at ``bootstrap_servers``; every outcome is a Check in the report.

    ``command_config``: a Kafka client properties file (else ``$KAFKA_KIT_CLIENT_CONFIG``).
    The first check ("connect") reaches the cluster within ``timeout`` seconds or fails with
    the servers and the cause; nothing else is tried then."""
    be = resolve(backend)
    base = {**client_properties(command_config), "bootstrap.servers": bootstrap_servers,
            **(settings or {})}
    topic = topic or f"kafka-kit-smoke-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    rep = SmokeReport(bootstrap_servers, be, topic, replication_factor=replication_factor)
    try:
        probe(merged(PRODUCER_DEFAULTS, be, None, base), be, None, timeout)
    except Unreachable as e:
        rep.add("connect", False, str(e))
        return rep
    try:
        admin = Admin(base, be, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any failure to connect is the report's answer
        rep.add("connect", False, f"cannot create an admin client: {e}")
        return rep
    try:
        try:
            info = admin.cluster()
        except Exception as e:  # noqa: BLE001
            rep.add("brokers", False, f"cannot describe the cluster: {e}")
            return rep
        rep.brokers = info.brokers
        ids = ", ".join(f"{b.id}@{b.host}:{b.port}(rack={b.rack})" for b in info.brokers)
        if expect_brokers is not None:
            rep.add("brokers", len(info.brokers) == expect_brokers,
                    f"{len(info.brokers)} registered, {expect_brokers} expected: {ids}")
        else:
            rep.add("brokers", len(info.brokers) > 0, f"{len(info.brokers)} registered: {ids}")
        if expect_racks:
            missing = [b.id for b in info.brokers if not b.rack]
            rep.add("broker racks", not missing,
                    f"brokers without broker.rack: {missing}" if missing else "every broker has a rack")
        rep.partitions = partitions or max(len(info.brokers), 1)
        cfg = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
        try:
            admin.ensure_topic(topic, rep.partitions, replication_factor, cfg, if_exists="fail")
        except Exception as e:  # noqa: BLE001
            rep.add("create topic", False, str(e))
            return rep
        rep.add("create topic", True, f"{topic}: {rep.partitions} partitions, RF {replication_factor}")
        try:
            _round_trip(rep, admin, base, be, records, record_size, expect_racks, timeout)
        except Exception as e:  # noqa: BLE001
            rep.add("round trip", False, f"{type(e).__name__}: {e}")
        else:
            native = for_backend(base, "confluent")
            if str(native.get("security.protocol", "")).upper().startswith("SASL"):
                try:
                    _refusals(rep, native, topic, min(timeout, 30.0))
                except Exception as e:  # noqa: BLE001
                    rep.add("refusals", False, f"{type(e).__name__}: {e}")
        finally:
            try:
                admin.delete_topic(topic)
                rep.add("delete topic", True, topic)
            except Exception as e:  # noqa: BLE001
                rep.add("delete topic", False, f"{topic}: {e}")
    finally:
        admin.close()
    return rep


def _metadata_error(settings: dict[str, Any], topic: str, timeout: float) -> str:
    """The error a client with ``settings`` gets asking for ``topic``'s metadata ('' if none)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    errors: list[str] = []
    cfg = {**settings, "error_cb": lambda e: errors.append(str(e)), "log_level": 0}
    client = AdminClient(cfg)
    try:
        md = client.list_topics(topic, timeout=timeout)
    except KafkaException as e:
        client.poll(1.0)  # serves error_cb: the broker's reason (the exception only says "transport")
        return "; ".join(dict.fromkeys(errors + [str(e.args[0])]))
    t = md.topics.get(topic)
    return str(t.error) if t is not None and t.error is not None else ""


def _refusals(rep: SmokeReport, settings: dict[str, Any], topic: str, timeout: float) -> None:
    """Three clients that must be refused, each check naming the error the client got: no SASL
    login (TLS or plaintext only), the admin's user with a wrong password, and a SCRAM user made
    for the check (deleted after it) that holds no ACL."""
    import uuid

    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)
    plain = {k: v for k, v in settings.items() if not k.startswith("sasl.")}
    plain["security.protocol"] = "SSL" if "SSL" in str(settings["security.protocol"]).upper() else "PLAINTEXT"
    err = _metadata_error(plain, topic, min(timeout, 10.0))
    rep.add("anonymous refused", bool(err), err or f"a client without SASL ({plain['security.protocol']}) read metadata")
    wrong = {**settings, "sasl.password": str(settings.get("sasl.password", "")) + "-wrong"}
    err = _metadata_error(wrong, topic, min(timeout, 10.0))
    rep.add("wrong password refused", "authentication" in err.lower(),
            err or "a wrong password was accepted")
    mech = str(settings.get("sasl.mechanism", "SCRAM-SHA-512")).upper()
    if not mech.startswith("SCRAM"):
        rep.add("user without ACLs refused", True, f"skipped: {mech} users are not managed by the cluster")
        return
    admin = AdminClient({**settings, "log_level": 0})
    user, password = f"kafka-kit-smoke-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    m = ScramMechanism.SCRAM_SHA_512 if mech.endswith("512") else ScramMechanism.SCRAM_SHA_256
    for f in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())]).values():
        f.result(timeout)
    try:
        noacl = {**settings, "sasl.username": user, "sasl.password": password}
        deadline, err = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:  # the new credential reaches every broker within moments
            err = _metadata_error(noacl, topic, 5.0)
            if "authoriz" in err.lower():
                break
            time.sleep(1)
        rep.add("user without ACLs refused", "authoriz" in err.lower(),
                f"{user}: {err}" if err else f"{user}, holding no ACL, read the metadata of {topic}")
    finally:
        for f in admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, m)]).values():
            f.result(timeout)


def rack_spread_problems(replicas: dict[int, list[int]], racks: dict[int, str | None]) -> list[int]:
    """Partitions whose replicas span fewer racks than they can: min(replication factor, racks of
    the cluster). Two racks and RF 3 is a valid placement (copies on both racks); three racks
    and RF 3 must put each copy in its own rack. ``racks`` maps every broker id to its rack."""
    cluster_racks = len(set(racks.values())) or 1
    return sorted(p for p, reps in replicas.items()
                  if len({racks.get(r) for r in reps}) < min(len(reps), cluster_racks))


def _round_trip(rep: SmokeReport, admin: Admin, base: dict[str, Any], be: str, records: int,
                record_size: int, expect_racks: bool, timeout: float) -> None:
    parts = _wait_topic(admin, rep.topic, timeout)
    racks = {b.id: b.rack for b in rep.brokers}
    under = [p.partition for p in parts if set(p.isr) != set(p.replicas)]
    rep.add("in-sync replicas", not under,
            f"under-replicated partitions: {under}" if under else "every replica in sync")
    if expect_racks:
        bad = rack_spread_problems({p.partition: list(p.replicas) for p in parts}, racks)
        spread = min(rep.replication_factor, len(set(racks.values())) or 1)
        rep.add("rack spread", not bad, f"partitions whose replicas span fewer than {spread} "
                f"racks: {bad}" if bad else f"each partition's replicas span {spread} rack(s) "
                "(min of replication factor and racks)")

    payloads = _payloads(records, record_size)
    errors: Counter[str] = Counter()
    prod = make_producer(merged(PRODUCER_DEFAULTS, be, None, base),
                         lambda reason, key, headers: errors.update([reason]), be)
    t0 = time.perf_counter()
    for v in payloads:
        while True:
            try:
                prod.produce(rep.topic, v)
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    left = prod.flush(timeout)
    dt = time.perf_counter() - t0
    prod.close()
    total = sum(len(v) for v in payloads)
    rep.records_sent = records - left - sum(errors.values())
    rep.produce_mb_s = total / dt / 1e6
    ok = left == 0 and not errors
    rep.add("produce", ok, f"{records} records acks=all idempotent, {rep.produce_mb_s:.1f} MB/s"
            if ok else f"{left} undelivered after {timeout}s, failures: {dict(errors)}")

    cons = make_consumer(merged(CONSUMER_DEFAULTS, be, None,
                                {**base, "group.id": f"{rep.topic}-check"}), be)
    got: list[bytes] = []
    try:
        cons.assign([(rep.topic, p.partition, 0) for p in parts])
        deadline = time.monotonic() + timeout
        t0 = time.perf_counter()
        while len(got) < records and time.monotonic() < deadline:
            got.extend(r.value or b"" for r in cons.consume(10000, 0.5))
        dt = time.perf_counter() - t0
        # Anything beyond what we sent would be a duplicate; give it a moment to show up.
        got.extend(r.value or b"" for r in cons.consume(10000, 0.5))
    finally:
        cons.close()
    rep.records_received = len(got)
    rep.consume_mb_s = sum(len(v) for v in got) / max(dt, 1e-9) / 1e6
    dups = len(got) - len(set(got))
    rep.add("consume count", len(got) == records, f"{len(got)} received of {records} sent")
    rep.add("no duplicates", dups == 0, f"{dups} duplicate records")
    same = checksum(got) == checksum(payloads)
    rep.add("checksum", same, "payload checksum matches" if same else "payload checksum differs")
    rep.add("consume throughput", True, f"{rep.consume_mb_s:.1f} MB/s")


def _wait_topic(admin: Admin, topic: str, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = admin.describe_topic(topic)
        if parts and all(p.leader >= 0 for p in parts):
            return parts
        time.sleep(0.2)
    raise KafkaKitError(f"topic {topic!r} has no leaders after {timeout}s")
