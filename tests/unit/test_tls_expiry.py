"""The kafka role's certificate expiry check (tasks/tls_expiry.yml) on real certificates:
one valid for 10 days is refused with a 30-day threshold, naming the host and the variable;
one valid for 60 days passes; the limit is the threshold itself (29 vs 31 days)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kafka
        tasks_from: tls_expiry.yml
      vars:
        kafka_tls_ca_mode: user
        kafka_tls_user_cert_file: {cert}
        kafka_tls_renew_days: 30
"""


def _cert(tmp: Path, days: int) -> Path:
    key, cert = tmp / f"k{days}.pem", tmp / f"c{days}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", str(days), "-subj", "/CN=kb01"],
                   check=True, capture_output=True)
    return cert


def _run(tmp: Path, cert: Path) -> subprocess.CompletedProcess:
    (tmp / "hosts.yml").write_text(f"all:\n  hosts:\n    kb01:\n      ansible_connection: local\n"
                                   f"      ansible_python_interpreter: {sys.executable}\n")
    (tmp / "play.yml").write_text(PLAYBOOK.format(cert=cert))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml")],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("days, refused", [(10, True), (29, True), (31, False), (60, False)])
def test_expiry_threshold(tmp_path, days, refused):
    out = _run(tmp_path, _cert(tmp_path, days))
    if refused:
        assert out.returncode != 0
        assert "kb01: its certificate" in out.stdout and "kafka_tls_renew_days=30" in out.stdout
    else:
        assert out.returncode == 0, out.stdout[-3000:]
