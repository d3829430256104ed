"""Certificate renewal and a kit CA rotation with a producer and a consumer running (issue 10),
last in the default scenario's verify step: it changes the cluster's CA.

`make test-default-rotation` (DEFAULT_ROTATION=1) runs the reduced sequence of
tests/security/_rotation.py (three converges of site.yml: renewal and `start` in one, `switch`,
`finish`); `make test-default-full` (DEFAULT_FULL=1) and `make lab-rotation` run the full one
(five converges, the refusals out of order, and a plain rerun that changes nothing). `make test`
skips it: about 20 minutes here, which would take `make test` past its 60 (docs/security.md). Both: no delivery fails, no TLS or
authentication error, every acknowledged record read back exactly once, the brokers on the new
CA, a client trusting only the retired CA refused. Then Prometheus still scrapes every Kafka
host over HTTPS, now verified against the new CA.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "security"))
from _rotation import Cluster, renew_and_rotate, x509_cn  # noqa: E402

INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"])
KIT = INVENTORY.parent / ".kafka-kit"
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(str(INVENTORY))
MONITORING = RUNNER.get_hosts("monitoring")
FULL = os.environ.get("DEFAULT_FULL") == "1"
pytestmark = pytest.mark.skipif(not FULL and os.environ.get("DEFAULT_ROTATION") != "1",
                                reason="the rotation under traffic: make test-default-rotation "
                                       "(DEFAULT_ROTATION=1) or make test-default-full")


def _kafka_targets(prometheus: str) -> list[dict]:
    body = json.loads(urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=10).read())
    return [t for t in body["data"]["activeTargets"] if t["labels"]["job"] == "kafka"]


@pytest.mark.timeout(3600)
def test_renewal_and_ca_rotation_under_traffic():
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    admin = KIT / "clients" / "admin.properties"
    cluster = Cluster(inventory=INVENTORY, kit=KIT, env=env, producer=admin, consumer=admin)
    old_ca = x509_cn(KIT / "ca" / "ca.pem")
    report = renew_and_rotate(cluster, reduced=not FULL)
    print(json.dumps(report))
    assert x509_cn(KIT / "ca" / "ca.pem") != old_ca

    if not MONITORING:
        return
    address = RUNNER.get_variables(MONITORING[0])["monitoring_prometheus_address"]
    prometheus = f"http://{address}:9090"
    brokers = RUNNER.get_hosts("kafka_broker")
    # Targets scraped after the finish roll: a scrape that started before it may still show
    # its error; wait until every Kafka target's last scrape is newer than the rotation.
    finished = time.time()
    deadline = time.monotonic() + 90
    while True:
        targets = _kafka_targets(prometheus)
        fresh = [t for t in targets if t["lastScrape"] and _epoch(t["lastScrape"]) > finished]
        if len(fresh) == len(brokers) and all(t["health"] == "up" for t in fresh):
            break
        if time.monotonic() > deadline:
            raise AssertionError([(t["labels"]["instance"], t["health"], t.get("lastError"))
                                  for t in targets])
        time.sleep(2)
    assert {t["scrapeUrl"].split(":", 1)[0] for t in fresh} == {"https"}


def _epoch(rfc3339: str) -> float:
    """Prometheus's lastScrape (RFC 3339, nanoseconds) as seconds since the epoch."""
    import re
    from datetime import datetime

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert m, rfc3339
    tz = "+00:00" if m[3] == "Z" else m[3]
    return datetime.fromisoformat(f"{m[1]}.{(m[2] or '0')[:6].ljust(6, '0')}{tz}").timestamp()
