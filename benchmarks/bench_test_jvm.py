"""The Molecule scenarios' test JVM against the role's default, side by side (README, "Tests").

Starts two single-node Kafka brokers from the kit's archive (tests/pyclient/_broker.py), one with
the role's default kafka_jvm_performance_opts (G1, C2) and one with the scenarios' test flags
(C1 only, the serial GC), one after the other, then lets both idle together. Prints, for each,
the seconds until it accepted clients, the CPU seconds its start took and the CPU seconds of a
minute of idling: the scenarios run up to 13 such JVMs on a 2-core build machine.

    .venv/bin/python benchmarks/bench_test_jvm.py [--idle 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "pyclient"))
import _broker  # noqa: E402
import yaml  # noqa: E402

# The flags as the project sets them: the role's default and the default scenario's test JVM.
ROLE_DEFAULT = yaml.safe_load((REPO / "roles/kafka/defaults/main.yml").read_text())["kafka_jvm_performance_opts"].split()
TEST_JVM = (yaml.safe_load((REPO / "molecule/default/molecule.yml").read_text())
            ["provisioner"]["inventory"]["group_vars"]["all"]["kafka_jvm_performance_opts"].split())


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=60.0, help="seconds both brokers idle together")
    ap.add_argument("--heap", default="384m", help="the scenarios' kafka_heap_size")
    args = ap.parse_args()
    popen = subprocess.Popen
    rows, brokers = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-test-jvm-") as tmp:
        try:
            for name, flags in (("role default (G1, C2)", ROLE_DEFAULT), ("test JVM (C1, serial)", TEST_JVM)):
                def with_flags(argv, *a, _flags=flags, **k):
                    if "kafka.Kafka" in argv:
                        argv = [argv[0], *_flags, *argv[1:]]
                    return popen(argv, *a, **k)
                subprocess.Popen = with_flags
                work = Path(tmp) / str(len(rows))
                work.mkdir()
                t0 = time.monotonic()
                b = _broker.start_broker(work, heap=args.heap)
                brokers[name] = b
                rows[name] = {"ready": time.monotonic() - t0, "start_cpu": _cpu_s(b.proc.pid)}
            subprocess.Popen = popen
            before = {n: _cpu_s(b.proc.pid) for n, b in brokers.items()}
            time.sleep(args.idle)
            for n, b in brokers.items():
                rows[n]["idle_cpu"] = (_cpu_s(b.proc.pid) - before[n]) * 60.0 / args.idle
        finally:
            subprocess.Popen = popen
            for b in brokers.values():
                b.stop()
    print(f"{'JVM':<24}{'ready s':>9}{'start CPU s':>13}{'idle CPU s/min':>16}")
    for n, r in rows.items():
        print(f"{n:<24}{r['ready']:>9.1f}{r['start_cpu']:>13.2f}{r['idle_cpu']:>16.2f}")
    (a, b) = rows.values()
    print(f"{'ratio test/default':<24}{b['ready'] / a['ready']:>9.2f}{b['start_cpu'] / a['start_cpu']:>13.2f}"
          f"{b['idle_cpu'] / a['idle_cpu']:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
