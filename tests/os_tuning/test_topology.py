"""Topology and parsing: the CPU order that queue IRQs follow on 2 x 12-core hosts."""
from os_tuning_sysfs import (Topology, cpumask, format_cpulist, parse_cpulist, parse_cpumask,
                             parse_ethtool, parse_interrupts, parse_scheduler)


def test_ht_host_orders_local_cores_then_remote_then_siblings(machine):
    topo = Topology(machine("2x12-ht-ixgbe"))
    assert len(topo.cpus) == 48
    assert topo.physical_cores() == list(range(24))
    assert topo.physical_cores([1]) == list(range(12, 24))
    order = topo.irq_order(0)
    assert order[:12] == list(range(12))            # node 0 physical cores
    assert order[12:24] == list(range(12, 24))      # node 1 physical cores
    assert order[24:36] == list(range(24, 36))      # node 0 hyperthread siblings
    assert order[36:] == list(range(36, 48))        # node 1 siblings last


def test_ht_siblings_follow_non_contiguous_core_ids(machine):
    topo = Topology(machine("2x12-ht-ixgbe"))
    assert topo.siblings[6] == [6, 30]             # core_id 8 on socket 0
    assert topo.core_of[6] == topo.core_of[30] == (0, 8)
    assert not topo.is_primary(30)


def test_no_ht_host_starts_on_the_nic_node(machine):
    topo = Topology(machine("2x12-noht-i40e"))
    assert topo.irq_order(1) == list(range(12, 24)) + list(range(12))


def test_numa_node_minus_one_treats_all_nodes_as_local(machine):
    topo = Topology(machine("2x12-ht-mlx5-numa-1"))
    assert topo.irq_order(-1)[:24] == list(range(24))
    assert topo.local_cpus(-1) == list(range(48))


def test_cpulist_and_cpumask_round_trip():
    cpus = parse_cpulist("0-11,24-35")
    assert format_cpulist(cpus) == "0-11,24-35"
    assert cpumask(cpus) == "0000000f,ff000fff"
    assert parse_cpumask("0000000f,ff000fff") == sum(1 << c for c in cpus)


def test_parse_interrupts_takes_the_action_name(machine):
    irqs = parse_interrupts(machine("2x12-ht-mlx5-numa-1").read("proc/interrupts"))
    assert irqs[200] == "mlx5_async0@pci:0000:5e:00.0"
    assert irqs[261] == "mlx5_comp0@pci:0000:5e:00.1"


def test_parse_ethtool_skips_na():
    parsed = parse_ethtool("Channel parameters for eth0:\nPre-set maximums:\nRX:\t\tn/a\n"
                           "Combined:\t63\nCurrent hardware settings:\nCombined:\t48\n")
    assert parsed == {"max": {"Combined": 63}, "current": {"Combined": 48}}


def test_parse_scheduler():
    assert parse_scheduler("mq-deadline [bfq] none") == ("bfq", ["mq-deadline", "bfq", "none"])
