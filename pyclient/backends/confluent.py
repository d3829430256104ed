"""confluent-kafka (librdkafka) backend: the default and the fast one."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from .base import (BrokerInfo, ClusterInfo, ErrorCallback, Headers, KafkaKitError, LatencyCallback,
                   PartitionInfo, Record, RebalanceCallback, RevokeCallback,
                   TopicPartition)

T = TypeVar("T")


def _keep_inherited_clients() -> None:
    """In a child made by fork() (DataLoader workers by default): librdkafka's threads do
    not survive a fork, and destroying a client the child inherited waits for them or aborts
    (an inherited, subscribed consumer: assert in rd_kafka_cgrp_destroy_final; librdkafka
    #2374). A parent's client that is garbage in a reference cycle at fork time would be
    destroyed by the child's garbage collector at a random moment. Freeze everything
    inherited (gc.freeze: never collected in the child; its memory is the parent's pages);
    clients the child creates itself are collected as usual."""
    gc.freeze()


os.register_at_fork(after_in_child=_keep_inherited_clients)
_TRANSIENT = {ck.KafkaError.NOT_COORDINATOR, ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
              ck.KafkaError.COORDINATOR_NOT_AVAILABLE, ck.KafkaError._WAIT_COORD}
#: A partition whose leader is not known yet (a new topic) or moving (a restart).
_LEADER_MOVING = frozenset({ck.KafkaError.NOT_LEADER_FOR_PARTITION,
                            ck.KafkaError.LEADER_NOT_AVAILABLE})
#: A connection to a broker torn down under a request: the broker restarted, left the metadata
#: (librdkafka destroys its handle: seen in the day2 scenario's training feed, 2026-12-07) or
#: every broker is down for a moment (a full-cluster restart). Retried within the timeout.
_BROKER_GONE = frozenset({ck.KafkaError._DESTROY_BROKER, ck.KafkaError._TRANSPORT,
                          ck.KafkaError._ALL_BROKERS_DOWN})


def _retry(what: str, fn: Callable[[], T], timeout: float = 30.0,
           also: frozenset[int] = frozenset()) -> T:
    """Call ``fn``, retrying retriable errors (coordinator moving or loading; ``also``: these
    codes too) until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except ck.KafkaException as e:
            err = e.args[0]
            if (not err.retriable() and err.code() not in _TRANSIENT and err.code() not in also
                    or time.monotonic() > deadline):
                raise KafkaKitError(f"{what}: {err.name()}: {err.str()}") from e
            time.sleep(0.2)


def _producer_fatal(e: BaseException) -> KafkaKitError:
    """A librdkafka fatal error (the producer cannot go on: e.g. the idempotent producer's
    InitProducerId refused with CLUSTER_AUTHORIZATION_FAILED, which Kafka answers a user with no
    WRITE on any topic) as one message. confluent-kafka raises it from its error handler and then
    fails the pending delivery callback with a SystemError whose cause is that KafkaException."""
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ck.KafkaException):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return KafkaKitError(f"producer failed: {type(e).__name__}: {e}")
    err = cause.args[0]
    hint = (" (the user needs WRITE on the topic; Kafka refuses an idempotent producer's id to a user "
            "allowed to write nowhere)" if err.code() == ck.KafkaError.CLUSTER_AUTHORIZATION_FAILED else "")
    return KafkaKitError(f"producer stopped by a fatal error: {err.name()}: {err.str()}{hint}")


class Producer:
    def __init__(self, config: dict[str, Any], on_error: ErrorCallback,
                 on_latency: LatencyCallback | None = None) -> None:
        self._on_error, self._on_latency = on_error, on_latency
        if on_latency is not None:  # success reports are needed to see latencies
            config = {**config, "delivery.report.only.error": False}
        self._p = ck.Producer(config)
        cb, raw = self._delivered, self._p.produce

        def produce(topic: str, value: bytes, key: bytes | None = None,
                    headers: Headers | None = None) -> None:
            # Delivery reports do not carry headers back, so the callback is bound to them;
            # with delivery.report.only.error it runs for failed records only.
            raw(topic, value, key, on_delivery=partial(cb, headers), headers=headers)

        self.produce = produce  # type: ignore[method-assign]  # one call layer less per record

    def _delivered(self, headers: Headers | None, err: Any, msg: Any) -> None:
        if err is not None:
            self._on_error(f"{err.name()}: {err.str()}", msg.key(), headers)
        elif self._on_latency is not None:
            self._on_latency(msg.latency())

    def poll(self, timeout: float = 0.0) -> int:
        try:
            return int(self._p.poll(timeout))
        except (ck.KafkaException, SystemError) as e:
            raise _producer_fatal(e) from e

    def flush(self, timeout: float) -> int:
        try:
            return int(self._p.flush(timeout))
        except (ck.KafkaException, SystemError) as e:
            raise _producer_fatal(e) from e

    def close(self) -> None:
        self._p.flush(0)


def _group_hint(err: Any, group: str | None) -> str:
    """What to do about a refused consumer group: librdkafka looks the group's coordinator
    up as soon as a group.id is set (which confluent-kafka requires), even for a consumer
    that only assigns partitions and never commits (the training feed)."""
    if err.code() != ck.KafkaError.GROUP_AUTHORIZATION_FAILED:
        return ""
    return (f" (consumer group {group!r}: the principal needs Describe on it, and "
            "Read to commit; grant an ACL on that group, or set group.id to a group the "
            "principal may use: settings={'group.id': NAME} in the library, -X group.id=NAME "
            "or --group on the command line)")


class Consumer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._c = ck.Consumer(config)
        self._eof: dict[tuple[str, int], int] = {}
        self._group = config.get("group.id")

    def assign(self, positions: Sequence[tuple[str, int, int]]) -> None:
        for t, p, _ in positions:  # an end-of-partition position is only news after a seek
            self._eof.pop((t, p), None)
        self._c.assign([ck.TopicPartition(t, p, o if o >= 0 else ck.OFFSET_STORED)
                        for t, p, o in positions])

    def subscribe(self, topic: str, on_assign: RebalanceCallback,
                  on_revoke: RevokeCallback) -> None:
        def revoke(_c: Any, parts: list[Any]) -> None:
            self.commit(on_revoke([(tp.topic, tp.partition) for tp in parts]))

        def lost(_c: Any, parts: list[Any]) -> None:  # membership gone: nothing to commit
            on_revoke([(tp.topic, tp.partition) for tp in parts])

        self._c.subscribe(
            [topic], on_revoke=revoke, on_lost=lost,
            on_assign=lambda c, parts: on_assign([(tp.topic, tp.partition) for tp in parts]))

    def consume(self, num_messages: int, timeout: float, meta: bool = True) -> list[Record]:
        # librdkafka's consume(n, t) blocks until n messages *or* t: a batch that the fetch
        # queues cannot fill (a paused or ended partition) would cost the whole timeout.
        # So: take what is queued now; if nothing, wait for one message, then take the rest.
        msgs = self._c.consume(num_messages, 0)
        if not msgs and timeout > 0:
            msgs = self._c.consume(1, timeout)
            if msgs and num_messages > 1:
                msgs += self._c.consume(num_messages - 1, 0)
        out = []
        append = out.append
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == ck.KafkaError._PARTITION_EOF:  # with enable.partition.eof
                    self._eof[(m.topic(), m.partition())] = m.offset()
                    continue
                if err.fatal() or not err.retriable():
                    raise KafkaKitError(f"consume: {err.name()}: {err.str()}"
                                        f"{_group_hint(err, self._group)}")
                continue
            if meta:
                append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                              m.headers(), m.timestamp()[1]))
            else:
                append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        return out

    def pause(self, parts: Sequence[TopicPartition]) -> None:
        self._c.pause([ck.TopicPartition(t, p) for t, p in parts])

    def resume(self, parts: Sequence[TopicPartition]) -> None:
        self._c.resume([ck.TopicPartition(t, p) for t, p in parts])

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._eof.pop((topic, partition), None)
        self._c.seek(ck.TopicPartition(topic, partition, offset))

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if offsets:
            tps = [ck.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            _retry("commit", lambda: self._c.commit(offsets=tps, asynchronous=False))

    def committed(self, parts: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = [ck.TopicPartition(t, p) for t, p in parts]
        res = _retry("committed", lambda: self._c.committed(tps, timeout=30))
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in res}

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        # Retried: a topic created a moment ago answers NOT_LEADER_FOR_PARTITION until its
        # leaders are known everywhere (seen building a dataset right after make_topic), and a
        # broker restarting or leaving tears down the request (_DESTROY_BROKER, in the day2 run).
        lo, hi = _retry(f"watermarks of {topic}-{partition}", lambda: self._c.get_watermark_offsets(
            ck.TopicPartition(topic, partition), timeout=30), also=_LEADER_MOVING | _BROKER_GONE)
        return int(lo), int(hi)

    def fetch_positions(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        eof = self._eof
        return {p: eof[(topic, p)] for p in partitions if (topic, p) in eof}

    def partitions_for(self, topic: str) -> list[int]:
        md = self._c.list_topics(topic, timeout=30).topics[topic]
        if md.error is not None:
            raise KafkaKitError(f"topic {topic!r}: {md.error.str()}")
        return sorted(md.partitions)

    def close(self) -> None:
        self._c.close()


class Admin:
    def __init__(self, config: dict[str, Any]) -> None:
        self._a = AdminClient(config)

    def cluster(self, timeout: float) -> ClusterInfo:
        d = self._a.describe_cluster(request_timeout=timeout).result(timeout)
        brokers = sorted((BrokerInfo(n.id, n.host, n.port, n.rack) for n in d.nodes),
                         key=lambda b: b.id)
        return ClusterInfo(d.cluster_id, d.controller.id if d.controller else None, brokers)

    def topics(self, timeout: float) -> dict[str, list[PartitionInfo]]:
        md = self._a.list_topics(timeout=timeout)
        return {name: sorted((PartitionInfo(p.id, p.leader, list(p.replicas), list(p.isrs))
                              for p in t.partitions.values()), key=lambda x: x.partition)
                for name, t in md.topics.items()}

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     config: dict[str, str], timeout: float) -> None:
        fut = self._a.create_topics([NewTopic(name, partitions, replication_factor, config=config)],
                                    request_timeout=timeout)[name]
        try:
            fut.result(timeout)
        except ck.KafkaException as e:
            raise KafkaKitError(f"create topic {name!r}: {e.args[0].str()}") from e

    def check_group(self, group: str, timeout: float) -> None:
        """Fail now, naming the group and what to do, where the principal may not use it. A
        consumer with a group.id looks the group's coordinator up (Describe on the group) even
        when it only assigns partitions; refused, librdkafka retries that lookup without a
        word to committed() (which just times out) and reports it as a consume error at a
        moment that depends on timing. DescribeGroups answers at once; its other errors (a
        group that does not exist yet, a coordinator moving) are no refusal and are ignored."""
        try:
            self._a.describe_consumer_groups([group], request_timeout=timeout)[group].result()
        except ck.KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, ck.KafkaError) and \
                    err.code() == ck.KafkaError.GROUP_AUTHORIZATION_FAILED:
                raise KafkaKitError(f"{err.name()}: {err.str()}{_group_hint(err, group)}") from e

    def topic_id(self, name: str, timeout: float) -> str | None:
        """The topic's id (changes when the topic is deleted and created again)."""
        try:
            d = self._a.describe_topics(ck.TopicCollection([name]),
                                        request_timeout=timeout)[name].result(timeout)
        except ck.KafkaException as e:
            raise KafkaKitError(f"describe topic {name!r}: {e.args[0].str()}") from e
        return str(d.topic_id) if getattr(d, "topic_id", None) is not None else None

    def delete_topic(self, name: str, timeout: float) -> None:
        try:
            self._a.delete_topics([name], request_timeout=timeout)[name].result(timeout)
        except ck.KafkaException as e:
            raise KafkaKitError(f"delete topic {name!r}: {e.args[0].str()}") from e

    def close(self) -> None:
        # AdminClient has no close(): dropping the last reference destroys the handle now,
        # even while this wrapper lives on in a traceback (its threads would otherwise keep
        # running, and reconnecting to an unreachable cluster, until the wrapper is collected).
        self._a = None  # type: ignore[assignment]
