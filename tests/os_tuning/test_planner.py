"""The plan on recorded 2 x 12-core hosts: ixgbe, i40e, mlx5 naming; NUMA -1; more and fewer
queues than cores; sysctl, THP, governor, scheduler, noatime."""
from conftest import default_config
from os_tuning_plan import build_plan, effective_sysctl
from os_tuning_sysfs import Nic, parse_interrupts


def by(plan, kind):
    return [i for i in plan if i["kind"] == kind]


def irq_cpus(plan):
    """{irq: desired cpu} of the queue IRQs that are planned (not skipped)."""
    return {int(i["target"].split()[0]): int(i["desired"]) for i in by(plan, "irq")
            if i["state"] != "skip"}


def test_ixgbe_queue_irqs_exclude_the_link_irq(machine):
    host = machine("2x12-ht-ixgbe")
    nic = Nic(host, "eth0", parse_interrupts(host.read("proc/interrupts")))
    assert nic.pci == "0000:3b:00.0" and nic.numa_node == 0
    assert [q for q, _i, _l in nic.queue_irqs] == list(range(48))
    assert 168 not in [i for _q, i, _l in nic.queue_irqs]        # "eth0": link/other IRQ


def test_ixgbe_more_queues_than_cores_is_cut_to_the_local_physical_cores(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config())
    (channels,) = by(plan, "channels")
    assert channels["desired"] == "combined 12" and channels["state"] == "change"
    assert channels["action"]["run"] == ["ethtool", "-L", "eth0", "combined", "12"]
    assert irq_cpus(plan) == {120 + q: q for q in range(12)}      # one per node-0 core
    removed = [i for i in by(plan, "irq") if i["state"] == "skip"]
    assert len(removed) == 36 and "ethtool -L" in removed[0]["reason"]
    (rings,) = by(plan, "rings")
    assert rings["action"]["run"] == ["ethtool", "-G", "eth0", "rx", "4096", "tx", "4096"]
    assert not by(plan, "rps")                                    # enough queues: no RPS


def test_queues_beyond_physical_cores_go_to_remote_cores_then_siblings(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config(nic_channels=False))
    cpus = irq_cpus(plan)
    assert [cpus[120 + q] for q in range(48)] == list(range(48))
    assert len(set(cpus.values())) == 48                          # no CPU gets two queues


def test_i40e_on_node_1_uses_node_1_cores_and_skips_misc(machine):
    plan = build_plan(machine("2x12-noht-i40e"), default_config())
    assert by(plan, "channels")[0]["desired"] == "combined 12"
    assert irq_cpus(plan) == {81 + q: 12 + q for q in range(12)}
    assert 80 not in {int(i["target"].split()[0]) for i in by(plan, "irq")}   # misc vector


def test_mlx5_matched_by_pci_address_and_numa_minus_one(machine):
    plan = build_plan(machine("2x12-ht-mlx5-numa-1"), default_config())
    assert [c["desired"] for c in by(plan, "channels")] == ["combined 24", "combined 24"]
    cpus = irq_cpus(plan)
    assert {irq: cpus[irq] for irq in range(201, 225)} == {201 + q: q for q in range(24)}
    assert {irq: cpus[irq] for irq in range(261, 285)} == {261 + q: q for q in range(24)}
    targets = " ".join(i["target"] for i in by(plan, "irq"))
    assert "async" not in targets
    port0 = [i["target"] for i in by(plan, "irq") if "0000:5e:00.0" in i["target"]]
    assert len(port0) == 48 and all(int(t.split()[0]) < 260 for t in port0)


def test_fewer_queues_than_cores_adds_rps_rfs_xps(machine):
    plan = build_plan(machine("2x12-ht-ice-8q"), default_config())
    assert by(plan, "channels")[0]["state"] == "ok"               # driver limit 8 < 12 cores
    assert irq_cpus(plan) == {151 + q: q for q in range(8)}
    rps = by(plan, "rps")
    assert len(rps) == 8 and {i["desired"] for i in rps} == {"0000000f,ff000fff"}
    assert {i["desired"] for i in by(plan, "rfs")} == {"4096"}   # 32768 / 8 queues
    masks = [int(i["desired"].replace(",", ""), 16) for i in by(plan, "xps")]
    covered = 0
    for mask in masks:
        assert not covered & mask                                 # each CPU on one tx queue
        covered |= mask
    assert covered == 0x0000000fff000fff
    flow = [i for i in by(plan, "sysctl") if i["target"] == "net.core.rps_sock_flow_entries"]
    assert flow[0]["desired"] == "32768"


def test_raise_only_keeps_larger_kernel_values(machine):
    sysctl = effective_sysctl(machine("2x12-ht-ixgbe"), default_config())
    assert sysctl["fs.file-max"] == "9223372036854775807"         # systemd's LONG_MAX kept
    assert sysctl["net.ipv4.tcp_rmem"] == "4096 131072 16777216"  # element-wise
    assert sysctl["vm.swappiness"] == "1"                         # not raise-only: lowered
    assert sysctl["vm.max_map_count"] == "262144"


def test_thp_governor_scheduler_noatime(machine):
    plan = build_plan(machine("2x12-ht-ixgbe"), default_config())
    assert {(i["target"], i["current"], i["desired"]) for i in by(plan, "thp")} == {
        ("enabled", "always", "never"), ("defrag", "madvise", "never")}
    (gov,) = by(plan, "governor")
    assert gov["current"] == "powersave:0-47" and gov["desired"] == "performance:0-47"
    sched = {i["target"]: (i["state"], i["desired"]) for i in by(plan, "scheduler")}
    assert sched == {"nvme0n1": ("ok", "none"), "sdb": ("change", "mq-deadline")}
    noatime = {i["target"]: i["state"] for i in by(plan, "noatime")}
    assert noatime == {"/var/lib/kafka/data": "skip", "/var/lib/kafka/data2": "ok"}
    remount = build_plan(machine("2x12-ht-ixgbe"), default_config(noatime_remount=True))
    assert [i["state"] for i in by(remount, "noatime")] == ["change", "ok"]


def test_parts_can_be_turned_off(machine):
    config = default_config(sysctl={}, thp="", cpu_governor="", io_scheduler={}, noatime=False,
                            nic=False)
    assert build_plan(machine("2x12-ht-ixgbe"), config) == []


def test_no_governor_where_cpufreq_is_absent(machine):
    assert not by(build_plan(machine("2x12-noht-i40e"), default_config()), "governor")
