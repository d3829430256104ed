"""The refusals of a kit CA rotation step that come before any host is touched
(roles/kafka/tasks/tls_ca_rotation.yml, run through ansible-playbook with the local connection
and a temporary kafka_security_dir): with your own CA, under --limit, `start` after `switch`,
`switch` before `start`, `finish` before `switch`. Each names the variable and what to run.
The rotation itself, and its gates on pending restarts and old certificates, run on the lab
(tests/security/test_lab_ca_rotation.py, make lab-rotation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAY = """
- hosts: kafka_controller:kafka_broker
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kafka
        tasks_from: tls_ca_rotation.yml
"""


def _run(tmp: Path, phase: str | None, *args: str, **extra: str) -> str:
    sec = tmp / "sec"
    (sec / "ca").mkdir(parents=True, exist_ok=True)
    if phase:
        (sec / "ca" / "rotation.json").write_text(json.dumps({"phase": phase}))
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "kafka_security_dir": str(sec), **extra},
                   "children": {"kafka_controller": {"hosts": {"kr1": None, "kr2": None}},
                                "kafka_broker": {"hosts": {"kr1": None, "kr2": None}}}}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    r = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml"), *args],
                       capture_output=True, text=True, env=env, timeout=300)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-3000:]
    return out


@pytest.mark.parametrize("phase, step, args, extra, message", [
    (None, "start", [], {"kafka_tls_ca_mode": "user"}, "the kit CA only (kafka_tls_ca_mode kit)"),
    (None, "start", ["--limit", "kr1"], {}, "run it over every Kafka host, without --limit (missing: kr2)"),
    ("switched", "start", [], {}, "the host certificates were switched already; run kafka_tls_ca_rotation=finish"),
    (None, "switch", [], {}, "no rotation was started; run kafka_tls_ca_rotation=start first"),
    ("started", "finish", [], {}, "the host certificates are still those of the old CA; run kafka_tls_ca_rotation=switch first"),
])
def test_rotation_step_refused(tmp_path: Path, phase, step, args, extra, message) -> None:
    out = _run(tmp_path, phase, *args, "-e", f"kafka_tls_ca_rotation={step}", **extra)
    assert f"kafka_tls_ca_rotation={step}: {message}" in out, out[-3000:]
    assert not (tmp_path / "sec" / "ca" / "next.key").exists()  # refused before any step
