"""benchmarks/_defaults_cluster.py: the "before" brokers of bench_article run on Kafka's shipped
settings, with only the keys that place a node replaced."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import _defaults_cluster as dc  # noqa: E402


def _props(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            assert k not in out, f"{k} twice"
            out[k] = v
    return out


def test_every_shipped_setting_is_kept_and_only_placement_replaced(tmp_path: Path) -> None:
    shipped = _props(dc.DEFAULTS.read_text())
    ports = [(19092, 19093), (29092, 29093), (39092, 39093)]
    node = _props(dc.node_properties(dc.DEFAULTS.read_text(), 2, ports, tmp_path / "d"))
    tuning = {k: v for k, v in shipped.items() if k not in dc.PLACEMENT}
    assert {k: node[k] for k in tuning} == tuning
    assert set(node) - set(tuning) == {"node.id", "controller.quorum.voters", "listeners",
                                       "advertised.listeners", "log.dirs"}
    assert node["node.id"] == "2"
    assert node["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
    assert node["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert node["log.dirs"] == str(tmp_path / "d")


def test_the_shipped_broker_tuning_is_kafkas_not_the_kits() -> None:
    """The values that make "before" the distribution's (config/server.properties of Kafka 4.x):
    none of the kit's profile may leak in."""
    shipped = _props(dc.DEFAULTS.read_text())
    assert shipped["num.network.threads"] == "3" and shipped["num.io.threads"] == "8"
    assert shipped["socket.send.buffer.bytes"] == shipped["socket.receive.buffer.bytes"] == "102400"
    assert "num.replica.fetchers" not in shipped and "compression.type" not in shipped
    assert dc.JVM_OPTS[:2] == ["-Xmx1G", "-Xms1G"] and "-XX:+UseG1GC" in dc.JVM_OPTS
