"""A certificate renewal and a kit CA rotation on a running secure cluster, with traffic: the
sequence that `make lab-rotation` runs on the lab (tests/security/test_lab_ca_rotation.py, in
full) and that the default Molecule scenario of `make test` runs in its reduced form
(molecule/default/tests/test_tls_rotation.py).

Converges of site.yml on the cluster's inventory, each a gated roll where files changed:

full (``reduced=False``):
  1. renewal: kafka_tls_renew_days above the certificates' validity (397 days), so every host
     certificate is re-signed by the same CA (new serials);
  2. kafka_tls_ca_rotation=start: a next CA, trusted beside the old one (ca/trust.pem);
  3. the clients are restarted, so that they load the bundle (librdkafka reads its CA file once);
     kafka_tls_ca_rotation=switch: every host certificate issued by the next CA; this
     converge is first SIGKILLed right after its first restart (``interrupted``), finish is
     then refused (with ``--tags security`` and plain) naming the pending restart, and the
     switch rerun completes the roll;
  4. kafka_tls_ca_rotation=finish: the next CA is the kit CA, the old one is retired; this
     converge is first SIGKILLed on the controller between its halves (the next CA copied to
     ca.*, its files and the rotation's state not yet removed) and rerun: the retired copy
     must still be the old CA;
  5. a plain converge: changed=0 on every host;
  and the refusals of switch before start and of finish before switch.
reduced (``reduced=True``): steps 1 and 2 in one converge (``-e kafka_tls_renew_days=400 -e
  kafka_tls_ca_rotation=start``: renewed by the old CA and the bundle trusted in one roll), then
  3 and 4; no refusals (tests/unit/test_tls_rotation.py has them) and no plain rerun (the
  scenario's idempotence step checks the converge before).

Each of these converges is a gated roll: every Kafka host restarted, no two down at once
(systemd's timestamps). Throughout, an idempotent acks=all producer and a consumer run (_traffic.py): no delivery fails,
no TLS or authentication error is reported, and every acknowledged record is read back, by the
running consumer and by a fresh reader at the end, exactly once. At the end the brokers present
certificates of the new CA and a client that trusts only the retired CA is refused."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule" / "shared"))
from kit_rolls import assert_rolled_one_at_a_time, service_spans  # noqa: E402
TRAFFIC = Path(__file__).with_name("_traffic.py")
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
#: TLS and SASL failures: what a rotation done wrong shows (a client that does not trust the
#: broker's new certificate, or a broker that does not trust its peer's).
BAD = ("_SSL", "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED")


@dataclass
class Cluster:
    """Where a secure cluster's inventory and kit files are on this machine."""
    inventory: Path          #: an inventory directory or file, as `-i` takes it
    kit: Path                #: its kafka_security_dir (ca/, hosts/, clients/)
    producer: Path           #: client file of a user that may write new topics' records
    consumer: Path           #: client file of a user that may read them, in any group
    env: dict[str, str]      #: environment of ansible-playbook

    @property
    def admin(self) -> Path:
        return self.kit / "clients" / "admin.properties"


def site(cluster: Cluster, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLAYBOOK), "site.yml", "-i", str(cluster.inventory), *args],
                          cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=timeout)


def downtimes(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """[stop, start] of each Kafka host's kafka.service (molecule/shared/kit_rolls.py)."""
    import testinfra
    import testinfra.utils.ansible_runner

    inv = str(cluster.inventory)
    runner = testinfra.utils.ansible_runner.AnsibleRunner(inv)
    names = sorted(set(runner.get_hosts("kafka_broker")) | set(runner.get_hosts("kafka_controller")))
    return service_spans({n: testinfra.get_host(f"ansible://{n}?ansible_inventory={inv}", sudo=True) for n in names})


def rolled_one_at_a_time(cluster: Cluster, since_us: int, step: str) -> None:
    """Every Kafka host was restarted after ``since_us``, and no two were down at once."""
    assert_rolled_one_at_a_time(downtimes(cluster), since_us, step)


def converge(cluster: Cluster, *extra: str, rolls: bool = False) -> dict[str, int]:
    """site.yml with ``extra``; fails with its output; returns changed= per host. ``rolls``:
    the converge must restart every Kafka host, one at a time."""
    since = time.monotonic_ns() // 1000
    r = site(cluster, *extra)
    if r.returncode != 0:
        raise AssertionError(f"site.yml {' '.join(extra)} failed ({r.returncode}):\n"
                             + r.stdout[-6000:] + r.stderr[-2000:])
    if rolls:
        rolled_one_at_a_time(cluster, since, " ".join(extra))
    return {line.split()[0]: int(line.split("changed=")[1].split()[0])
            for line in r.stdout.splitlines() if "changed=" in line and " : ok=" in line}


def interrupted(cluster: Cluster, *extra: str,
                at: str = "Wait for Kafka to listen after the restart") -> str:
    """site.yml with ``extra``, SIGKILLed (its whole process group, ssh included) as soon as
    its output reaches the task ``at``: by default the first host has just been restarted on
    the step's files and its gate has not passed, so its record is not updated -- the worst
    moment of a roll. Returns the output up to there."""
    import os

    env = dict(cluster.env, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([str(PLAYBOOK), "site.yml", "-i", str(cluster.inventory), *extra],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    seen: list[str] = []
    hit = False
    assert p.stdout is not None
    try:
        for line in p.stdout:
            seen.append(line)
            if at in line:
                hit = True
                os.killpg(p.pid, signal.SIGKILL)
                break
    finally:
        if p.poll() is None and not hit:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    out = "".join(seen)
    assert hit, f"site.yml {' '.join(extra)} never reached {at!r} ({p.returncode}):\n{out[-4000:]}"
    return out


def refused(cluster: Cluster, *extra: str) -> str:
    r = site(cluster, "--tags", "security", *extra, timeout=900)
    assert r.returncode != 0, f"site.yml {' '.join(extra)} was not refused:\n{r.stdout[-3000:]}"
    return r.stdout


class Traffic:
    def __init__(self, cluster: Cluster, topic: str, start: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TRAFFIC), "--topic", topic,
             "--producer-config", str(cluster.producer), "--consumer-config", str(cluster.consumer),
             "--group", f"training-rotation-{uuid.uuid4().hex[:6]}", "--start", str(start)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(5)
        assert self.proc.poll() is None, self.proc.communicate()[1][-3000:]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-3000:]
        return json.loads(out.splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def x509_cn(path: Path) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def issuers(cluster: Cluster) -> dict[str, str]:
    """The issuer CN of the certificate each bootstrap address presents."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    servers = cluster.admin.read_text().split("bootstrap.servers=")[1].split()[0]
    out = {}
    for hp in servers.split(","):
        host, port = hp.rsplit(":", 1)
        pem = ssl.get_server_certificate((host, int(port)))
        cert = x509.load_pem_x509_certificate(pem.encode())
        out[hp] = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return out


def serials(cluster: Cluster) -> dict[str, int]:
    from cryptography import x509

    return {d.name: x509.load_pem_x509_certificate((d / "cert.pem").read_bytes()).serial_number
            for d in sorted((cluster.kit / "hosts").iterdir()) if (d / "cert.pem").exists()}


def read_all(cluster: Cluster, topic: str) -> list[int]:
    import confluent_kafka as ck

    from pyclient.client_props import client_properties, for_backend

    cfg = for_backend(client_properties(cluster.admin), "confluent")
    c = ck.Consumer({**cfg, "group.id": f"rotation-check-{uuid.uuid4().hex[:6]}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=30).topics[topic]
    ends = {p: c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=30)[1] for p in md.partitions}
    c.assign([ck.TopicPartition(topic, p, 0) for p in md.partitions])
    got, pos = [], {p: 0 for p in ends}
    deadline = time.monotonic() + 120
    while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        got.append(int(m.value()))
        pos[m.partition()] = m.offset() + 1
    c.close()
    return got


def check(report: dict, name: str) -> None:
    assert not report["failed"], f"{name}: deliveries failed: {report['failed'][:5]}"
    assert report["unflushed"] == 0, name
    bad = {k: report["samples"][k] for k in report["errors"] if k in BAD}
    assert not bad, f"{name}: TLS/authentication errors: {bad}"
    assert report["acked"], f"{name}: no record was acknowledged"
    assert set(report["read"]) >= set(report["acked"]), \
        f"{name}: {len(set(report['acked']) - set(report['read']))} acknowledged records not read"


def renew_and_rotate(cluster: Cluster, reduced: bool) -> dict:
    """The sequence of the module docstring; returns its timings and record totals."""
    import confluent_kafka as ck
    import confluent_kafka.admin

    from pyclient.admin import Admin
    from pyclient.client_props import client_properties, for_backend

    assert cluster.admin.is_file(), f"{cluster.admin}: no admin client file; converge the cluster first"
    admin = client_properties(cluster.admin)
    topic = f"training-rotation-{uuid.uuid4().hex[:6]}"
    with Admin(admin) as a:
        a.ensure_topic(topic, 3, 3, {"min.insync.replicas": "2"}, if_exists="fail")
    timings: dict[str, float] = {}
    running: list[Traffic] = []
    ca = cluster.kit / "ca"
    try:
        old_ca = x509_cn(ca / "ca.pem")
        before = serials(cluster)
        running.append(Traffic(cluster, topic, 0))
        if reduced:
            t0 = time.monotonic()
            converge(cluster, "-e", "kafka_tls_renew_days=400", "-e", "kafka_tls_ca_rotation=start", rolls=True)
            timings["renewal+start"] = time.monotonic() - t0
        else:
            t0 = time.monotonic()
            converge(cluster, "-e", "kafka_tls_renew_days=400", rolls=True)  # > kafka_tls_cert_days (397)
            timings["renewal"] = time.monotonic() - t0
        renewed = serials(cluster)
        assert all(renewed[h] != before[h] for h in before), (before, renewed)
        assert set(issuers(cluster).values()) == {old_ca}
        if not reduced:
            out = refused(cluster, "-e", "kafka_tls_ca_rotation=switch")
            assert "no rotation was started; run kafka_tls_ca_rotation=start first" in out, out[-3000:]
            t0 = time.monotonic()
            converge(cluster, "-e", "kafka_tls_ca_rotation=start", rolls=True)
            timings["start"] = time.monotonic() - t0
        assert (ca / "trust.pem").read_text().count("BEGIN CERTIFICATE") == 2
        if not reduced:
            out = refused(cluster, "-e", "kafka_tls_ca_rotation=finish")
            assert "run kafka_tls_ca_rotation=switch first" in out, out[-3000:]
        r1 = running[0].stop()  # the clients restart with the bundle, as the docs say
        check(r1, "traffic during renewal and start")
        running.append(Traffic(cluster, topic, 10_000_000))

        t0 = time.monotonic()
        if reduced:
            converge(cluster, "-e", "kafka_tls_ca_rotation=switch", rolls=True)
        else:
            # The switch interrupted at its worst moment (the first host restarted on a
            # certificate of the next CA, its gate not passed), then finish tried at once --
            # with --tags security and as a plain run -- and refused while hosts are pending;
            # then the switch rerun finishes the roll.
            since = time.monotonic_ns() // 1000
            interrupted(cluster, "-e", "kafka_tls_ca_rotation=switch")
            timings["switch-interrupted"] = time.monotonic() - t0
            for tags in (("--tags", "security"), ()):
                r = site(cluster, *tags, "-e", "kafka_tls_ca_rotation=finish", timeout=900)
                assert r.returncode != 0, \
                    f"finish {tags} after an interrupted switch was not refused:\n{r.stdout[-3000:]}"
                assert "a pending restart: that step's roll did not finish" in r.stdout, \
                    r.stdout[-3000:]
            assert (ca / "next.pem").exists(), "the refused finish retired the next CA"
            t0 = time.monotonic()
            converge(cluster, "-e", "kafka_tls_ca_rotation=switch")
            rolled_one_at_a_time(cluster, since, "switch, interrupted then rerun")
        timings["switch"] = time.monotonic() - t0
        new_ca = x509_cn(ca / "next.pem")
        assert new_ca != old_ca
        assert set(issuers(cluster).values()) == {new_ca}

        t0 = time.monotonic()
        if reduced:
            converge(cluster, "-e", "kafka_tls_ca_rotation=finish", rolls=True)
        else:
            # finish killed on the controller between its two halves: the next CA already
            # copied to ca.*, the next CA's files and the rotation's state not yet removed.
            # The rerun must finish it and keep the retired copy of the OLD CA.
            since = time.monotonic_ns() // 1000
            interrupted(cluster, "-e", "kafka_tls_ca_rotation=finish",
                        at="Finish, remove the next CA, then the rotation's state")
            timings["finish-interrupted"] = time.monotonic() - t0
            assert x509_cn(ca / "ca.pem") == new_ca and (ca / "next.pem").exists() \
                and (ca / "rotation.json").exists(), "finish was not stopped between its halves"
            t0 = time.monotonic()
            converge(cluster, "-e", "kafka_tls_ca_rotation=finish")
            rolled_one_at_a_time(cluster, since, "finish, interrupted then rerun")
        timings["finish"] = time.monotonic() - t0
        assert x509_cn(ca / "ca.pem") == new_ca
        assert not (ca / "next.pem").exists() and not (ca / "rotation.json").exists()
        assert (ca / "trust.pem").read_text().count("BEGIN CERTIFICATE") == 1

        if not reduced:
            t0 = time.monotonic()
            changed = converge(cluster)
            timings["rerun"] = time.monotonic() - t0
            assert changed and all(n == 0 for n in changed.values()), changed
        r2 = running[1].stop()
        check(r2, "traffic during switch and finish")

        retired = sorted((ca / "retired").glob("*-ca.pem"))[-1]
        assert x509_cn(retired) == old_ca, f"{retired} holds {x509_cn(retired)}, not the old CA"
        old_trust = {**for_backend(admin, "confluent"), "ssl.ca.location": str(retired)}
        try:
            ck.admin.AdminClient(old_trust).list_topics(timeout=10)
        except ck.KafkaException as e:
            old_refused = str(e)
        else:
            raise AssertionError(f"a client trusting only the retired CA {retired} was let in")

        everything = read_all(cluster, topic)
        counts = Counter(everything)
        acked = set(r1["acked"]) | set(r2["acked"])
        dup = [s for s, n in counts.items() if n > 1]
        assert not dup, f"{len(dup)} records read twice from the topic"
        assert acked <= set(counts), f"{len(acked - set(counts))} acknowledged records lost"
        return {"timings_s": {k: round(v) for k, v in timings.items()},
                "sent": r1["sent"] + r2["sent"], "acked": len(acked),
                "read_back": len(everything), "duplicates": 0,
                "lost": len(acked - set(counts)), "old_ca_client": old_refused[:200],
                "client_errors": [r1["errors"], r2["errors"]]}
    finally:
        for t in running:
            t.kill()
        with Admin(admin) as a:
            a.delete_topic(topic)
