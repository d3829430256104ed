"""Backend selection: ``"confluent"`` (default, librdkafka) or ``"kafka-python"`` (pure Python)."""

from __future__ import annotations

import os
from typing import Any

from .base import (AdminBackend, BrokerInfo, ClusterInfo, ConsumerBackend, ErrorCallback,
                   Headers, KafkaKitError, LatencyCallback, PartitionInfo, ProducerBackend,
                   Record, TopicPartition)

BACKENDS = ("confluent", "kafka-python")
#: Environment variable that picks the backend when the caller passes none.
ENV = "PYCLIENT_BACKEND"

__all__ = ["BACKENDS", "AdminBackend", "BrokerInfo", "ClusterInfo", "ConsumerBackend", "Headers",
           "KafkaKitError", "PartitionInfo", "ProducerBackend", "Record", "TopicPartition",
           "resolve", "make_producer", "make_consumer", "make_admin"]


def resolve(name: str | None) -> str:
    """Return the backend name: the argument, else $PYCLIENT_BACKEND, else confluent."""
    name = name or os.environ.get(ENV) or "confluent"
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def _module(name: str | None) -> Any:
    if resolve(name) == "confluent":
        from . import confluent as mod
    else:
        from . import kafkapython as mod
    return mod


def make_producer(config: dict[str, Any], on_error: ErrorCallback,
                  backend: str | None = None,
                  on_latency: LatencyCallback | None = None) -> ProducerBackend:
    return _module(backend).Producer(config, on_error, on_latency)  # type: ignore[no-any-return]


def make_consumer(config: dict[str, Any], backend: str | None = None) -> ConsumerBackend:
    return _module(backend).Consumer(config)  # type: ignore[no-any-return]


def make_admin(config: dict[str, Any], backend: str | None = None) -> AdminBackend:
    return _module(backend).Admin(config)  # type: ignore[no-any-return]
