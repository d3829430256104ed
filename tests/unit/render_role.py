"""Render templates through the real roles with ansible-playbook against an inventory of
made-up hosts (connection local, nothing touched): what the unit tests of rendered config
files share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines of a .properties/.cfg file, comments and blank lines left out."""
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def render(work: Path, inventory: str, playbook: str) -> dict[str, str]:
    """Run ``playbook`` (a template with ``{repo}`` and ``{out}``) over ``inventory``;
    return the files it wrote into ``work/out`` by name."""
    out = work / "out"
    out.mkdir()
    (work / "hosts.yml").write_text(inventory)
    (work / "render.yml").write_text(playbook.format(repo=REPO, out=out))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(work / "hosts.yml"),
                             str(work / "render.yml")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {p.name: p.read_text() for p in out.iterdir()}
