"""Traffic for tests that change a running secure cluster (tests/security/test_lab_ca_rotation.py):
an idempotent acks=all producer and a consumer in one process, each with its own client file, until
SIGTERM; then a JSON report on stdout.

  python tests/security/_traffic.py --topic T --producer-config F --consumer-config F \
      --group G --start N [--rate 200]

Records are ``<start + i>`` in ASCII. The report: ``acked`` (the sequence numbers the brokers
acknowledged), ``failed`` (delivery errors, with their reasons), ``read`` (the sequence numbers the
consumer received, in order, duplicates kept) and ``errors`` (every error the clients reported,
by code name, with a sample text). Each client loads its CA file once, when it is created, as
every librdkafka client does: that is what a CA rotation has to respect."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import confluent_kafka as ck  # noqa: E402

from pyclient.client_props import client_properties, for_backend  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", required=True)
    ap.add_argument("--producer-config", required=True)
    ap.add_argument("--consumer-config", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--rate", type=float, default=200.0, help="records per second")
    a = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    errors: Counter = Counter()
    samples: dict[str, str] = {}
    lock = threading.Lock()

    def on_error(err: Any) -> None:
        with lock:
            errors[err.name()] += 1
            samples.setdefault(err.name(), err.str()[:300])

    acked: list[int] = []
    failed: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(f"{int(msg.value())}: {err.name()}: {err.str()}")
        else:
            acked.append(int(msg.value()))

    pcfg = for_backend(client_properties(a.producer_config), "confluent")
    producer = ck.Producer({**pcfg, "enable.idempotence": True, "acks": "all",
                            "linger.ms": 5, "delivery.timeout.ms": 300000, "error_cb": on_error})
    ccfg = for_backend(client_properties(a.consumer_config), "confluent")
    consumer = ck.Consumer({**ccfg, "group.id": a.group, "auto.offset.reset": "earliest",
                            "enable.auto.commit": True, "error_cb": on_error})
    read: list[int] = []

    def consume() -> None:
        consumer.subscribe([a.topic])
        while not stop.is_set() or drain_until > time.monotonic():
            m = consumer.poll(0.2)
            if m is None:
                continue
            if m.error():
                on_error(m.error())
                continue
            read.append(int(m.value()))
        consumer.close()

    drain_until = float("inf")
    t = threading.Thread(target=consume)
    t.start()
    i, t0 = 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - t0) * a.rate)
        while i < due and not stop.is_set():
            try:
                producer.produce(a.topic, str(a.start + i).encode(), on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.1)
        producer.poll(0.05)
    left = producer.flush(120)
    drain_until = time.monotonic() + 30  # the consumer reads what was just acknowledged
    while time.monotonic() < drain_until and len(set(read)) < len(acked):
        time.sleep(0.2)
    drain_until = 0.0
    t.join(60)
    print(json.dumps({"sent": i, "unflushed": left, "acked": sorted(acked), "failed": failed,
                      "read": read, "errors": dict(errors), "samples": samples}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
