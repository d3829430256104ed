"""The controller-side client files (roles/kafka/tasks/client_files.yml) on the real secure broker:
kcat reads <user>.librdkafka.properties (-F), Kafka's Java tools read <user>.properties
(--command-config), pyclient reads either, and pyclient smoke over them passes every check,
including the three refusals (no SASL login, a wrong password, a user without ACLs), each
with the broker's error; with a wrong password the smoke fails."""

from __future__ import annotations

import os
import shutil
import stat
import time
import subprocess
import sys
from pathlib import Path

import pytest

from _secure import _java

REPO = Path(__file__).resolve().parents[2]
# Debian's kcat with the venv's librdkafka: Debian 12's own (2.0.2) cannot log in to Kafka 4.x
# with SCRAM (tools/kcat says why).
KCAT = str(REPO / "tools" / "kcat") if shutil.which("kcat") else None


def _clients(c: dict) -> Path:
    return c["root"] / "controller" / "clients"


def _smoke(c: dict, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyclient", "smoke", "--bootstrap-servers", c["bootstrap"],
                           "--command-config", str(config), "--expect-brokers", "1", "--replication-factor", "1",
                           "--min-insync-replicas", "1", "--records", "200", "--timeout", "30"],
                          capture_output=True, text=True, timeout=240)


def test_files_are_private(secure_cluster: dict) -> None:
    d = _clients(secure_cluster)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    names = sorted(p.name for p in d.iterdir())
    assert names == ["admin.librdkafka.properties", "admin.properties"]
    for p in d.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_kcat_reads_the_librdkafka_file(secure_cluster: dict) -> None:
    assert KCAT, "kcat is not installed (make deps installs it: APT_PACKAGES in the Makefile)"
    f = _clients(secure_cluster) / "admin.librdkafka.properties"
    env = dict(os.environ, KAFKA_KIT_PYTHON=sys.executable)
    run = subprocess.run([KCAT, "-F", str(f), "-L", "-m", "20"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 brokers:" in run.stdout and f"127.0.0.1:{secure_cluster['port']}" in run.stdout, run.stdout
    # ...and kcat refuses the Java file, which is why there are two.
    java = subprocess.run([KCAT, "-F", str(_clients(secure_cluster) / "admin.properties"), "-L", "-m", "5"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert java.returncode != 0 and "JAAS" in java.stderr, java.stderr


def test_java_tools_read_the_java_file(secure_cluster: dict) -> None:
    c = secure_cluster
    f = _clients(c) / "admin.properties"
    made = _java(c["home"], "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c["bootstrap"],
                 "--command-config", str(f), "--create", "--if-not-exists", "--topic", "client-files-java",
                 "--partitions", "1", "--replication-factor", "1")
    assert made.returncode == 0, made.stdout + made.stderr
    listed = _java(c["home"], "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c["bootstrap"],
                   "--command-config", str(f), "--list")
    assert listed.returncode == 0 and "client-files-java" in listed.stdout.split(), listed.stdout + listed.stderr


@pytest.mark.parametrize("name", ["admin.properties", "admin.librdkafka.properties"])
def test_smoke_passes_with_its_refusals(secure_cluster: dict, name: str) -> None:
    run = _smoke(secure_cluster, _clients(secure_cluster) / name)
    assert run.returncode == 0, run.stdout + run.stderr
    for check in ("anonymous refused", "wrong password refused", "user without ACLs refused"):
        line = next((l for l in run.stdout.splitlines() if f"] {check}:" in l), "")
        assert line.startswith("  [ok]"), run.stdout
    assert "Authentication failed" in run.stdout, run.stdout  # the broker's words for the wrong password
    assert "authoriz" in next(l for l in run.stdout.splitlines() if "user without ACLs" in l).lower()


def test_smoke_fails_with_a_wrong_password(secure_cluster: dict, tmp_path: Path) -> None:
    text = (_clients(secure_cluster) / "admin.librdkafka.properties").read_text()
    bad = tmp_path / "bad.properties"
    bad.write_text("\n".join(l + "x" if l.startswith("sasl.password=") else l for l in text.splitlines()) + "\n")
    run = _smoke(secure_cluster, bad)
    assert run.returncode != 0 and "smoke FAILED: connect" in run.stderr, run.stdout + run.stderr


def test_produce_without_write_fails_with_one_message(secure_cluster: dict, tmp_path: Path) -> None:
    """A user allowed to write nowhere: the idempotent producer's id is refused (a librdkafka fatal
    error, which confluent-kafka surfaces as a SystemError in flush); pyclient exits non-zero with
    one message naming the error and the fix, no traceback."""
    import uuid

    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)
    from pyclient.client_props import for_backend, load_client_properties

    c = secure_cluster
    admin_file = _clients(c) / "admin.librdkafka.properties"
    admin = AdminClient(for_backend(load_client_properties(admin_file), "confluent"))
    user, password = f"nowrite-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    m = ScramMechanism.SCRAM_SHA_512
    for f in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, 4096), password.encode())]).values():
        f.result(30)
    try:
        made = _java(c["home"], "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c["bootstrap"],
                     "--command-config", str(_clients(c) / "admin.properties"), "--create", "--if-not-exists",
                     "--topic", "nowrite", "--partitions", "1", "--replication-factor", "1")
        assert made.returncode == 0, made.stderr
        # DESCRIBE and DESCRIBE_CONFIGS but no WRITE: the probe passes, the producer id is refused.
        acl = _java(c["home"], "org.apache.kafka.tools.AclCommand", "--bootstrap-server", c["bootstrap"],
                    "--command-config", str(_clients(c) / "admin.properties"), "--add", "--allow-principal",
                    f"User:{user}", "--operation", "Describe", "--operation", "DescribeConfigs", "--topic", "nowrite")
        assert acl.returncode == 0, acl.stdout + acl.stderr
        text = admin_file.read_text().replace("sasl.username=admin", f"sasl.username={user}")
        text = "\n".join(f"sasl.password={password}" if l.startswith("sasl.password=") else l
                         for l in text.splitlines()) + "\n"
        props = tmp_path / "nowrite.properties"
        props.write_text(text)
        docs = tmp_path / "docs.txt"
        docs.write_text("a\nb\n")
        deadline = time.monotonic() + 60
        while True:  # until the new credential works (it reaches the broker within moments)
            run = subprocess.run([sys.executable, "-m", "pyclient", "produce", "-b", c["bootstrap"],
                                  "--command-config", str(props), "--topic", "nowrite", "--no-progress",
                                  "--timeout", "20", str(docs)], capture_output=True, text=True, timeout=120)
            if "Authentication failed" not in run.stderr or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert run.returncode != 0, run.stdout + run.stderr
        assert "CLUSTER_AUTHORIZATION_FAILED" in run.stderr and "needs WRITE" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr and "SystemError" not in run.stderr, run.stderr
    finally:
        for f in admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, m)]).values():
            f.result(30)
