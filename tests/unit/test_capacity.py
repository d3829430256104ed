"""The capacity model (pyclient.capacity, docs/capacity.md): each bound against a hand
calculation, the binding one, fan-out, page cache, the inventory reader and the CLI."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from pyclient.capacity import GB, MB, Cluster, Workload, bounds, from_inventory, main, scale_lab

REPO = Path(__file__).resolve().parents[2]
LINE = Cluster(nic_efficiency=1.0)  # the article's cluster at the raw line rate


def test_article_cluster_network_bound_is_about_4_gb_s() -> None:
    b = bounds(LINE, Workload())
    # 10 NICs x 1.25 GB/s in, every byte arrives 3 times (producer + 2 replica fetches)
    assert b.network_in == pytest.approx(10 * 1.25e9 / 3)
    assert b.network_in / GB == pytest.approx(4.17, abs=0.01)
    assert b.network_out == pytest.approx(10 * 1.25e9 / 3)  # 2 replica copies + 1 consumer
    assert b.disk == pytest.approx(10 * 6 * 200e6 / 3)      # 4.0 GB/s: binding here
    assert b.binding == "disk" and b.limit == b.disk
    assert b.limit / (15 * MB) > 250  # the article's "after" is far below the bound


def test_fanout_moves_the_limit_to_nic_out() -> None:
    prev = None
    for f in range(1, 6):
        b = bounds(LINE, Workload(fanout=f))
        assert b.network_out == pytest.approx(10 * 1.25e9 / (2 + f))
        if prev is not None:
            assert b.network_out < prev
        prev = b.network_out
    assert bounds(LINE, Workload(fanout=2)).binding == "network out"
    assert any("training jobs" in n for n in bounds(LINE, Workload(fanout=3)).notes)


def test_cache_misses_load_the_disks() -> None:
    b = bounds(LINE, Workload(cache_hit=0.0))
    assert b.disk == pytest.approx(10 * 6 * 200e6 / 4)  # 3 replica writes + 1 read from disk
    assert b.binding == "disk"


def test_partitions_producers_and_page_cache_for_the_target() -> None:
    w = Workload(partitions=50, partition_mb_s=50, client_mb_s=100, consumer_lag_s=600)
    b = bounds(LINE, w, target_share=0.7)
    assert b.target == pytest.approx(0.7 * b.limit)
    assert b.partitions_needed == -(-int(b.target) // int(50e6))  # ceil
    assert b.partitions_needed == 56 and b.producers_needed == 28
    assert any("declare >= 56" in n for n in b.notes)
    # each broker writes RF x P / B into 116 GB of cache (128 - 8 heap - 4 OS)
    assert b.page_cache_s == pytest.approx(116e9 / (3 * b.target / 10))
    assert not b.lag_served_from_cache and any("read from disk" in n for n in b.notes)
    assert all("declare" not in n for n in bounds(LINE, replace(w, partitions=64)).notes)


def test_random_clusters_limit_is_the_smallest_bound_and_scales_with_brokers() -> None:
    rnd = random.Random(7)
    for _ in range(500):
        rf = rnd.randint(1, 5)
        c = Cluster(brokers=rnd.randint(rf, 40), cores=rnd.randint(2, 96),
                    nic_gbit=rnd.choice([1, 10, 25, 100]), disks=rnd.randint(1, 12),
                    disk_mb_s=rnd.uniform(50, 3000), cpu_mb_s_per_core=rnd.uniform(10, 500))
        w = Workload(replication_factor=rf, fanout=rnd.randint(0, 6),
                     cache_hit=rnd.random())
        if rf == 1 and w.fanout == 0:
            continue
        b = bounds(c, w, target_share=rnd.uniform(0.1, 1.0))
        assert b.limit == min(b.network_in, b.network_out, b.disk, b.cpu)
        assert 0 < b.target <= b.limit
        double = bounds(replace(c, brokers=2 * c.brokers), w)
        assert double.limit == pytest.approx(2 * b.limit)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="replication factor 3 needs at least that many brokers"):
        bounds(Cluster(brokers=2), Workload())
    with pytest.raises(ValueError, match="cache_hit"):
        bounds(Cluster(), Workload(cache_hit=1.5))


def test_scale_lab_measurement() -> None:
    # 10 MB/s of RF 3 producer traffic means 3 MB in + 2 MB out per produced MB: 50 MB/s of
    # broker traffic on 2 cores = 25 MB/s per core.
    assert scale_lab(10, 2, 3, 0) == pytest.approx(25)


def test_prod_inventory_is_read() -> None:
    c, w = from_inventory(REPO / "inventories" / "prod")
    assert (c.brokers, c.disks, c.heap_gb) == (10, 6, 8.0)
    assert (w.replication_factor, w.partitions) == (3, 50)


def test_inventory_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no inventory there"):
        from_inventory(tmp_path)
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    kafka_controller:\n      hosts: {a: {}}\n")
    with pytest.raises(ValueError, match="no hosts in group kafka_broker"):
        from_inventory(tmp_path)


def test_cli_prints_the_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--inventory", str(REPO / "inventories" / "prod"), "--fanout", "3"]) == 0
    out = capsys.readouterr().out
    assert "10 brokers x 24 cores" in out and "| network out **(binding)** |" in out
    assert "partitions needed" in out
    assert main(["--inventory", "/nonexistent"]) == 2
    assert "no inventory there" in capsys.readouterr().err
