"""A Kafka cluster on Kafka's own defaults: the "before" brokers of benchmarks/bench_article.py.

Three combined (broker + controller) KRaft nodes on this host, each a JVM of the distribution
the tests use (``tests/pyclient/_broker.kafka_home``), started from
``benchmarks/kafka-defaults/server.properties`` (the distribution's config/server.properties)
with only the keys that say where a node is replaced, and the JVM options the distribution's
scripts pass when none are given (:data:`JVM_OPTS`). Plaintext, as the distribution ships.

  with defaults_cluster(workdir) as bootstrap:   # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
      ...

Run ``python benchmarks/_defaults_cluster.py`` to keep one up in the foreground (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "pyclient"))
from _broker import LOG4J2, _die_with_parent, _ready, free_port, kafka_home  # noqa: E402

DEFAULTS = HERE / "kafka-defaults" / "server.properties"
#: kafka-server-start.sh's KAFKA_HEAP_OPTS and kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS
#: when the environment sets neither (Kafka 4.x).
JVM_OPTS = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
#: The keys replaced per node; every other line of DEFAULTS is kept as shipped.
PLACEMENT = ("node.id", "controller.quorum.bootstrap.servers", "controller.quorum.voters",
             "listeners", "advertised.listeners", "log.dirs")


def node_properties(defaults: str, node: int, ports: list[tuple[int, int]], data: Path) -> str:
    """``defaults`` with the placement keys of node ``node`` (1-based) of a cluster whose nodes
    listen on ``ports`` [(client, controller), ...]; a static voter set (no formatting of
    initial controllers needed)."""
    port, cport = ports[node - 1]
    lines = [ln for ln in defaults.splitlines()
             if ln.split("=", 1)[0].strip() not in PLACEMENT]
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_p, c) in enumerate(ports, 1))
    lines += [f"node.id={node}", f"controller.quorum.voters={voters}",
              f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
              f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}", f"log.dirs={data}", ""]
    return "\n".join(lines)


@contextlib.contextmanager
def defaults_cluster(workdir: Path, nodes: int = 3, timeout: float = 120.0) -> Iterator[str]:
    """Start ``nodes`` nodes under ``workdir``; yield the bootstrap list once every node is a
    broker of the cluster; stop them all on exit (also when the start fails)."""
    cp = f"{kafka_home()}/libs/*"
    ports = [(free_port(), free_port()) for _ in range(nodes)]
    defaults = DEFAULTS.read_text()
    uuid = subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                          check=True, capture_output=True, text=True).stdout.split()[-1]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(1, nodes + 1):
            d = workdir / f"node-{n}"
            d.mkdir(parents=True, exist_ok=True)
            props = d / "server.properties"
            props.write_text(node_properties(defaults, n, ports, d / "data"))
            (d / "log4j2.properties").write_text(LOG4J2.format(log=d / "server.log"))
            subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", uuid,
                            "-c", str(props)], check=True, capture_output=True, text=True)
            procs.append(subprocess.Popen(
                ["java", *JVM_OPTS, f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
                 "-cp", cp, "kafka.Kafka", str(props)],
                stdout=open(d / "stdout.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent))
        bootstrap = ",".join(f"127.0.0.1:{p}" for p, _c in ports)
        deadline = time.monotonic() + timeout
        while not _all_brokers(bootstrap, nodes):
            dead = [i + 1 for i, p in enumerate(procs) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"defaults cluster: node(s) {dead or 'all'} not up after "
                                   f"{timeout:.0f} s; see {workdir}/node-*/server.log")
            time.sleep(1.0)
        yield bootstrap
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def _all_brokers(bootstrap: str, nodes: int) -> bool:
    from confluent_kafka.admin import AdminClient

    if not _ready(bootstrap.split(",")[0]):
        return False
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)
    except Exception:
        return False
    return len(md.brokers) == nodes


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigwait()
    wd = Path(tempfile.mkdtemp(prefix="kafka-kit-defaults-"))
    try:
        with defaults_cluster(wd) as servers:
            print(f"bootstrap.servers={servers} workdir={wd}", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        shutil.rmtree(wd, ignore_errors=True)
