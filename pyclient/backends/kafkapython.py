"""kafka-python backend: pure Python, for hosts where the librdkafka wheel is unavailable.

Kafka's own keys are translated to kafka-python's argument names (dots become
underscores: ``linger.ms`` -> ``linger_ms``). A key kafka-python does not know is an error,
not silently dropped, so a setting never quietly fails to apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import kafka
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KTP

from .base import (BrokerInfo, ClusterInfo, ErrorCallback, Headers, KafkaKitError, LatencyCallback,
                   PartitionInfo, Record, RebalanceCallback, RevokeCallback,
                   TopicPartition)

#: librdkafka-only keys that have no kafka-python counterpart and no effect on correctness.
_LIBRDKAFKA_ONLY = {"delivery.report.only.error", "queue.buffering.max.messages",
                    "queue.buffering.max.kbytes", "enable.partition.eof", "statistics.interval.ms",
                    "fetch.queue.backoff.ms", "queued.min.messages", "queued.max.messages.kbytes",
                    "enable.auto.offset.store", "log_level", "partition.assignment.strategy",
                    "socket.nagle.disable"}
_RENAMED = {"fetch.wait.max.ms": "fetch_max_wait_ms", "fetch.min.bytes": "fetch_min_bytes",
            "message.max.bytes": "max_request_size"}


def translate(config: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in _LIBRDKAFKA_ONLY:
            continue
        name = _RENAMED.get(key, key.replace(".", "_"))
        if name not in known:
            raise ValueError(f"setting {key!r} is not supported by the kafka-python backend")
        if isinstance(value, str) and isinstance(known[name], bool):
            value = value.lower() == "true"
        elif isinstance(value, str) and isinstance(known[name], int) and value.lstrip("-").isdigit():
            value = int(value)
        if name == "compression_type" and value == "none":
            value = None
        if name == "bootstrap_servers" and isinstance(value, str):
            value = value.split(",")
        out[name] = value
    return out


class Producer:
    def __init__(self, config: dict[str, Any], on_error: ErrorCallback,
                 on_latency: LatencyCallback | None = None) -> None:
        self._on_error, self._on_latency = on_error, on_latency
        self._p = kafka.KafkaProducer(**translate(config, kafka.KafkaProducer.DEFAULT_CONFIG))
        self._lock = threading.Lock()
        self.pending = 0

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        try:
            fut = self._p.send(topic, value=value, key=key, headers=headers)
        except KafkaTimeoutError as e:  # buffer.memory full for max.block.ms
            raise BufferError(str(e)) from e
        with self._lock:
            self.pending += 1
        fut.add_callback(self._done, time.perf_counter())
        fut.add_errback(self._failed, key, headers)

    def _done(self, t0: float, _md: Any) -> None:
        with self._lock:
            self.pending -= 1
        if self._on_latency is not None:
            self._on_latency(time.perf_counter() - t0)

    def _failed(self, key: bytes | None, headers: Headers | None, exc: Exception) -> None:
        with self._lock:
            self.pending -= 1
        self._on_error(f"{type(exc).__name__}: {exc}", key, headers)

    def poll(self, timeout: float = 0.0) -> int:
        return 0  # kafka-python delivers callbacks from its sender thread

    def flush(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            try:
                self._p.flush(max(deadline - time.monotonic(), 0.001))
            except KafkaTimeoutError:
                break
            except KafkaError:  # a batch split and re-sent (MessageSizeTooLarge): wait again
                time.sleep(0.05)
        return self.pending

    def close(self) -> None:
        self._p.close(timeout=5)


class _Listener(kafka.AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO loop, where a blocking commit is refused; the commit of the
    revoked partitions' positions is awaited there instead (kafka-python 3.x internals)."""

    def __init__(self, consumer: Any, on_assign: RebalanceCallback,
                 on_revoke: RevokeCallback) -> None:
        self.c, self.a, self.r = consumer, on_assign, on_revoke

    async def on_partitions_revoked(self, revoked: Any) -> None:
        offsets = self.r([(tp.topic, tp.partition) for tp in revoked])
        if offsets:
            await self.c._coordinator._commit_offsets_sync_async(
                {KTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})
            # kafka-python keeps its fetch position for a partition that comes straight
            # back in the same rebalance; rewind it to what was handed out.
            for (t, p), o in offsets.items():
                self.c.seek(KTP(t, p), o)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.a([(tp.topic, tp.partition) for tp in assigned])

    async def on_partitions_lost(self, lost: Any) -> None:
        self.r([(tp.topic, tp.partition) for tp in lost])  # membership gone: nothing to commit


class Consumer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._c = kafka.KafkaConsumer(**translate(config, kafka.KafkaConsumer.DEFAULT_CONFIG))

    def assign(self, positions: Sequence[tuple[str, int, int]]) -> None:
        self._c.assign([KTP(t, p) for t, p, _ in positions])
        for t, p, o in positions:
            if o >= 0:
                self._c.seek(KTP(t, p), o)

    def subscribe(self, topic: str, on_assign: RebalanceCallback,
                  on_revoke: RevokeCallback) -> None:
        self._c.subscribe([topic], listener=_Listener(self._c, on_assign, on_revoke))

    def consume(self, num_messages: int, timeout: float, meta: bool = True) -> list[Record]:
        try:
            batches = self._c.poll(timeout_ms=int(timeout * 1000), max_records=num_messages)
        except KafkaError as e:
            raise KafkaKitError(f"consume: {e}") from e
        out = []
        for msgs in batches.values():
            for m in msgs:
                if meta:
                    out.append(Record(m.topic, m.partition, m.offset, m.key, m.value,
                                      [(k, v) for k, v in m.headers] or None, m.timestamp))
                else:
                    out.append(Record(m.topic, m.partition, m.offset, m.key, m.value))
        return out

    def pause(self, parts: Sequence[TopicPartition]) -> None:
        self._c.pause(*[KTP(t, p) for t, p in parts])

    def resume(self, parts: Sequence[TopicPartition]) -> None:
        self._c.resume(*[KTP(t, p) for t, p in parts])

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._c.seek(KTP(topic, partition), offset)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets:
            self._c.commit({KTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()})

    def committed(self, parts: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {(t, p): self._c.committed(KTP(t, p)) for t, p in parts}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        tp = KTP(topic, partition)
        return int(self._c.beginning_offsets([tp])[tp]), int(self._c.end_offsets([tp])[tp])

    def fetch_positions(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        out = {}
        for p in partitions:
            tp = KTP(topic, p)
            if tp in self._c.assignment():
                out[p] = int(self._c.position(tp, timeout_ms=5000))
        return out

    def partitions_for(self, topic: str) -> list[int]:
        parts = self._c.partitions_for_topic(topic)
        if not parts:
            raise KafkaKitError(f"topic {topic!r} does not exist or has no partitions")
        return sorted(parts)

    def close(self) -> None:
        self._c.close(autocommit=False)


class Admin:
    def __init__(self, config: dict[str, Any]) -> None:
        self._a = KafkaAdminClient(**translate(config, KafkaAdminClient.DEFAULT_CONFIG))

    def cluster(self, timeout: float) -> ClusterInfo:
        d = self._a.describe_cluster()
        brokers = sorted((BrokerInfo(b["broker_id"], b["host"], b["port"], b.get("rack"))
                          for b in d["brokers"]), key=lambda b: b.id)
        return ClusterInfo(d.get("cluster_id"), d.get("controller_id"), brokers)

    def topics(self, timeout: float) -> dict[str, list[PartitionInfo]]:
        out = {}
        for t in self._a.describe_topics():
            out[t["name"]] = sorted(
                (PartitionInfo(p["partition_index"], p["leader_id"], list(p["replica_nodes"]),
                               list(p["isr_nodes"])) for p in t["partitions"]),
                key=lambda x: x.partition)
        return out

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     config: dict[str, str], timeout: float) -> None:
        try:
            self._a.create_topics([NewTopic(name, partitions, replication_factor,
                                            topic_configs=config)],
                                  timeout_ms=int(timeout * 1000), wait_for_metadata=True)
        except KafkaError as e:
            raise KafkaKitError(f"create topic {name!r}: {e}") from e

    def check_group(self, group: str, timeout: float) -> None:
        """Nothing to check: kafka-python looks a group up only to commit or read commits,
        which an assign-only consumer (the training feed) never does."""

    def topic_id(self, name: str, timeout: float) -> str | None:
        """The topic's id (changes when the topic is deleted and created again)."""
        try:
            (t,) = self._a.describe_topics([name])
        except (KafkaError, ValueError) as e:
            raise KafkaKitError(f"describe topic {name!r}: {e}") from e
        tid = t.get("topic_id")
        return str(tid) if tid and str(tid) != "00000000-0000-0000-0000-000000000000" else None

    def delete_topic(self, name: str, timeout: float) -> None:
        try:
            self._a.delete_topics([name], timeout_ms=int(timeout * 1000))
        except KafkaError as e:
            raise KafkaKitError(f"delete topic {name!r}: {e}") from e

    def close(self) -> None:
        self._a.close()
