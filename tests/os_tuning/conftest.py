"""Shared fixtures of the os_tuning tests: the planner on its own (no Ansible needed)."""
import os
import shutil
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "os_tuning")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
sys.path.insert(0, os.path.join(ROLE, "module_utils"))


def role_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def default_config(**overrides):
    """The config the role renders from its defaults (vars/main.yml __os_tuning_config)."""
    d = role_defaults()
    sysctl = dict(d["os_tuning_sysctl_network"], **d["os_tuning_sysctl_memory"])
    sysctl["vm.max_map_count"] = max(262144, d["os_tuning_partitions_per_broker"]
                                     * d["os_tuning_segments_per_partition"] * 2 + 65530)
    config = {
        "strict": False, "sysctl": {k: str(v) for k, v in sysctl.items()},
        "sysctl_raise_only": d["os_tuning_sysctl_raise_only"], "thp": d["os_tuning_thp"],
        "cpu_governor": d["os_tuning_cpu_governor"], "io_scheduler": d["os_tuning_io_scheduler"],
        "data_mounts": ["/var/lib/kafka/data", "/var/lib/kafka/data2"], "data_devices": [],
        "noatime": True, "noatime_remount": False, "nic": True, "nics": [],
        "nic_rings": True, "nic_channels": True, "irq_affinity": True, "rps_xps": True,
        "rps_sock_flow_entries": d["os_tuning_rps_sock_flow_entries"], "irqbalance_ban": False,
    }
    config.update(overrides)
    return config


@pytest.fixture
def machine():
    """Host reading a recorded machine tree (read-only use)."""
    from os_tuning_sysfs import Host

    def make(name):
        return Host(os.path.join(FIXTURES, name))
    return make


class FakeRunner:
    """Records commands instead of running them (ethtool, mount)."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return 0, "", ""


@pytest.fixture
def writable_machine(tmp_path):
    """A private copy of a machine tree to apply to, with a recording runner."""
    from os_tuning_sysfs import Host

    def make(name, host_class=Host):
        root = tmp_path / name
        shutil.copytree(os.path.join(FIXTURES, name), root)
        return host_class(str(root), runner=FakeRunner())
    return make
