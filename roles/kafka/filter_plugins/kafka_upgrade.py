"""Rules of a version upgrade (playbooks/upgrade.yml): preflight, verification, finalize.

Pure functions, imported directly by tests/unit/test_upgrade_rules.py. A host state is what
tasks/upgrade_state.yml reads on one host: ``{host, current, record, running, java_major}`` where
``current`` is the archive name the /opt/kafka/current link points at and ``record`` the version
of the restart record (/var/lib/kafka-kit/kafka.running.json), both ``kafka_2.13-X.Y.Z`` or ''.
"""

from __future__ import annotations

import re
from typing import Any

_FEATURE_ROW = re.compile(
    r"Feature:\s*(\S+)\s+SupportedMinVersion:\s*(\S+)\s+SupportedMaxVersion:\s*(\S+)"
    r"\s+FinalizedVersionLevel:\s*(\S+)\s+Epoch:\s*(-?\d+)")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def kafka_features(stdout: str) -> dict[str, dict[str, str]]:
    """``FeatureCommand describe`` output as {feature: {supported_min, supported_max, finalized, epoch}}."""
    return {m.group(1): {"supported_min": m.group(2), "supported_max": m.group(3),
                         "finalized": m.group(4), "epoch": m.group(5)}
            for m in _FEATURE_ROW.finditer(stdout or "")}


def kafka_release(version: str) -> str:
    """The release (major.minor) of a Kafka version, archive name or metadata.version: 4.4.0,
    kafka_2.13-4.4.0 and 4.4-IV2 all give 4.4."""
    text = str(version)
    text = text.split("-", 1)[1] if text.startswith("kafka_") else text
    m = _VERSION.match(text)
    if not m:
        raise ValueError(f"not a Kafka version: {version!r}")
    return f"{m.group(1)}.{m.group(2)}"


def _key(version: str) -> tuple[int, int, int]:
    text = str(version).split("-", 1)[1] if str(version).startswith("kafka_") else str(version)
    m = _VERSION.match(text)
    if not m:
        raise ValueError(f"not a Kafka version: {version!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def kafka_upgrade_problems(hosts: list[dict[str, Any]], target: str, mode: str,
                           finalized_metadata: str = "") -> list[str]:
    """Why the cluster cannot move to archive ``target`` now, empty when it can.

    Allowed: every host on one starting version, or (a run interrupted and resumed) on that
    version or the target. A move to an older version (a rollback) is allowed only while the
    finalized metadata.version is not newer than the older release: after the finalize the old
    binaries cannot read the metadata log.
    """
    problems: list[str] = []
    if _key(target)[0] >= 4 and mode != "kraft":
        problems.append(f"kafka_mode is {mode}: Kafka {kafka_release(target)} runs KRaft only. Migrate the "
                        "cluster to KRaft on 3.9 first (playbooks/migration/, docs/zookeeper.md)")
    missing = sorted(h["host"] for h in hosts if not h.get("current"))
    if missing:
        problems.append(f"no Kafka installed on {', '.join(missing)} (no current link): deploy with site.yml "
                        "first; upgrade.yml moves a running cluster")
    stopped = sorted(h["host"] for h in hosts if h.get("current") and not h.get("running"))
    if stopped:
        problems.append(f"Kafka is not running on {', '.join(stopped)}: start it (or fix it) first, the roll's "
                        "gates need every host up")
    starts: dict[str, list[str]] = {}
    for h in hosts:
        if h.get("current") and h["current"] != target:
            starts.setdefault(h["current"], []).append(h["host"])
    if len(starts) > 1:
        problems.append("hosts run more than one version besides the target: "
                        + "; ".join(f"{v} on {', '.join(sorted(hs))}" for v, hs in sorted(starts.items()))
                        + f". Bring them to one version first (converge with that kafka_version), then upgrade")
    if _key(target)[0] >= 4:
        old_java = sorted(f"{h['host']} (Java {h.get('java_major')})" for h in hosts
                          if int(h.get("java_major") or 0) < 17)
        if old_java:
            problems.append(f"Kafka 4.x needs Java 17 or newer: {', '.join(old_java)}")
    if finalized_metadata and finalized_metadata not in ("0", "-"):
        try:
            finalized = _key(finalized_metadata)[:2]
        except ValueError:
            finalized = None
        if finalized and _key(target)[:2] < finalized:
            problems.append(f"metadata.version {finalized_metadata} is finalized: Kafka {kafka_release(target)} "
                            "cannot read the metadata log any more. A rollback below the finalized release is "
                            "not possible (docs/day2.md, Upgrade)")
    return problems


def kafka_upgrade_lagging(hosts: list[dict[str, Any]], target: str) -> list[str]:
    """Hosts that do not run archive ``target`` yet (link, running record or service), with why;
    the finalize refuses while this is not empty."""
    out = []
    for h in sorted(hosts, key=lambda h: h["host"]):
        why = []
        if h.get("current") != target:
            why.append(f"current -> {h.get('current') or 'nothing'}")
        if h.get("record") != target:
            why.append(f"running {h.get('record') or 'unknown'}")
        if not h.get("running"):
            why.append("service not running")
        if why:
            out.append(f"{h['host']}: {', '.join(why)}")
    return out


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kafka_features": kafka_features,
            "kafka_release": kafka_release,
            "kafka_upgrade_problems": kafka_upgrade_problems,
            "kafka_upgrade_lagging": kafka_upgrade_lagging,
        }
