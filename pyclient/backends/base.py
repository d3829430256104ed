"""The one interface both backends implement, and the plain data types they return.

A backend wraps a client library (confluent-kafka or kafka-python) behind three small
classes. Settings are a plain dict of Kafka's own keys (``"linger.ms": 20``); each backend
translates them for its library. Everything above this module (producer, consumer, admin,
smoke, dataset) talks only to these classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

Headers = list[tuple[str, bytes]]
TopicPartition = tuple[str, int]
#: Called for each record that was not delivered: (reason, key, headers).
ErrorCallback = Callable[[str, "bytes | None", "Headers | None"], None]
#: Called with the delivery latency (seconds) of each delivered record, when asked for.
LatencyCallback = Callable[[float], None]
#: Called with the partitions involved in a rebalance.
RebalanceCallback = Callable[[list[TopicPartition]], None]
#: Called with revoked partitions; returns the next-offsets to commit before they go.
RevokeCallback = Callable[[list[TopicPartition]], dict[TopicPartition, int]]


class KafkaKitError(Exception):
    """A Kafka operation failed; the message names the operation and the broker's reason."""


class Record(NamedTuple):
    """One consumed record (a NamedTuple: cheap to build, thousands per consume call)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class BrokerInfo:
    id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[BrokerInfo] = field(default_factory=list)


class ProducerBackend(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        """Queue one record; raise BufferError when the local queue is full."""

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; return how many were served."""

    def flush(self, timeout: float) -> int:
        """Wait for every queued record; return how many are still undelivered."""

    def close(self) -> None: ...


class ConsumerBackend(Protocol):
    def assign(self, positions: Sequence[tuple[str, int, int]]) -> None:
        """Read exactly these (topic, partition, offset); offset < 0 means the committed one
        (or ``auto.offset.reset`` when none is committed)."""

    def subscribe(self, topic: str, on_assign: RebalanceCallback,
                  on_revoke: RevokeCallback) -> None:
        """Join the group; the offsets ``on_revoke`` returns are committed synchronously
        before revoked partitions are handed to another member."""

    def consume(self, num_messages: int, timeout: float, meta: bool = True) -> list[Record]:
        """Up to ``num_messages`` records: what is already fetched, waiting at most ``timeout``
        seconds for the first one, never for a full batch. ``meta=False`` leaves ``headers``
        and ``timestamp`` out (None), which a training feed does not read."""

    def pause(self, parts: Sequence[TopicPartition]) -> None: ...

    def resume(self, parts: Sequence[TopicPartition]) -> None: ...

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Fetch an assigned partition from ``offset`` on; records fetched before the seek
        are not returned after it (both clients version their fetches)."""

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Synchronously commit next-offsets-to-read."""

    def committed(self, parts: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]: ...

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...

    def fetch_positions(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Where known, the offset the fetcher of each partition has read up to: every
        record below it was already returned by consume(); offsets between the last record
        and it hold no records (transaction markers). confluent: from end-of-partition
        events; kafka-python: the consumer's position."""

    def partitions_for(self, topic: str) -> list[int]: ...

    def close(self) -> None: ...


class AdminBackend(Protocol):
    def cluster(self, timeout: float) -> ClusterInfo: ...

    def topics(self, timeout: float) -> dict[str, list[PartitionInfo]]: ...

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     config: dict[str, str], timeout: float) -> None: ...

    def topic_id(self, name: str, timeout: float) -> str | None:
        """The topic's id (KIP-516), None where the broker has none."""

    def check_group(self, group: str, timeout: float) -> None:
        """Raise KafkaKitError naming the group where the principal may not use it (for an
        assign-only consumer that the client would still look the group up for)."""

    def delete_topic(self, name: str, timeout: float) -> None: ...

    def close(self) -> None: ...
