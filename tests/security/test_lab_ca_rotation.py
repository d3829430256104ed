"""Certificate renewal and a kit CA rotation on the running secure lab, with traffic: `make
lab-rotation` (after `make lab`; skipped without KAFKA_KIT_LAB_ROTATION=1, since it changes the
lab's CA). Five converges of site.yml on inventories/lab, each a gated roll where files changed:

1. renewal: kafka_tls_renew_days above the certificates' validity, so every host certificate is
   re-signed by the same CA (new serials);
2. kafka_tls_ca_rotation=start: a next CA, trusted beside the old one (ca/trust.pem);
3. the clients are restarted, so that they load the bundle (librdkafka reads its CA file once);
   kafka_tls_ca_rotation=switch: every host certificate issued by the next CA;
4. kafka_tls_ca_rotation=finish: the next CA is the kit CA, the old one is retired;
5. a plain converge: changed=0 on every Kafka host.

Throughout, an idempotent acks=all producer (training-ingest) and a consumer (training-reader)
run (tests/security/_traffic.py): no delivery fails, no TLS or authentication error is reported,
and every acknowledged record is read back, by the running consumer and by a fresh reader at the
end, exactly once. At the end the brokers present certificates of the new CA, a client that
trusts only the retired CA is refused, and switch/finish refuse to run out of order."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"
KIT = LAB / ".kafka-kit"
CLIENTS = KIT / "clients"
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
pytestmark = pytest.mark.skipif(os.environ.get("KAFKA_KIT_LAB_ROTATION") != "1",
                                reason="changes the running lab's CA: make lab-rotation")
#: TLS and SASL failures: what a rotation done wrong shows (a client that does not trust the
#: broker's new certificate, or a broker that does not trust its peer's).
BAD = ("_SSL", "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED")


def _site(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               CONTAINERS_CONF=str(REPO / "lab" / "containers.conf"))
    return subprocess.run([str(PLAYBOOK), "site.yml", "-i", str(LAB), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _converge(*extra: str) -> tuple[str, dict[str, int]]:
    r = _site(*extra)
    changed = {line.split()[0]: int(line.split("changed=")[1].split()[0])
               for line in r.stdout.splitlines() if "changed=" in line and " : ok=" in line}
    if r.returncode != 0:
        raise AssertionError(f"site.yml {' '.join(extra)} failed ({r.returncode}):\n"
                             + r.stdout[-6000:] + r.stderr[-2000:])
    return r.stdout, changed


def _refused(*extra: str) -> str:
    r = _site("--tags", "security", *extra, timeout=900)
    assert r.returncode != 0, f"site.yml {' '.join(extra)} was not refused:\n{r.stdout[-3000:]}"
    return r.stdout


class Traffic:
    def __init__(self, topic: str, start: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "security" / "_traffic.py"), "--topic", topic,
             "--producer-config", str(CLIENTS / "training-ingest.properties"),
             "--consumer-config", str(CLIENTS / "training-reader.properties"),
             "--group", f"training-rotation-{uuid.uuid4().hex[:6]}", "--start", str(start)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(5)
        assert self.proc.poll() is None, self.proc.communicate()[1][-3000:]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-3000:]
        return json.loads(out.splitlines()[-1])


def _issuers() -> dict[str, str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    servers = (CLIENTS / "admin.properties").read_text().split("bootstrap.servers=")[1].split()[0]
    out = {}
    for hp in servers.split(","):
        host, port = hp.rsplit(":", 1)
        pem = ssl.get_server_certificate((host, int(port)))
        cert = x509.load_pem_x509_certificate(pem.encode())
        out[hp] = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return out


def _serials() -> dict[str, int]:
    from cryptography import x509

    return {d.name: x509.load_pem_x509_certificate((d / "cert.pem").read_bytes()).serial_number
            for d in sorted((KIT / "hosts").iterdir()) if (d / "cert.pem").exists()}


def _read_all(topic: str) -> list[int]:
    import confluent_kafka as ck

    from pyclient.client_props import client_properties, for_backend

    cfg = for_backend(client_properties(CLIENTS / "admin.properties"), "confluent")
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


def _check(report: dict, name: str) -> None:
    assert not report["failed"], f"{name}: deliveries failed: {report['failed'][:5]}"
    assert report["unflushed"] == 0, name
    bad = {k: report["samples"][k] for k in report["errors"] if k in BAD}
    assert not bad, f"{name}: TLS/authentication errors: {bad}"
    assert set(report["read"]) >= set(report["acked"]), \
        f"{name}: {len(set(report['acked']) - set(report['read']))} acknowledged records not read"


@pytest.mark.timeout(3600)  # seven runs of site.yml on the lab, five of them rolls
def test_renewal_and_ca_rotation_under_traffic() -> None:
    from pyclient.admin import Admin
    from pyclient.client_props import client_properties

    assert (CLIENTS / "admin.properties").is_file(), "run `make lab` first"
    admin = client_properties(CLIENTS / "admin.properties")
    topic = f"training-rotation-{uuid.uuid4().hex[:6]}"
    with Admin(admin) as a:
        a.ensure_topic(topic, 3, 3, {"min.insync.replicas": "2"}, if_exists="fail")
    timings = {}
    try:
        old_ca = x509_cn(KIT / "ca" / "ca.pem")
        serials = _serials()
        first = Traffic(topic, 0)
        t0 = time.monotonic()
        _converge("-e", "kafka_tls_renew_days=400")  # > kafka_tls_cert_days (397): renew all
        timings["renewal"] = time.monotonic() - t0
        renewed = _serials()
        assert all(renewed[h] != serials[h] for h in serials), (serials, renewed)
        assert set(_issuers().values()) == {old_ca}

        out = _refused("-e", "kafka_tls_ca_rotation=switch")
        assert "no rotation was started; run kafka_tls_ca_rotation=start first" in out, out[-3000:]

        t0 = time.monotonic()
        _converge("-e", "kafka_tls_ca_rotation=start")
        timings["start"] = time.monotonic() - t0
        trust = (KIT / "ca" / "trust.pem").read_text()
        assert trust.count("BEGIN CERTIFICATE") == 2
        out = _refused("-e", "kafka_tls_ca_rotation=finish")
        assert "run kafka_tls_ca_rotation=switch first" in out, out[-3000:]
        r1 = first.stop()  # the clients restart with the bundle, as the docs say
        _check(r1, "traffic during renewal and start")
        second = Traffic(topic, 10_000_000)

        t0 = time.monotonic()
        _converge("-e", "kafka_tls_ca_rotation=switch")
        timings["switch"] = time.monotonic() - t0
        new_ca = x509_cn(KIT / "ca" / "next.pem")
        assert new_ca != old_ca
        assert set(_issuers().values()) == {new_ca}

        t0 = time.monotonic()
        _converge("-e", "kafka_tls_ca_rotation=finish")
        timings["finish"] = time.monotonic() - t0
        assert x509_cn(KIT / "ca" / "ca.pem") == new_ca
        assert not (KIT / "ca" / "next.pem").exists() and not (KIT / "ca" / "rotation.json").exists()
        assert (KIT / "ca" / "trust.pem").read_text().count("BEGIN CERTIFICATE") == 1

        t0 = time.monotonic()
        _, changed = _converge()
        timings["rerun"] = time.monotonic() - t0
        kafka_hosts = {h: n for h, n in changed.items() if "kafka" in h}
        assert kafka_hosts and all(n == 0 for n in kafka_hosts.values()), changed
        r2 = second.stop()
        _check(r2, "traffic during switch and finish")

        retired = sorted((KIT / "ca" / "retired").glob("*-ca.pem"))[-1]
        import confluent_kafka as ck

        from pyclient.client_props import for_backend
        old_trust = {**for_backend(admin, "confluent"), "ssl.ca.location": str(retired)}
        with pytest.raises(ck.KafkaException):
            ck.admin.AdminClient(old_trust).list_topics(timeout=10)

        everything = _read_all(topic)
        counts = Counter(everything)
        acked = set(r1["acked"]) | set(r2["acked"])
        assert not [s for s, n in counts.items() if n > 1], "records read twice from the topic"
        assert acked <= set(counts), f"{len(acked - set(counts))} acknowledged records lost"
        print(json.dumps({"timings_s": {k: round(v) for k, v in timings.items()},
                          "sent": r1["sent"] + r2["sent"], "acked": len(acked),
                          "read_back": len(everything), "duplicates": 0,
                          "lost": len(acked - set(counts)),
                          "client_errors": [r1["errors"], r2["errors"]]}))
    finally:
        with Admin(admin) as a:
            a.delete_topic(topic)


def x509_cn(path: Path) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

