"""Start and stop a real single-node KRaft Kafka broker for tests and local benchmark runs.

The broker comes from the distribution that ``tools/build-kafka-dist`` assembles
(``.cache/dist/kafka_2.13-<version>.tgz``, ``libs/*.jar`` only, no ``bin/`` scripts). The
archive is extracted once under ``.cache/kafka-extracted/`` and reused.

Run ``python tests/pyclient/_broker.py`` to keep a broker up in the foreground (for the
benchmarks); it prints its bootstrap address and stops on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
NAME = f"kafka_2.13-{VERSION}"
ARCHIVE = REPO / ".cache" / "dist" / f"{NAME}.tgz"
EXTRACT_ROOT = REPO / ".cache" / "kafka-extracted"

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


def kafka_home() -> Path:
    """Return the extracted distribution, building and extracting it when missing."""
    home = EXTRACT_ROOT / NAME
    if (home / "libs").is_dir() and (home / ".extracted").exists():
        return home
    if not ARCHIVE.exists():
        subprocess.run([str(REPO / "tools" / "build-kafka-dist"), VERSION], cwd=REPO, check=True)
    tmp = Path(tempfile.mkdtemp(dir=EXTRACT_ROOT.parent if EXTRACT_ROOT.parent.exists() else None))
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp, filter="data")
    EXTRACT_ROOT.mkdir(parents=True, exist_ok=True)
    if home.exists():
        shutil.rmtree(home)
    (tmp / NAME).rename(home)
    shutil.rmtree(tmp, ignore_errors=True)
    (home / ".extracted").touch()
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    bootstrap: str
    workdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def log_file(self) -> Path:
        return self.workdir / "server.log"

    def stop(self) -> None:
        """Stop the JVM and everything in its process group; never leave it behind."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the broker when the process that started it dies
    (a test run killed by a timeout would otherwise leave a JVM listening)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_broker(workdir: Path, heap: str = "512m", timeout: float = 90.0) -> Broker:
    """Format storage and start one broker+controller node; return once it accepts clients."""
    home = kafka_home()
    cp = f"{home}/libs/*"
    port, cport = free_port(), free_port()
    logs = workdir / "data"
    props = workdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{cport}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={logs}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "broker.rack=rack-a",
                "",
            ]
        )
    )
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=workdir / "server.log"))
    uuid = subprocess.run(
        ["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    subprocess.run(
        ["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", uuid, "-c", str(props)],
        check=True, capture_output=True, text=True,
    )
    out = open(workdir / "stdout.log", "wb")
    proc = subprocess.Popen(
        ["java", f"-Xmx{heap}", f"-Dlog4j2.configurationFile={log4j}", "-cp", cp, "kafka.Kafka", str(props)],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    broker = Broker(f"127.0.0.1:{port}", workdir, proc)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited with {proc.returncode}; see {workdir}")
            if _ready(broker.bootstrap):
                return broker
            time.sleep(0.5)
        raise RuntimeError(f"broker not ready after {timeout}s; see {workdir}")
    except BaseException:
        broker.stop()
        raise


def _ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    host, port = bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)
        return len(md.brokers) >= 1
    except Exception:
        return False


if __name__ == "__main__":
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # delivered to sigwait() only
    wd = Path(tempfile.mkdtemp(prefix="kafka-kit-broker-"))
    b = start_broker(wd, heap=os.environ.get("KAFKA_HEAP", "1g"))
    print(f"bootstrap.servers={b.bootstrap} workdir={wd}", flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        b.stop()
        shutil.rmtree(wd, ignore_errors=True)
