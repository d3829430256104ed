#!/usr/bin/env python3
"""Overhead of the JMX exporter agent on the producer: the same pyclient ingest against a
single-node broker started without, then with, the agent the kafka role installs (its rules
file rendered from roles/kafka/templates/etc/kafka/jmx_exporter.yml.j2 with the role's
defaults), /metrics scraped every --scrape-interval seconds during the run as Prometheus would.
Rounds alternate (without, with, without, ...) so drift on a shared machine hits both; prints
records/s per run, the medians and their ratio (with / without), and the mean scrape time.

  python benchmarks/bench_jmx_agent.py [--records 100000] [--rounds 3] [--scrape-interval 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "pyclient"))
import _broker  # noqa: E402

JAR = REPO / ".cache" / "dist" / "jmx_prometheus_javaagent-1.0.1.jar"


def render_rules(path: Path) -> None:
    """The role's rules template with its defaults (no extra rules, no authentication)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool          # Ansible's filter; the values here are real booleans
    text = (REPO / "roles/kafka/templates/etc/kafka/jmx_exporter.yml.j2").read_text()
    path.write_text(env.from_string(text).render(
        ansible_managed="bench", kafka_jmx_exporter_extra_object_names=[], kafka_jmx_exporter_extra_rules=[],
        kafka_jmx_exporter_port=0, kafka_jmx_exporter_bind_address="", kafka_jmx_exporter_basic_auth_username="",
        __kafka_jmx_exporter_tls=False))


def start(workdir: Path, agent: str | None) -> _broker.Broker:
    popen = subprocess.Popen

    def with_agent(args, **kw):
        if agent and isinstance(args, list) and "kafka.Kafka" in args:
            args = [args[0], agent, *args[1:]]
        return popen(args, **kw)

    _broker.subprocess.Popen = with_agent
    try:
        return _broker.start_broker(workdir, heap="1g")
    finally:
        _broker.subprocess.Popen = popen


def ingest(bootstrap: str, corpus: Path, topic: str) -> float:
    from pyclient.admin import Admin
    from pyclient.producer import Ingestor

    with Admin({"bootstrap.servers": bootstrap}) as a:
        a.ensure_topic(topic, 6, 1, {}, if_exists="fail")
    report = Ingestor(bootstrap, topic).run([str(corpus)])
    assert report.ok, report
    return report.records_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scrape-interval", type=float, default=5.0)
    a = ap.parse_args()
    if not JAR.exists():
        sys.exit(f"{JAR} missing: run tools/fetch-jmx-exporter")
    work = Path(tempfile.mkdtemp(prefix="bench-jmx-"))
    corpus = work / "corpus.txt"
    line = ("lorem ipsum dolor sit amet " * 64)[: a.record_size - 1] + "\n"
    corpus.write_text(line * a.records)
    rules = work / "jmx_exporter.yml"
    render_rules(rules)
    results: dict[str, list[float]] = {"without": [], "with": []}
    scrapes: list[float] = []
    try:
        for r in range(a.rounds):
            for mode in ("without", "with"):
                port = _broker.free_port()
                agent = f"-javaagent:{JAR}=127.0.0.1:{port}:{rules}" if mode == "with" else None
                wd = work / f"{mode}-{r}"
                wd.mkdir()
                broker = start(wd, agent)
                stop = threading.Event()

                def scrape() -> None:
                    # At once, then every interval: a round shorter than the interval is
                    # still measured with the agent being scraped.
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
                        scrapes.append(time.perf_counter() - t0)
                        stop.wait(a.scrape_interval)

                scraper = threading.Thread(target=scrape, daemon=True)
                if agent:
                    scraper.start()
                try:
                    rate = ingest(broker.bootstrap, corpus, f"bench-{mode}-{r}")
                finally:
                    stop.set()
                    broker.stop()
                results[mode].append(rate)
                print(f"round {r + 1} {mode:7s} agent: {rate:10.0f} records/s"
                      + (f", {len(scrapes)} scrapes so far" if agent else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    print(f"median without {without:.0f} records/s, with {with_:.0f} records/s, "
          f"ratio with/without {with_ / without:.3f}; {len(scrapes)} scrapes, "
          f"mean {1000 * statistics.mean(scrapes) if scrapes else 0:.1f} ms")


if __name__ == "__main__":
    main()
