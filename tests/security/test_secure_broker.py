"""The secure profile end to end on one real broker, through the kafka role's own tasks.

ansible-playbook (connection local, every path under a temporary directory) runs the role's
tls.yml, clients.yml and storage.yml and renders server.properties for one combined node with
kafka_security_profile=secure; the test then starts Kafka with exactly that file and checks
what a user would: the admin's client file works (topics and the controller listener), and an
anonymous client, a wrong password and a user without ACLs are refused, each with the broker's
error. It also checks file modes and that the `-v --diff` output holds no generated password,
and that SCRAM logins survive a restart after a user was deleted (the SCRAM guard user,
tests/unit/test_scram_guard.py).
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _secure import _java

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _scram_guard import guard_user, hashmap_spread  # noqa: E402


@pytest.fixture
def cluster(secure_cluster: dict) -> dict:
    return secure_cluster


def _topics(c: dict, config: Path, *args: str) -> subprocess.CompletedProcess:
    return _java(c["home"], "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c["bootstrap"],
                 "--command-config", str(config), *args)


def _client_file(c: dict, name: str, text: str) -> Path:
    path = c["root"] / f"{name}.properties"
    path.write_text(text)
    return path


def test_server_properties_secure_and_secret_free(cluster):
    props = (cluster["root"] / "etc" / "server.properties").read_text()
    assert "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL" in props
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in props
    assert "allow.everyone.if.no.acl.found=false" in props
    assert "super.users=User:kk-sec-1;User:kafka-broker;User:admin" in props
    for secret in (cluster["root"] / "controller" / "credentials").iterdir():
        assert secret.read_text().split()[0] not in props


def test_no_generated_password_in_verbose_diff_output(cluster):
    secrets = [p.read_text().split()[0] for p in (cluster["root"] / "controller" / "credentials").iterdir()]
    assert len(secrets) == 3 and all(len(s) == 32 for s in secrets)  # broker, admin, SCRAM guard
    for secret in secrets:
        assert secret not in cluster["play"]


def test_key_and_credential_files_modes(cluster):
    etc = cluster["root"] / "etc"
    for path, mode in [(etc / "tls" / "keystore.pem", 0o600), (etc / "credentials.properties", 0o600),
                       (etc / "client" / "admin.properties", 0o600), (etc / "client", 0o700),
                       (etc / "tls" / "truststore.pem", 0o644),
                       (cluster["root"] / "controller" / "ca" / "ca.key", 0o600)]:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    keystore = (etc / "tls" / "keystore.pem").read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----") and keystore.count("BEGIN CERTIFICATE") == 2


def test_admin_client_file_works(cluster):
    admin = cluster["root"] / "etc" / "client" / "admin.properties"
    created = _topics(cluster, admin, "--create", "--topic", "secured", "--partitions", "1",
                      "--replication-factor", "1")
    assert created.returncode == 0, created.stdout + created.stderr
    listed = _topics(cluster, admin, "--list")
    assert "secured" in listed.stdout.split()


def test_controller_listener_with_the_host_certificate(cluster):
    out = _java(cluster["home"], "org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller",
                f"127.0.0.1:{cluster['cport']}", "--command-config",
                str(cluster["root"] / "etc" / "client" / "controller.properties"), "describe", "--status")
    assert out.returncode == 0 and "LeaderId:" in out.stdout, out.stdout + out.stderr


def test_wrong_password_refused(cluster):
    admin = (cluster["root"] / "etc" / "client" / "admin.properties").read_text()
    wrong = _client_file(cluster, "wrong", admin.replace('password="', 'password="x'))
    out = _topics(cluster, wrong, "--list")
    assert out.returncode != 0
    assert ("Authentication failed during authentication due to invalid credentials with SASL "
            "mechanism SCRAM-SHA-512") in out.stdout + out.stderr


def test_anonymous_client_refused(cluster):
    truststore = cluster["root"] / "etc" / "tls" / "truststore.pem"
    anon = _client_file(cluster, "anon", f"security.protocol=SSL\nssl.truststore.type=PEM\n"
                                          f"ssl.truststore.location={truststore}\n"
                                          "default.api.timeout.ms=8000\nrequest.timeout.ms=4000\n")
    out = _topics(cluster, anon, "--list")
    assert out.returncode != 0
    assert "secured" not in out.stdout
    log = (cluster["root"] / "server.log").read_text()
    # The broker's own words for a client that skips SASL on the SASL_SSL listener.
    assert "during SASL handshake" in log, log[-3000:]


def test_user_without_acls_refused(cluster):
    admin = cluster["root"] / "etc" / "client" / "admin.properties"
    added = _java(cluster["home"], "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", cluster["bootstrap"],
                  "--command-config", str(admin), "--alter", "--entity-type", "users", "--entity-name", "nobody",
                  "--add-config", "SCRAM-SHA-512=[password=nobody-secret-1]")
    assert added.returncode == 0, added.stdout + added.stderr
    text = admin.read_text()
    login = re.sub(r'username="admin" password="[^"]*"', 'username="nobody" password="nobody-secret-1"', text)
    assert login != text
    user = _client_file(cluster, "nobody", login)
    listed = _topics(cluster, user, "--list")
    for _ in range(10):  # the new credential reaches the broker through the metadata log
        if listed.returncode == 0:
            break
        time.sleep(1)
        listed = _topics(cluster, user, "--list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "secured" not in listed.stdout.split()  # authenticated, but it sees no topic
    created = _topics(cluster, user, "--create", "--topic", "not-mine", "--partitions", "1",
                      "--replication-factor", "1")
    assert created.returncode != 0
    assert "Authorization failed" in created.stdout + created.stderr


# A name whose Java hash has 16 low zero bits, as the guard's: in the walk of Kafka's
# ScramDelta.apply() it comes first, before every other user, unless the guard (written at
# format time, so inserted before it in the same bucket) is there.
PROBE = "kafka-kit-scram-probe-aqef"


def _config(c: dict, *args: str) -> subprocess.CompletedProcess:
    return _java(c["home"], "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", c["bootstrap"],
                 "--command-config", str(c["root"] / "etc" / "client" / "admin.properties"),
                 "--entity-type", "users", *args)


def test_scram_logins_survive_a_restart_after_a_user_is_deleted(cluster):
    """A user created and deleted, then the node restarted: it replays its metadata log from an
    empty image (a young cluster has no snapshot) and must still accept the admin. Without the
    guard user in the role's format this fails ("invalid credentials" for every user, tried)."""
    assert hashmap_spread(PROBE) & 0xFFFF == 0
    guard = _config(cluster, "--describe", "--entity-name", guard_user())
    assert guard.returncode == 0, guard.stdout + guard.stderr
    assert "SCRAM-SHA-512=iterations=4096" in guard.stdout and "SCRAM-SHA-256=iterations=4096" in guard.stdout, guard.stdout
    added = _config(cluster, "--alter", "--entity-name", PROBE, "--add-config", "SCRAM-SHA-512=[password=probe-secret-1]")
    assert added.returncode == 0, added.stdout + added.stderr
    deleted = _config(cluster, "--alter", "--entity-name", PROBE, "--delete-config", "SCRAM-SHA-512")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    time.sleep(2)  # the removal committed before the node stops
    cluster["restart"]()
    admin = cluster["root"] / "etc" / "client" / "admin.properties"
    deadline = time.monotonic() + 60
    listed = _topics(cluster, admin, "--list")
    while listed.returncode != 0 and time.monotonic() < deadline:
        time.sleep(2)
        listed = _topics(cluster, admin, "--list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    described = _config(cluster, "--describe", "--entity-name", PROBE)
    assert "SCRAM" not in described.stdout, described.stdout
