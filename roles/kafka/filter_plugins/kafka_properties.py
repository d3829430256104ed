"""Filters of the kafka role: Java properties values and KRaft cluster ids."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from ansible.errors import AnsibleFilterError


def kafka_property_value(value: Any) -> str:
    """Print one value the way Kafka reads it: booleans lower case, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(kafka_property_value(v) for v in value)
    if isinstance(value, dict):
        raise AnsibleFilterError(f"a Kafka property value cannot be a mapping: {value!r}")
    return str(value)


_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def kafka_cluster_id(seed: str) -> str:
    """Turn 32 hex digits (or a UUID string) into a KRaft cluster id.

    Kafka's ids are the 16 bytes of a UUID in URL-safe base64 without padding (22 characters),
    as `kafka-storage random-uuid` prints them; Kafka also never hands out ids starting with `-`.
    """
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", str(seed))
    if len(hexdigits) != 32:
        raise AnsibleFilterError(f"kafka_cluster_id needs 32 hex digits, got {seed!r}")
    raw = uuid.UUID(hexdigits).bytes
    text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    if text.startswith("-"):
        text = "A" + text[1:]
    return text


def kafka_is_cluster_id(value: Any) -> bool:
    """True when value looks like a KRaft cluster id (22 URL-safe base64 characters)."""
    return bool(_CLUSTER_ID.match(str(value)))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kafka_property_value": kafka_property_value,
            "kafka_cluster_id": kafka_cluster_id,
            "kafka_is_cluster_id": kafka_is_cluster_id,
        }
