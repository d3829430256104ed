"""Java's String and HashMap hashing, and the role's SCRAM guard user name
(tests/unit/test_scram_guard.py, tests/security/test_secure_broker.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def java_string_hash(s: str) -> int:
    """String.hashCode() as Java computes it (UTF-16 code units, 32-bit wrap-around)."""
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h


def hashmap_spread(s: str) -> int:
    """java.util.HashMap.hash(key): the bits the bucket index is taken from."""
    h = java_string_hash(s)
    return (h ^ (h >> 16)) & 0xFFFFFFFF


def guard_user() -> str:
    return yaml.safe_load((REPO / "roles/kafka/vars/main.yml").read_text())["__kafka_scram_guard_user"]
