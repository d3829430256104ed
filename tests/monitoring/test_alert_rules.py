"""The kit's alert rules as the monitoring role renders them, unit-tested with promtool.

The rules template goes through the real role (ansible-playbook on localhost: defaults, vars,
the template module with its [[ ]] delimiters), then `promtool check rules` and `promtool test
rules tests/monitoring/rules_test.yml` (Debian's prometheus package: make deps installs it).
Every alert must have a test case where it fires and one where it stays silent on healthy
series; a rule added without both fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from render_role import REPO, render

HERE = Path(__file__).resolve().parent
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool: apt-get install prometheus (make deps)")

INVENTORY = """
all:
  hosts:
    mon-1:
      ansible_connection: local
      ansible_python_interpreter: {python}
{extra}
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Load the monitoring role (defaults, vars) and check its inputs
      ansible.builtin.include_role: {{name: monitoring, tasks_from: assert.yml, public: true}}
    - name: Render the rules as the role does
      ansible.builtin.template:
        src: {repo}/roles/monitoring/templates/etc/prometheus/rules/kafka-kit.rules.yml.j2
        dest: "{out}/kafka-kit.rules.yml"
        variable_start_string: "[["
        variable_end_string: "]]"
        mode: "0644"
      vars:
        __for: "{{{{ __monitoring_alert_for }}}}"
        __thresholds: "{{{{ __monitoring_alert_thresholds }}}}"
"""


def render_rules(work: Path, extra: str = "") -> Path:
    files = render(work, INVENTORY.format(python=sys.executable, extra=extra), PLAYBOOK)
    path = work / "out" / "kafka-kit.rules.yml"
    assert path.read_text() == files["kafka-kit.rules.yml"]
    return path


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    return render_rules(tmp_path_factory.mktemp("rules"))


def _alerts(path: Path) -> dict[str, dict]:
    doc = yaml.safe_load(path.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_rendered_rules(rules):
    result = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(rules, tmp_path):
    shutil.copy(rules, tmp_path / "kafka-kit.rules.yml")
    shutil.copy(HERE / "rules_test.yml", tmp_path / "rules_test.yml")
    result = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "rules_test.yml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_fires_in_one_case_and_stays_silent_in_another(rules):
    tests = yaml.safe_load((HERE / "rules_test.yml").read_text())["tests"]
    fires, silent = set(), set()
    for case in tests:
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else silent).add(t["alertname"])
    alerts = set(_alerts(rules))
    assert alerts - fires == set(), "alerts without a test where they fire"
    assert alerts - silent == set(), "alerts without a test where they stay silent"
    assert (fires | silent) - alerts == set(), "tests of alerts that do not exist"


def test_durations_and_thresholds_come_from_the_inventory(tmp_path):
    path = render_rules(tmp_path, extra="      monitoring_alert_for: {node_down: 10s, under_replicated: 20s}\n"
                                         "      monitoring_alert_thresholds: {idle_ratio: 0.2}\n")
    alerts = _alerts(path)
    assert alerts["KafkaBrokerDown"]["for"] == "10s"
    assert alerts["KafkaUnderReplicatedPartitions"]["for"] == "20s"
    assert alerts["KafkaUnderMinIsrPartitions"]["for"] == "1m"  # default kept for the others
    assert alerts["KafkaRequestHandlerIdleLow"]["expr"].endswith("< 0.2")
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_alert_key_is_refused_naming_it(tmp_path):
    with pytest.raises(AssertionError) as err:
        render_rules(tmp_path, extra="      monitoring_alert_for: {broker_dwn: 10s}\n")
    assert "broker_dwn" in str(err.value) and "monitoring_alert_for" in str(err.value)
