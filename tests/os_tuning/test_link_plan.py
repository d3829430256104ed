"""Which hosts playbooks/os_tuning.yml tunes one at a time (roles/os_tuning/tasks/link_plan.yml):
the plan items that reset a NIC's link, on the recorded 2 x 12-core hosts."""
import os
import sys

from conftest import ROLE, default_config
from os_tuning_plan import build_plan

sys.path.insert(0, os.path.join(ROLE, "filter_plugins"))
from os_tuning_link import FilterModule, os_tuning_link_changes  # noqa: E402


def test_ring_and_channel_changes_reset_the_link(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config())
    changes = os_tuning_link_changes(plan)
    assert sorted(c.split()[0] for c in changes) == ["channels", "rings"], changes
    assert any(c.startswith("channels eth0: ") and c.endswith("-> combined 12") for c in changes), changes


def test_sysctl_and_irq_changes_alone_reset_nothing(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config(nic_rings=False, nic_channels=False))
    assert any(i["state"] == "change" for i in plan)       # the host still has work to do
    assert os_tuning_link_changes(plan) == []


def test_a_tuned_or_blocked_nic_resets_nothing(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config())
    link = [i for i in plan if i["kind"] in ("rings", "channels")]
    assert link
    for state in ("ok", "blocked", "skip"):
        assert os_tuning_link_changes([dict(i, state=state) for i in link]) == []
    assert os_tuning_link_changes(None) == [] and os_tuning_link_changes([]) == []


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["os_tuning_link_changes"] is os_tuning_link_changes
