"""Users and ACLs as code (roles/kafka_access, pyclient/access.py) on the real secure broker.

The role runs through ansible-playbook (its real module) against the broker of _secure.py: check
mode changes nothing, a run creates the users and ACLs and shows their names but no password in
`-v --diff`, a rerun changes nothing, the ACLs do what they say (ingest writes, the reader
reads but cannot write), undeclared ACLs are reported and removed only on request, and bad
input fails naming the entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType, ScramMechanism,
                                   UserScramCredentialDeletion)

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
INGEST_PW = "ingest-" + uuid.uuid4().hex
READER_PW = "reader-" + uuid.uuid4().hex

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: kafka_access
      vars:
        kafka_access_admin_config: {admin}
        kafka_access_users:
          - {{name: training-ingest, password: "{ingest}"}}
          - {{name: training-reader, password: "{reader}"}}
        kafka_access_acls: {acls}
        kafka_access_remove_undeclared_acls: {remove}
"""

ACLS = [
    {"principal": "User:training-ingest", "resource_type": "topic", "name": "corpus",
     "operations": ["write", "describe"]},
    {"principal": "User:training-reader", "resource_type": "topic", "name": "corpus",
     "operations": ["read", "describe"]},
    {"principal": "User:training-reader", "resource_type": "group", "name": "training-",
     "pattern_type": "prefixed", "operations": ["read", "describe"]},
]


def _settings(c: dict, user: str, password: str) -> dict[str, str]:
    return {"bootstrap.servers": c["bootstrap"], "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password,
            "ssl.ca.location": str(c["root"] / "etc" / "tls" / "truststore.pem")}


def _admin_settings(c: dict) -> dict[str, str]:
    return _settings(c, "admin", (c["root"] / "controller" / "credentials" / "admin").read_text().split()[0])


def _play(c: dict, *args: str, acls=None, remove: bool = False, extra: dict | None = None) -> subprocess.CompletedProcess:
    """The role with the test's users and ACLs (and ``extra`` role variables, as JSON)."""
    path = c["root"] / f"access-{uuid.uuid4().hex[:6]}.yml"
    text = PLAYBOOK.format(admin=json.dumps(_admin_settings(c)), ingest=INGEST_PW, reader=READER_PW,
                           acls=json.dumps(ACLS if acls is None else acls), remove=str(remove).lower())
    for key, value in (extra or {}).items():
        text += f"        {key}: {json.dumps(value)}\n"
    path.write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", *args, str(path)],
                          capture_output=True, text=True, env=env, timeout=300)


def _recap_changed(out: str) -> int:
    line = next(l for l in out.splitlines() if l.startswith("localhost") and "changed=" in l)
    return int(line.split("changed=")[1].split()[0])


def _forget_principals(admin: AdminClient) -> None:
    """Start from a broker without this module's users and their ACLs, whatever ran before on
    the session's broker: test_quotas' plays declare the same users and ACLs, and pytest-xdist
    may run that file first on this worker. Waits until the Admin API no longer shows them."""
    users = [u for u in ("training-ingest", "training-reader")
             if u in admin.describe_user_scram_credentials().result()]
    if users:
        for f in admin.alter_user_scram_credentials(
                [UserScramCredentialDeletion(u, ScramMechanism.SCRAM_SHA_512) for u in users]).values():
            f.result()
    filters = [AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{u}", None,
                                AclOperation.ANY, AclPermissionType.ANY)
               for u in ("training-ingest", "training-reader")]
    for f in admin.delete_acls(filters).values():
        f.result()
    deadline = time.monotonic() + 30
    while (set(admin.describe_user_scram_credentials().result()) & {"training-ingest", "training-reader"}
           or any(admin.describe_acls(flt).result() for flt in filters)):
        assert time.monotonic() < deadline, "the module's users or ACLs are still shown after 30 s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def applied(secure_cluster: dict) -> dict:
    c = secure_cluster
    admin = AdminClient(_admin_settings(c))
    for f in admin.create_topics([NewTopic("corpus", 1, 1)]).values():
        f.result()
    _forget_principals(admin)
    check = _play(c, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:]
    users_after_check = admin.describe_user_scram_credentials().result()
    run = _play(c, "-v", "--diff")
    assert run.returncode == 0, run.stdout[-4000:]
    rerun = _play(c, "--diff")
    return {"c": c, "admin": admin, "check": check, "users_after_check": users_after_check,
            "run": run, "rerun": rerun}


def test_check_mode_reports_and_changes_nothing(applied):
    assert _recap_changed(applied["check"].stdout) == 1
    assert "user training-ingest" in applied["check"].stdout
    assert not {"training-ingest", "training-reader"} & set(applied["users_after_check"])


def test_run_creates_and_shows_names_never_passwords(applied):
    out = applied["run"].stdout + applied["run"].stderr
    assert _recap_changed(applied["run"].stdout) == 1
    assert "user training-reader" in out
    assert "acl ALLOW User:training-reader READ GROUP:PREFIXED:training- from *" in out
    for secret in (INGEST_PW, READER_PW, _admin_settings(applied["c"])["sasl.password"]):
        assert secret not in out


def test_rerun_changes_nothing(applied):
    assert applied["rerun"].returncode == 0
    assert _recap_changed(applied["rerun"].stdout) == 0


def test_acls_do_what_they_say(applied):
    c = applied["c"]
    producer = Producer(_settings(c, "training-ingest", INGEST_PW))
    producer.produce("corpus", b"doc-1")
    assert producer.flush(30) == 0
    consumer = Consumer({**_settings(c, "training-reader", READER_PW), "group.id": "training-run-1",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["corpus"])
    got = None
    for _ in range(30):
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            got = msg.value()
            break
    consumer.close()
    assert got == b"doc-1"
    errors: list[str] = []
    reader = Producer({**_settings(c, "training-reader", READER_PW), "message.timeout.ms": 10000})
    reader.produce("corpus", b"not allowed", on_delivery=lambda err, _m: errors.append(str(err)))
    reader.flush(30)
    assert errors and "TOPIC_AUTHORIZATION_FAILED" in errors[0], errors


def test_training_feed_needs_a_group_the_reader_may_use(applied):
    """The training feed never joins nor commits, but librdkafka looks its group.id up (the
    FindCoordinator request needs Describe on the group): with pyclient's default group id the
    reader is refused with an error naming the group and what to do; with a group.id under the
    reader's group ACL (training-*, as docs/pyclient.md's example passes) it reads the topic."""
    from pyclient.backends.base import KafkaKitError
    from pyclient.dataset import KafkaTokenDataset

    c = applied["c"]
    doc = f"feed-{uuid.uuid4().hex[:8]}"
    producer = Producer(_settings(c, "training-ingest", INGEST_PW))
    producer.produce("corpus", doc.encode())
    assert producer.flush(30) == 0
    reader = _settings(c, "training-reader", READER_PW)

    def read(settings: dict) -> str:
        ds = KafkaTokenDataset(c["bootstrap"], "corpus", seq_len=8, batch_size=1, settings=settings,
                               backend="confluent", last_batch="pad", timeout=20)
        ids = [t for b in ds for row, mask in zip(b["input_ids"], b["attention_mask"])
               for t, m in zip(row, mask) if m]
        return bytes(t for t in ids if t < 256).decode()

    with pytest.raises(KafkaKitError) as refused:
        read(reader)
    msg = str(refused.value)
    assert "GROUP_AUTHORIZATION_FAILED" in msg and "'pyclient-corpus'" in msg, msg
    assert "group.id" in msg and "Describe" in msg, msg
    assert doc in read({**reader, "group.id": "training-feed"})


def test_undeclared_acls_reported_then_removed_on_request(applied):
    c, admin = applied["c"], applied["admin"]
    stray = AclBinding(ResourceType.TOPIC, "corpus", ResourcePatternType.LITERAL, "User:someone", "*",
                       AclOperation.READ, AclPermissionType.ALLOW)
    for f in admin.create_acls([stray]).values():
        f.result()
    reported = _play(c, "-v")
    assert reported.returncode == 0 and _recap_changed(reported.stdout) == 0
    assert "acl ALLOW User:someone READ TOPIC:LITERAL:corpus from *" in reported.stdout
    removed = _play(c, "--diff", remove=True)
    assert removed.returncode == 0 and _recap_changed(removed.stdout) == 1
    assert "User:someone" not in _play(c, "-v").stdout


def test_bad_acl_named(secure_cluster):
    out = _play(secure_cluster, acls=[{"principal": "training-ingest", "name": "corpus", "operations": ["write"]}])
    assert out.returncode != 0
    assert "acls[0].principal='training-ingest': write it as User:<name>" in out.stdout
