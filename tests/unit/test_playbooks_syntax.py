"""Every playbook parses against the production inventory (ten brokers, three controllers): the
day-2 playbooks included, as issue 12 asks ("syntax-check against the production shape")."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_playbook_parses_against_the_production_inventory():
    playbooks = [REPO / "site.yml", *sorted((REPO / "playbooks").glob("*.yml"))]
    assert REPO / "playbooks" / "kraft_controllers.yml" in playbooks
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "--syntax-check",
                          "-i", str(REPO / "inventories" / "prod"), *map(str, playbooks)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for p in playbooks:
        assert f"playbook: {p}" in run.stdout, p
