"""Prometheus metrics of the producer and the training feed (optional, off by default).

Nothing here runs unless a program asks for it: ``pip install 'pyclient[metrics]'`` (the
``prometheus-client`` package), then::

    from pyclient import metrics
    registry = metrics.serve(9464)                   # /metrics on port 9464
    ing = Ingestor(bootstrap, topic)
    metrics.ProducerMetrics(ing, registry)           # reads ing.report at each scrape
    ing.run(paths)

    feed = metrics.FeedMetrics(registry, bootstrap, topic, group="run-42")
    for batch in feed.observe(dataset):              # or a DataLoader over it
        train_step(batch)

The producer's series are read from the counters :class:`~pyclient.producer.Ingestor`
already keeps (its report), so the producer's hot path is unchanged. The feed's are counted
around the batches a training loop takes: tokens, batches, the time the loop waited for data,
and, per partition, the lag (the partition's end offset minus the feed's cursor in it), read
every ``lag_interval`` seconds with one watermark request per partition.

Series (the monitoring role's alert TrainingFeedLagGrowing reads pyclient_feed_lag_records):
``pyclient_producer_records_total``, ``_bytes_total``, ``_delivery_failures_total``,
``_malformed_total``, ``_oversized_total`` (label ``topic``);
``pyclient_feed_batches_total``, ``_tokens_total``, ``_data_wait_seconds_total`` (labels
``topic``, ``group``) and ``pyclient_feed_lag_records`` (``topic``, ``group``, ``partition``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
    from prometheus_client.core import CounterMetricFamily
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("pyclient.metrics needs prometheus-client: pip install 'pyclient[metrics]'") from e

from .backends import make_consumer


def serve(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Serve ``registry`` (a new one when None) at http://addr:port/metrics from a daemon
    thread; return it. Port 9464 is the one the docs and the monitoring role's example use."""
    reg = registry if registry is not None else CollectorRegistry()
    start_http_server(port, addr=addr, registry=reg)
    return reg


class ProducerMetrics:
    """Expose an :class:`~pyclient.producer.Ingestor`'s report as counters, read at scrape
    time (no hook in the producer; a report replaced by a new run is followed)."""

    _FIELDS = (("records", "produced", "Records handed to the producer"),
               ("bytes", "bytes_produced", "Bytes of the records handed to the producer"),
               ("delivery_failures", "failed", "Records not delivered after the client's retries"),
               ("malformed", "malformed", "Input records that could not be parsed"),
               ("oversized", "oversized", "Records larger than the topic's max.message.bytes"))

    def __init__(self, ingestor: Any, registry: CollectorRegistry) -> None:
        self.ingestor = ingestor
        registry.register(self)

    def describe(self) -> list[CounterMetricFamily]:
        return []  # descriptions come from collect(); registration must not read the report

    def collect(self) -> Iterator[CounterMetricFamily]:
        report = self.ingestor.report
        for name, attr, doc in self._FIELDS:
            family = CounterMetricFamily(f"pyclient_producer_{name}", doc, labels=["topic"])
            family.add_metric([report.topic], float(getattr(report, attr)))
            yield family


class FeedMetrics:
    """Count what a training loop takes from the feed; keep each partition's lag."""

    def __init__(self, registry: CollectorRegistry, bootstrap_servers: str, topic: str, *,
                 group: str = "training", lag_interval: float = 10.0,
                 settings: dict[str, Any] | None = None, backend: str | None = None) -> None:
        labels = {"topic": topic, "group": group}
        self.topic, self.group, self.lag_interval = topic, group, lag_interval
        self._batches = Counter("pyclient_feed_batches", "Batches taken by the training loop",
                                list(labels), registry=registry).labels(**labels)
        self._tokens = Counter("pyclient_feed_tokens", "Tokens in the batches taken",
                               list(labels), registry=registry).labels(**labels)
        self._wait = Counter("pyclient_feed_data_wait_seconds",
                             "Seconds the training loop waited for its next batch",
                             list(labels), registry=registry).labels(**labels)
        self._lag = Gauge("pyclient_feed_lag_records",
                          "Records of the partition not yet taken: end offset minus the feed's cursor",
                          ["topic", "group", "partition"], registry=registry)
        self._cursor: dict[int, int] = {}
        self._last_lag = float("-inf")
        self._client = make_consumer({"bootstrap.servers": bootstrap_servers,
                                      "group.id": f"pyclient-metrics-{group}",
                                      "enable.auto.commit": False, **(settings or {})}, backend)

    def observe(self, batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Yield ``batches`` unchanged, counting each and the wait before it."""
        it = iter(batches)
        while True:
            t0 = time.monotonic()
            try:
                batch = next(it)
            except StopIteration:
                self.refresh_lag(force=True)
                return
            self._wait.inc(time.monotonic() - t0)
            self.record(batch)
            yield batch

    def record(self, batch: dict[str, Any]) -> None:
        """Count one batch (its ``input_ids`` tokens) and move the cursors to its state."""
        self._batches.inc()
        self._tokens.inc(_tokens(batch["input_ids"]))
        for p, (offset, _skip) in batch.get("kafka_state", {}).get("cursor", {}).items():
            self._cursor[int(p)] = max(int(offset), self._cursor.get(int(p), 0))
        self.refresh_lag()

    def refresh_lag(self, force: bool = False) -> None:
        """Set each known partition's lag from its end offset, at most every lag_interval s."""
        now = time.monotonic()
        if not force and now - self._last_lag < self.lag_interval:
            return
        self._last_lag = now
        for p, offset in self._cursor.items():
            _low, high = self._client.watermarks(self.topic, p)
            self._lag.labels(self.topic, self.group, str(p)).set(max(high - offset, 0))

    def close(self) -> None:
        self._client.close()


def _tokens(input_ids: Any) -> int:
    numel = getattr(input_ids, "numel", None)
    if callable(numel):
        return int(numel())
    return sum(len(row) for row in input_ids)
