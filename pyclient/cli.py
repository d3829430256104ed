"""``pyclient``: a thin command line over the library (produce, consume, smoke).

Every Kafka setting passes through unchanged with ``-X key=value`` (repeatable); how to
reach a secured cluster comes from a Kafka client properties file (``--command-config FILE``,
as Kafka's own tools take it, or $KAFKA_KIT_CLIENT_CONFIG). Settings, lowest first: pyclient's
defaults, the properties file, --bootstrap-servers, -X.
Exit status: 0 on success, 1 when a check or a delivery failed or the cluster could not be
reached within --timeout, 2 on bad usage, 130/143 when interrupted by SIGINT/SIGTERM (after
flushing and checkpointing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import cli_io
from .backends import BACKENDS, KafkaKitError
from .checkpoint import CheckpointMismatch
from .config import CLIENT_CONFIG_ENV, LIBRDKAFKA_LOGGER, parse_settings


def _common(p: argparse.ArgumentParser, timeout: float = 30.0, timeout_help: str = "") -> None:
    p.add_argument("--bootstrap-servers", "-b", required=True, help="host:port[,host:port...]")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="client library (default: $PYCLIENT_BACKEND or confluent)")
    p.add_argument("--command-config", default=None, metavar="FILE",
                   help=f"Kafka client properties file (security.protocol, sasl.*, ssl.*), as "
                        f"Kafka's tools take it (default: ${CLIENT_CONFIG_ENV})")
    p.add_argument("-X", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a Kafka setting, passed through as is (repeatable)")
    p.add_argument("--timeout", type=float, default=timeout,
                   help=timeout_help or "seconds allowed to reach the cluster and find the topic")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show the client libraries' own log lines (librdkafka, kafka-python)")


def cmd_smoke(a: argparse.Namespace) -> int:
    """Check a deployed cluster: brokers, a verified produce/consume round trip, racks."""
    from .smoke import run_smoke

    rep = run_smoke(a.bootstrap_servers, expect_brokers=a.expect_brokers,
                    replication_factor=a.replication_factor,
                    min_insync_replicas=a.min_insync_replicas or None, partitions=a.partitions,
                    records=a.records, record_size=a.record_size, expect_racks=a.expect_racks,
                    settings=parse_settings(a.settings), backend=a.backend,
                    timeout=a.timeout, command_config=a.command_config)
    if a.json:
        print(json.dumps(rep.to_dict(), indent=2, default=str))
    else:
        print(f"smoke {rep.bootstrap_servers} ({rep.backend}) topic {rep.topic}")
        for b in rep.brokers:
            print(f"  broker {b.id} {b.host}:{b.port} rack={b.rack}")
        for c in rep.checks:
            print(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
    if not rep.ok:
        names = ", ".join(f"{c.name} ({c.detail})" for c in rep.failures) or "no checks ran"
        print(f"smoke FAILED: {names}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyclient", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("smoke", help=cmd_smoke.__doc__, description=cmd_smoke.__doc__)
    _common(s, 60.0, "seconds allowed to reach the cluster, and for each step (describe, "
                     "create, produce, consume)")
    s.add_argument("--expect-brokers", type=int, default=None, help="fail unless exactly N brokers")
    s.add_argument("--replication-factor", type=int, default=3)
    s.add_argument("--min-insync-replicas", type=int, default=2, help="topic setting; 0 to omit")
    s.add_argument("--partitions", type=int, default=None, help="default: number of brokers")
    s.add_argument("--records", type=int, default=10000)
    s.add_argument("--record-size", type=int, default=1024)
    s.add_argument("--expect-racks", action="store_true",
                   help="fail unless every broker has a rack and replicas sit on distinct racks")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_smoke)

    cli_io.add_commands(sub, _common)
    return ap


def _logging(verbose: bool) -> None:
    """Client library log lines go through Python logging: hidden unless --verbose (the
    command's own error message names the servers and the cause)."""
    logging.basicConfig(level=logging.WARNING, format="pyclient: %(name)s: %(message)s")
    level = logging.INFO if verbose else logging.CRITICAL + 1
    for log in (LIBRDKAFKA_LOGGER, logging.getLogger("kafka")):
        log.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    _logging(a.verbose)
    if a.command_config:  # one source for every client the command makes
        os.environ[CLIENT_CONFIG_ENV] = a.command_config
    try:
        return int(a.func(a))
    except (ValueError, FileNotFoundError) as e:  # bad usage: settings, paths, layout
        print(f"pyclient: {e}", file=sys.stderr)
        return 2
    except (CheckpointMismatch, KafkaKitError) as e:
        print(f"pyclient: {e}", file=sys.stderr)
        return 1

