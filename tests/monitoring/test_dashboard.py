"""The Grafana dashboard the kit ships (roles/monitoring/files/grafana/kafka-kit.json): valid
JSON, and every panel expression parses as PromQL (promtool, through a rules file with one
recording rule per expression). Whether each expression returns series on a real cluster is
checked in Molecule (molecule/default/tests/test_metrics.py); whether its kafka_* series are
exported by the kit's agent, in test_jmx_exporter.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "roles" / "monitoring" / "files" / "grafana" / "kafka-kit.json"
PROMTOOL = shutil.which("promtool")


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query, with Grafana's $__rate_interval made 1m."""
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"].replace("$__rate_interval", "1m"))
            for p in doc["panels"] for t in p.get("targets", [])]


def test_dashboard_shape():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "kafka-kit"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in doc["panels"]:
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool: apt-get install prometheus (make deps)")
def test_every_expression_parses(tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool: apt-get install prometheus (make deps)")
def test_a_broken_expression_is_caught(tmp_path):
    """The check above can fail: promtool refuses a dashboard expression with a typo."""
    path = tmp_path / "bad.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "dashboard:bad", "expr": 'sum by (instance (up{job="kafka"})'}]}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


def series_names(expr: str) -> set[str]:
    """Metric names an expression reads (words followed by { or [ or a space/paren, minus PromQL's own)."""
    words = set(re.findall(r"\b([a-z_][a-z0-9_:]*)\b(?=\s*[{\[)\s]|$)", expr))
    keywords = {"sum", "max", "min", "by", "rate", "scalar", "time", "and", "or", "unless", "on",
                "increase", "deriv", "count", "avg", "without", "ignoring", "group_left", "group_right"}
    labels = set(re.findall(r"([a-z_]+)\s*[=!]~?", expr))
    return {w for w in words - keywords - labels if "_" in w}
