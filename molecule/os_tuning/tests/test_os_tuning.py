"""Outcomes of the os_tuning role on the lab hosts (read-only /proc/sys in containers)."""
import json

import pytest


def test_sysctl_file_has_the_kafka_values(host):
    conf = host.file("/etc/sysctl.d/60-kafka-kit.conf")
    assert conf.mode == 0o644
    values = dict(line.split(" = ", 1) for line in conf.content_string.splitlines()
                  if line and not line.startswith("#"))
    assert values["vm.swappiness"] == "1"
    assert values["net.ipv4.tcp_slow_start_after_idle"] == "0"
    assert int(values["vm.max_map_count"]) >= 262144
    assert int(values["net.core.rmem_max"]) >= 16777216
    # raise-only: never below what the kernel had
    assert int(values["fs.file-max"]) >= int(host.file("/proc/sys/fs/file-max").content_string)
    expected_dirty = "40" if host.backend.get_hostname() == "kk-ostuning-h2" else "60"
    assert values["vm.dirty_ratio"] == expected_dirty


def test_limits_for_pam_sessions(host):
    conf = host.file("/etc/security/limits.d/90-kafka-kit.conf").content_string
    nofile = "16384" if host.backend.get_hostname() == "kk-ostuning-h2" else "128000"
    assert "kafka hard nofile %s" % nofile in conf
    assert "kafka soft nofile %s" % nofile in conf


def test_unit_limits_drop_in_is_loaded(host):
    shown = host.check_output("systemctl show kafka.service -p LimitNOFILE -p DropInPaths")
    nofile = "16384" if host.backend.get_hostname() == "kk-ostuning-h2" else "128000"
    assert "LimitNOFILE=%s" % nofile in shown
    assert "60-kafka-kit-limits.conf" in shown


def test_started_unit_gets_the_limits(host):
    """h2's limits fit the container's hard limit, so the stand-in broker really gets them."""
    if host.backend.get_hostname() != "kk-ostuning-h2":
        pytest.skip("h1 keeps the production 128000, above this container's hard limit 20000")
    host.run_expect([0], "systemctl restart kafka.service")
    pid = host.check_output("systemctl show kafka.service -p MainPID --value")
    limits = host.file("/proc/%s/limits" % pid).content_string
    assert any(line.startswith("Max open files") and line.split()[3:5] == ["16384", "16384"]
               for line in limits.splitlines())


def test_boot_unit_is_enabled_and_runs(host):
    assert host.service("kafka-kit-tune.service").is_enabled
    result = host.run("systemctl start kafka-kit-tune.service")
    assert result.rc == 0, result.stderr  # not strict: blocked items do not fail the boot


def test_tool_reports_drift_without_failing(host):
    report = host.run("/usr/local/sbin/kafka-kit-tune report")
    assert report.rc == 0
    assert "STATE" in report.stdout and "summary:" in report.stdout
    # /proc/sys is read-only here: the sysctls are reported blocked, not applied
    assert any(line.startswith("blocked") and "sysctl" in line and "vm.swappiness" in line
               for line in report.stdout.splitlines())
    plan = json.loads(host.check_output("/usr/local/sbin/kafka-kit-tune plan --json"))
    assert {i["kind"] for i in plan} >= {"sysctl"}


def test_strict_apply_fails_where_the_host_forbids(host):
    result = host.run("/usr/local/sbin/kafka-kit-tune apply --strict")
    assert result.rc == 2
    assert "blocked" in result.stdout


def test_irqbalance_ban_drop_in(host):
    drop_in = host.file("/etc/systemd/system/irqbalance.service.d/60-kafka-kit-ban.conf")
    if host.backend.get_hostname() == "kk-ostuning-h1":
        assert "EnvironmentFile=-/run/kafka-kit/irqbalance.env" in drop_in.content_string
    else:
        assert not drop_in.exists


def test_config_is_valid_json(host):
    config = json.loads(host.file("/etc/kafka-kit/os-tuning.json").content_string)
    assert config["strict"] is False
    assert config["thp"] == "never"
