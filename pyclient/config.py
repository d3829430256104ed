"""Default settings, as Kafka's own keys, and the merge rule: the user's value always wins.

Each default has its reason next to it. The article's producer used ``batch.size=16384`` and
``linger.ms=10``; 16 KiB batches cap a 1 KB-record producer at ~16 records per request, so
we batch far more per request and compress the whole batch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .client_props import ENV as CLIENT_CONFIG_ENV
from .client_props import client_properties, for_backend, load_client_properties

__all__ = ["CLIENT_CONFIG_ENV", "CONSUMER_DEFAULTS", "LIBRDKAFKA_LOGGER", "PRODUCER_DEFAULTS",
           "client_properties", "connection_settings", "for_backend", "load_client_properties",
           "merged", "parse_settings"]

#: librdkafka's log lines go to this Python logger (never raw to stderr): the CLI shows them
#: with ``--verbose`` only; a library user configures logging as for any other logger.
LIBRDKAFKA_LOGGER = logging.getLogger("pyclient.librdkafka")
LIBRDKAFKA_LOGGER.addHandler(logging.NullHandler())  # silent unless the user configures it

PRODUCER_DEFAULTS: dict[str, dict[str, Any]] = {
    "confluent": {
        # No loss: every in-sync replica has the record before it counts as delivered, and
        # retries cannot duplicate or reorder (idempotence implies max.in.flight <= 5).
        "acks": "all",
        "enable.idempotence": True,
        # Throughput: wait up to 20 ms to fill batches of up to 1 MiB / 100k records
        # (librdkafka defaults: 5 ms, 1,000,000 bytes, 10k records). 20 ms is invisible
        # next to a corpus ingest and lets a batch fill at ~50 MB/s per partition.
        "linger.ms": 20,
        "batch.size": 1048576,
        "batch.num.messages": 100000,
        # lz4: cheapest CPU per byte of the codecs, ~2x on text; the article uses it too.
        "compression.type": "lz4",
        # Local queue: 1M records / 1 GiB before produce() raises BufferError (we then poll).
        "queue.buffering.max.messages": 1000000,
        "queue.buffering.max.kbytes": 1048576,
        # One Python callback per *failed* record only; successes are counted in bulk.
        "delivery.report.only.error": True,
    },
    "kafka-python": {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.size": 1048576,
        "compression.type": "lz4",
    },
}

CONSUMER_DEFAULTS: dict[str, dict[str, Any]] = {
    "confluent": {
        # Offsets are committed by pyclient only after the caller has taken the records.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Prefetch: librdkafka stops fetching while its local queue holds this much. 128 MiB
        # (default 64 MiB) keeps the training feed from waiting on fetch round trips: a
        # 200k x 1 KiB feed over 12 partitions took 4.9-5.8 s with 16 MiB, 3.3-3.6 s with
        # 64 MiB, 2.3-2.6 s with 128 MiB (benchmarks/bench_feed.py child, one local broker).
        # It is memory per reader (per DataLoader worker): lower it on hosts with many.
        # max.partition.fetch.bytes stays at librdkafka's 1 MiB: 4 MiB delayed the first
        # batch (0.35-0.44 s vs 0.24-0.29 s) for no gain after.
        "queued.max.messages.kbytes": 131072,
    },
    "kafka-python": {
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.partition.fetch.bytes": 8388608,
        "fetch.max.bytes": 67108864,
    },
}


def merged(defaults: dict[str, dict[str, Any]], backend: str, bootstrap: str | None,
           settings: dict[str, Any] | None,
           command_config: str | Path | None = None) -> dict[str, Any]:
    """The client config, lowest first: the backend's defaults, the client properties file
    (``command_config``, else ``$KAFKA_KIT_CLIENT_CONFIG``), ``bootstrap``, the user's
    ``settings``; Java-only keys translated for the backend (:func:`for_backend`)."""
    user = dict(client_properties(command_config))
    if bootstrap:
        user["bootstrap.servers"] = bootstrap
    user.update(settings or {})
    out = dict(defaults[backend])
    out.update(for_backend(user, backend))
    if "bootstrap.servers" not in out:
        raise ValueError("bootstrap.servers is required")
    if backend == "confluent":
        out.setdefault("logger", LIBRDKAFKA_LOGGER)
    return out


#: Key prefixes of the settings every client type takes (where and how to connect).
_CONNECTION = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "client.dns",
               "socket.", "reconnect.", "logger", "bootstrap.timeout.ms", "request.timeout.ms")


def connection_settings(config: dict[str, Any]) -> dict[str, Any]:
    """Only the keys of ``config`` that say where and how to connect (for an admin client
    made from a producer's or consumer's config)."""
    return {k: v for k, v in config.items() if k.startswith(_CONNECTION)}


def parse_settings(pairs: list[str] | None) -> dict[str, str]:
    """Turn ``["linger.ms=5", ...]`` (the CLI's ``-X``) into a dict; values stay strings."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-X expects key=value, got {pair!r}")
        out[key.strip()] = value
    return out
