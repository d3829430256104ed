"""A bounded first contact with the cluster, before any work starts.

Every command (produce, consume, smoke) calls :func:`probe` first: within ``timeout``
seconds it either reaches the bootstrap servers and (when a topic is named) reads the
topic's partitions and ``max.message.bytes``, or raises :class:`Unreachable` with one
message naming the servers and the cause (connection refused, name not resolved, TLS or
SASL failure), instead of a client that retries for minutes and logs every attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .backends import KafkaKitError
from .config import connection_settings


class Unreachable(KafkaKitError):
    """The bootstrap servers could not be reached (or refused us) within the timeout."""


class TopicMissing(KafkaKitError):
    """The named topic does not exist (the kit turns topic auto-creation off)."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    #: The topic's effective max.message.bytes (its own setting or the brokers' default).
    max_message_bytes: int


def _unreachable(servers: str, timeout: float, cause: str) -> Unreachable:
    return Unreachable(f"cannot reach the Kafka cluster at {servers} within {timeout:g}s: {cause}. "
                       "Check --bootstrap-servers (host:port of a client listener), the network "
                       "path to it, and the security settings (--command-config)")


def _missing(topic: str, servers: str) -> TopicMissing:
    return TopicMissing(f"topic {topic!r} does not exist on {servers}; the kit turns topic "
                        "auto-creation off: declare it in kafka_topics_list (topics as code) or "
                        "create it, then run again")


def probe(config: dict[str, Any], backend: str, topic: str | None = None,
          timeout: float = 30.0) -> TopicInfo | None:
    """Reach the cluster of ``config`` (a full client config; only its connection keys are
    used) within ``timeout`` seconds; return the topic's info when ``topic`` is named."""
    conn = connection_settings(config)
    servers = str(conn.get("bootstrap.servers", "?"))
    if backend == "confluent":
        return _probe_confluent(conn, servers, topic, timeout)
    return _probe_kafkapython(conn, servers, topic, timeout)


def _probe_confluent(conn: dict[str, Any], servers: str, topic: str | None,
                     timeout: float) -> TopicInfo | None:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    errors: list[Any] = []
    admin = AdminClient({**conn, "error_cb": errors.append})

    def cause(e: BaseException | None) -> str:
        # The transport's own words (refused, not resolved, SSL handshake, SASL auth) beat
        # the generic "all brokers down" / "timed out" that follow them.
        own = [x for x in errors if x.code() != ck.KafkaError._ALL_BROKERS_DOWN]
        if own:
            return f"{own[-1].name()}: {own[-1].str()}"
        if isinstance(e, ck.KafkaException):
            return f"{e.args[0].name()}: {e.args[0].str()}"
        return f"no answer ({type(e).__name__})" if e is not None else "no answer"

    try:
        # All topics, not list_topics(topic): a metadata request naming a topic creates it
        # on a broker that allows auto-creation.
        md = admin.list_topics(timeout=timeout)
    except ck.KafkaException as e:
        admin.poll(0)  # serve error_cb: the transport's reason
        raise _unreachable(servers, timeout, cause(e)) from None
    admin.poll(0)
    if errors and any(x.code() in (ck.KafkaError._AUTHENTICATION, ck.KafkaError._SSL)
                      for x in errors):
        raise _unreachable(servers, timeout, cause(None))
    if topic is None:
        return None
    t = md.topics.get(topic)
    if t is None:
        raise _missing(topic, servers)
    if t.error is not None:
        raise KafkaKitError(f"topic {topic!r} on {servers}: {t.error.name()}: {t.error.str()}")
    try:
        res = ConfigResource(ResourceType.TOPIC, topic)
        fut = admin.describe_configs([res], request_timeout=timeout)[res]
        entries = fut.result(timeout)
    except ck.KafkaException as e:
        hint = (" (pyclient reads the topic's max.message.bytes: the user needs the DESCRIBE_CONFIGS "
                "operation on the topic, e.g. operations [read, describe, describe_configs] in kafka_access_acls)"
                if e.args[0].code() == ck.KafkaError.TOPIC_AUTHORIZATION_FAILED else "")
        raise KafkaKitError(f"describe configs of topic {topic!r} on {servers}: "
                            f"{e.args[0].str()}{hint}") from None
    except TimeoutError:
        raise _unreachable(servers, timeout, cause(None)) from None
    return TopicInfo(topic, len(t.partitions), int(entries["max.message.bytes"].value))


class _LastError(logging.Handler):
    """Keeps the first connection error kafka-python logged (it only logs them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if self.last is None and not msg.startswith("Bootstrap"):
            self.last = msg.split(">: ")[-1]


def _probe_kafkapython(conn: dict[str, Any], servers: str, topic: str | None,
                       timeout: float) -> TopicInfo | None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import KafkaError

    from .backends.kafkapython import translate

    ms = max(int(timeout * 1000), 1)
    conn = {**conn, "bootstrap.timeout.ms": ms, "request.timeout.ms": ms}
    log = logging.getLogger("kafka")
    h = _LastError()
    log.addHandler(h)
    saved = log.level, log.propagate
    if not log.isEnabledFor(logging.WARNING):  # silenced (the CLI without -v): listen only
        log.setLevel(logging.WARNING)
        log.propagate = False
    try:
        try:
            admin = KafkaAdminClient(**translate(conn, KafkaAdminClient.DEFAULT_CONFIG))
        except KafkaError as e:
            raise _unreachable(servers, timeout, h.last or str(e)) from None
        try:
            if topic is None:
                admin.describe_cluster()
                return None
            if topic not in admin.list_topics():  # all topics: naming one may create it
                raise _missing(topic, servers)
            (desc,) = admin.describe_topics([topic])
            if desc["error_code"]:
                raise KafkaKitError(f"topic {topic!r} on {servers}: error code {desc['error_code']}")
            cfg = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                         configs={"max.message.bytes": None})],
                                         config_filter="all")
            mmb = int(cfg["topic"][topic]["max.message.bytes"]["value"])
            return TopicInfo(topic, len(desc["partitions"]), mmb)
        except KafkaError as e:
            raise _unreachable(servers, timeout, h.last or f"{type(e).__name__}: {e}") from None
        finally:
            admin.close()
    finally:
        log.removeHandler(h)
        log.setLevel(saved[0])
        log.propagate = saved[1]
