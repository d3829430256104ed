"""zookeeper_first_of: the member address chain the role renders (roles/zookeeper/vars)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "zookeeper" / "filter_plugins"))

from zookeeper_hosts import zookeeper_first_of  # noqa: E402

CHAIN = ["zookeeper_address_fact", "zookeeper_client_address", "ansible_facts.default_ipv4.address",
         "ansible_host", "inventory_hostname"]


def test_fact_of_this_run_wins():
    hv = {"zookeeper_address_fact": "10.0.0.1", "ansible_facts": {"default_ipv4": {"address": "10.0.0.9"}},
          "inventory_hostname": "zk1"}
    assert zookeeper_first_of(hv, CHAIN) == "10.0.0.1"


def test_member_outside_a_limit_uses_its_gathered_facts_like_the_role_default():
    hv = {"ansible_facts": {"default_ipv4": {"address": "10.0.0.9"}}, "ansible_host": "zk1.mgmt",
          "inventory_hostname": "zk1"}
    assert zookeeper_first_of(hv, CHAIN) == "10.0.0.9"


def test_inventory_address_then_host_then_name():
    assert zookeeper_first_of({"zookeeper_client_address": "192.0.2.5", "inventory_hostname": "z"}, CHAIN) == "192.0.2.5"
    assert zookeeper_first_of({"ansible_facts": {}, "ansible_host": "z.example", "inventory_hostname": "z"}, CHAIN) == "z.example"
    assert zookeeper_first_of({"ansible_facts": {"default_ipv4": None}, "inventory_hostname": "z"}, CHAIN) == "z"
    assert zookeeper_first_of({}, CHAIN) == ""
