"""pyclient: Kafka client for training hosts.

- :mod:`pyclient.producer`: corpus ingest (``Ingestor``), no loss, resumable.
- :mod:`pyclient.consumer`: batch consumer with manual offsets (``FeedConsumer``).
- :mod:`pyclient.dataset`: packed-token training feed (``KafkaTokenDataset``).
- :mod:`pyclient.smoke`: cluster smoke test (``run_smoke``).
- :mod:`pyclient.admin`: idempotent topic administration.

Backends: confluent-kafka (default) or kafka-python (``backend="kafka-python"`` or
``$PYCLIENT_BACKEND``). See docs/pyclient.md.
"""

__version__ = "0.1.0"
