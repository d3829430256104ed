"""Applying to a private copy of a recorded host: writes, commands, managed IRQs, read-only
hosts, check mode, the CLI."""
import errno
import hashlib
import json
import os
import subprocess
import sys

from conftest import ROLE, FIXTURES, default_config
from os_tuning_apply import add_noatime, apply_plan, diff_text, report
from os_tuning_plan import build_plan
from os_tuning_sysfs import Host

FILE_KINDS = {"sysctl", "irq", "thp", "governor", "scheduler", "rps", "rfs", "xps"}


def tree_digest(root):
    digest = hashlib.sha256()
    for base, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(path.encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def test_apply_writes_then_second_plan_has_no_file_drift(writable_machine):
    host = writable_machine("2x12-ht-ice-8q")
    result = apply_plan(host, default_config())
    assert result["changed"] and not result["not_applied"]
    assert host.read("proc/sys/vm/swappiness") == "1"
    assert host.read("proc/irq/151/smp_affinity_list") == "0"
    assert host.read("sys/class/net/eth1/queues/rx-3/rps_cpus") == "0000000f,ff000fff"
    assert ["ethtool", "-G", "eth1", "rx", "8160", "tx", "8160"] in host.runner.calls
    again = build_plan(host, default_config())
    assert [i["id"] for i in again if i["kind"] in FILE_KINDS and i["state"] != "ok"] == []


def test_channels_first_then_irqs_are_planned_again(writable_machine):
    host = writable_machine("2x12-ht-ixgbe")
    apply_plan(host, default_config())
    calls = host.runner.calls
    assert calls.index(["ethtool", "-G", "eth0", "rx", "4096", "tx", "4096"]) < 2
    assert ["ethtool", "-L", "eth0", "combined", "12"] in calls
    assert host.read("proc/irq/131/smp_affinity_list") == "11"


class ManagedIrqHost(Host):
    """IRQ 121 is kernel-managed: its affinity write fails with EIO, as on real hardware."""

    def write(self, rel, value):
        if rel == "proc/irq/121/smp_affinity_list":
            raise OSError(errno.EIO, "Input/output error")
        super().write(rel, value)


def test_managed_irq_is_reported_and_skipped_not_failed(writable_machine):
    host = writable_machine("2x12-ht-ixgbe", ManagedIrqHost)
    result = apply_plan(host, default_config())
    assert result["refused_irqs"] == [121]
    (refused,) = [i for i in result["not_applied"] if i["kind"] == "irq"]
    assert refused["state"] == "skip" and "kernel-managed" in refused["reason"]
    state = json.loads(host.read("run/kafka-kit/os-tuning-state.json"))
    assert state["refused_irqs"] == [121]
    again = {i["target"].split()[0]: i["state"] for i in build_plan(host, default_config())
             if i["kind"] == "irq"}
    assert again["121"] == "skip" and again["120"] == "ok"


class ReadOnlyHost(Host):
    """A container: /proc/sys, /proc/irq and /sys mounted read-only."""

    def writable(self, rel):
        return not rel.startswith(("proc/sys", "proc/irq", "sys/"))


def test_read_only_host_reports_blocked_and_writes_nothing(writable_machine):
    host = writable_machine("2x12-ht-ixgbe", ReadOnlyHost)
    before = tree_digest(host.root)
    result = apply_plan(host, default_config(nic=False))
    assert not result["changed"]
    assert {i["kind"] for i in result["not_applied"]} == {"sysctl", "thp", "governor", "scheduler"}
    assert all(i["state"] == "blocked" for i in result["not_applied"])
    assert tree_digest(host.root) == before


def test_check_mode_changes_nothing_and_diffs(writable_machine):
    host = writable_machine("2x12-noht-i40e")
    before = tree_digest(host.root)
    result = apply_plan(host, default_config(), check_mode=True)
    assert result["changed"] and host.runner.calls == []
    assert tree_digest(host.root) == before
    diff = diff_text(result["applied"])
    assert "sysctl vm.swappiness = 60\n" in diff["before"]
    assert "sysctl vm.swappiness = 1\n" in diff["after"]


def test_noatime_remount_edits_fstab_and_remounts(writable_machine):
    host = writable_machine("2x12-ht-ixgbe")
    apply_plan(host, default_config(noatime_remount=True, nic=False))
    assert ["mount", "-o", "remount,noatime", "/var/lib/kafka/data"] in host.runner.calls
    assert "UUID=7f3e-data\t/var/lib/kafka/data\text4\tdefaults,noatime\t0\t2" in host.read(
        "etc/fstab")


def test_add_noatime_keeps_other_lines():
    text, found = add_noatime("# c\nUUID=a / ext4 relatime,errors=remount-ro 0 1\n", "/")
    assert found and text == "# c\nUUID=a\t/\text4\terrors=remount-ro,noatime\t0\t1\n"


def test_report_shows_current_and_desired(machine):
    table = report(build_plan(machine("2x12-noht-i40e"), default_config()), drift_only=True)
    header, *rows = table.splitlines()
    assert header.split()[:5] == ["STATE", "KIND", "TARGET", "CURRENT", "DESIRED"]
    assert any(r.split()[:5] == ["change", "sysctl", "vm.swappiness", "60", "1"] for r in rows)
    assert not any(r.startswith("ok ") for r in rows)


def test_cli_report_check_exits_1_on_drift(tmp_path):
    config = tmp_path / "os-tuning.json"
    config.write_text(json.dumps(default_config()))
    tool = os.path.join(ROLE, "files", "kafka-kit-tune")
    root = os.path.join(FIXTURES, "2x12-ht-mlx5-numa-1")
    run = subprocess.run([sys.executable, tool, "report", "--check", "--config", str(config),
                          "--root", root], capture_output=True, text=True, check=False)
    assert run.returncode == 1, run.stderr
    assert "mlx5_comp0@pci:0000:5e:00.0" in run.stdout and "summary:" in run.stdout
    plan = subprocess.run([sys.executable, tool, "plan", "--json", "--config", str(config),
                           "--root", root], capture_output=True, text=True, check=True)
    assert {i["kind"] for i in json.loads(plan.stdout)} >= {"sysctl", "irq", "channels", "rings"}
