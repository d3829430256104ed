"""Cluster and topic administration with idempotent, check-mode-friendly calls."""

from __future__ import annotations

from typing import Any, Literal

from .backends import ClusterInfo, KafkaKitError, PartitionInfo, make_admin, resolve
from .config import LIBRDKAFKA_LOGGER, for_backend


class Admin:
    """Thin admin client; ``settings`` is a dict of Kafka keys (bootstrap.servers at least;
    Java client keys such as ``sasl.jaas.config`` are translated for the backend)."""

    def __init__(self, settings: dict[str, Any], backend: str | None = None,
                 timeout: float = 30.0) -> None:
        self.backend = resolve(backend)
        self.timeout = timeout
        cfg = for_backend(settings, self.backend)
        if self.backend == "confluent":
            cfg.setdefault("logger", LIBRDKAFKA_LOGGER)
        self._a = make_admin(cfg, self.backend)

    def cluster(self) -> ClusterInfo:
        return self._a.cluster(self.timeout)

    def describe_topic(self, name: str) -> list[PartitionInfo] | None:
        """Partitions of ``name``, or None when the topic does not exist."""
        return self._a.topics(self.timeout).get(name)

    def ensure_topic(self, name: str, partitions: int, replication_factor: int,
                     config: dict[str, str] | None = None,
                     if_exists: Literal["ignore", "fail"] = "ignore") -> bool:
        """Create the topic unless it exists; return True when it was created.

        ``if_exists="fail"`` raises KafkaKitError when it exists already.
        """
        if self.describe_topic(name) is not None:
            if if_exists == "fail":
                raise KafkaKitError(f"topic {name!r} exists")
            return False
        self._a.create_topic(name, partitions, replication_factor, dict(config or {}),
                             self.timeout)
        return True

    def delete_topic(self, name: str, if_missing: Literal["ignore", "fail"] = "ignore") -> bool:
        """Delete the topic; return True when it existed."""
        if self.describe_topic(name) is None:
            if if_missing == "fail":
                raise KafkaKitError(f"topic {name!r} does not exist")
            return False
        self._a.delete_topic(name, self.timeout)
        return True

    def close(self) -> None:
        self._a.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
