"""pyclient.metrics on a real broker: the producer's counters as Prometheus serves them over
HTTP equal the ingest report, and the feed's batches, tokens and per-partition lag follow
what the training loop took."""

from __future__ import annotations

import socket
import urllib.request

import pytest

pytest.importorskip("prometheus_client")

from helpers import corpus, make_topic  # noqa: E402
from pyclient import metrics  # noqa: E402
from pyclient.backends import make_consumer  # noqa: E402
from pyclient.dataset import KafkaTokenDataset  # noqa: E402
from pyclient.producer import Ingestor  # noqa: E402

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_producer_and_feed_metrics(bootstrap, topic_name, tmp_path):
    topic = make_topic(bootstrap, topic_name, partitions=2)
    port = _free_port()
    registry = metrics.serve(port, addr="127.0.0.1")
    ing = Ingestor(bootstrap, topic, settings={"sticky.partitioning.linger.ms": 0})
    metrics.ProducerMetrics(ing, registry)
    before = _scrape(port)
    assert before[f'pyclient_producer_records_total{{topic="{topic}"}}'] == 0
    docs = corpus(tmp_path / "c.txt", 300)
    report = ing.run([str(tmp_path / "c.txt")])
    assert report.ok and report.produced == len(docs)
    s = _scrape(port)
    assert s[f'pyclient_producer_records_total{{topic="{topic}"}}'] == report.produced
    assert s[f'pyclient_producer_bytes_total{{topic="{topic}"}}'] == report.bytes_produced > 0
    assert s[f'pyclient_producer_delivery_failures_total{{topic="{topic}"}}'] == 0

    ds = KafkaTokenDataset(bootstrap, topic, seq_len=16, batch_size=2, last_batch="pad")
    feed = metrics.FeedMetrics(registry, bootstrap, topic, group="t", lag_interval=0)
    taken, cursor = 0, {}
    for batch in feed.observe(ds):
        taken += 1
        for p, (offset, _) in batch["kafka_state"]["cursor"].items():
            cursor[int(p)] = max(cursor.get(int(p), 0), offset)
        if taken == 3:
            s = _scrape(port)
            assert s['pyclient_feed_batches_total{group="t",topic="%s"}' % topic] == 3
            assert s['pyclient_feed_tokens_total{group="t",topic="%s"}' % topic] == 3 * 2 * 16
            lags = {k: v for k, v in s.items() if k.startswith("pyclient_feed_lag_records")}
            assert lags and sum(lags.values()) > 0, "three batches of 300 documents: records left"
    feed.close()
    s = _scrape(port)
    assert s['pyclient_feed_batches_total{group="t",topic="%s"}' % topic] == taken > 3
    assert s['pyclient_feed_data_wait_seconds_total{group="t",topic="%s"}' % topic] > 0
    ends = make_consumer({"bootstrap.servers": bootstrap, "group.id": "lag-check"})
    try:
        for p, offset in cursor.items():
            high = ends.watermarks(topic, p)[1]
            assert s[f'pyclient_feed_lag_records{{group="t",partition="{p}",topic="{topic}"}}'] == high - offset
    finally:
        ends.close()
