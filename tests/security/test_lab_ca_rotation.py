"""Certificate renewal and a kit CA rotation on the running secure lab, with traffic: `make
lab-rotation` (after `make lab`; skipped without KAFKA_KIT_LAB_ROTATION=1, since it changes the
lab's CA). The full sequence of tests/security/_rotation.py: renewal, start, switch, finish and a
plain rerun, as five converges of site.yml on inventories/lab, with the refusals of switch and
finish out of order; the producer writes as training-ingest and the consumer reads as
training-reader (the lab's users). The default Molecule scenario runs the reduced sequence in
`make test` (molecule/default/tests/test_tls_rotation.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _rotation import REPO, Cluster, renew_and_rotate

LAB = REPO / "inventories" / "lab"
KIT = LAB / ".kafka-kit"
pytestmark = pytest.mark.skipif(os.environ.get("KAFKA_KIT_LAB_ROTATION") != "1",
                                reason="changes the running lab's CA: make lab-rotation")


@pytest.mark.timeout(3600)  # seven runs of site.yml on the lab, five of them rolls
def test_renewal_and_ca_rotation_under_traffic() -> None:
    assert (KIT / "clients" / "admin.properties").is_file(), "run `make lab` first"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               CONTAINERS_CONF=str(REPO / "lab" / "containers.conf"))
    cluster = Cluster(inventory=LAB, kit=KIT, env=env,
                      producer=KIT / "clients" / "training-ingest.properties",
                      consumer=KIT / "clients" / "training-reader.properties")
    print(json.dumps(renew_and_rotate(cluster, reduced=False)))
