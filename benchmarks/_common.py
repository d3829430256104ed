"""Shared pieces of the benchmarks: corpus generation, child-process runs with peak RSS,
the table and the PNG chart."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parser(doc: str | None, records: int) -> argparse.ArgumentParser:
    """The options every benchmark has: the cluster, the corpus size, the topic shape."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-servers", "-b", required=True)
    ap.add_argument("--records", type=int, default=records)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--replication-factor", type=int, default=3)
    ap.add_argument("--command-config", default=None, metavar="FILE",
                    help="Kafka client properties file for every client of the run (a secure "
                         "cluster: the lab writes one per user); also $KAFKA_KIT_CLIENT_CONFIG")
    return ap


def use_command_config(a: argparse.Namespace) -> dict[str, Any]:
    """Make ``--command-config`` the client properties file of this process and of every
    child (``$KAFKA_KIT_CLIENT_CONFIG``, which every pyclient client reads); return the admin
    client's settings (the file's keys and the bootstrap servers)."""
    from pyclient.config import CLIENT_CONFIG_ENV, client_properties

    if a.command_config:
        os.environ[CLIENT_CONFIG_ENV] = str(Path(a.command_config).resolve())
    return {**client_properties(None), "bootstrap.servers": a.bootstrap_servers}


def make_corpus(path: Path, records: int, size: int, jsonl: bool = False, seed: int = 7) -> Path:
    """Text-like lines of exactly ``size`` bytes (JSONL: the ``text`` field), compressible like
    a real corpus (random words from a fixed vocabulary), written once and reused."""
    if path.exists() and path.stat().st_size > 0:
        return path
    rnd = random.Random(seed)
    vocab = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 10)))
             for _ in range(20000)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i in range(records):
            words, n = [], 0
            while n < size:
                w = rnd.choice(vocab)
                words.append(w)
                n += len(w) + 1
            text = " ".join(words)[: size - 12]
            text = f"{i:010d} {text}"
            f.write((json.dumps({"text": text}) if jsonl else text) + "\n")
    tmp.rename(path)
    return path


def run_proc(args: list[str], timeout: float = 1800,
             env: dict[str, str] | None = None) -> tuple[str, str, Any, float]:
    """Run ``args``, reaping the child with wait4() so that its own CPU time is known;
    return (stdout, stderr, usage, wall seconds); ``usage`` has ``ru_utime``, ``ru_stime``
    and ``ru_maxrss`` (KiB). Raises on a non-zero exit.

    ``ru_maxrss`` is the child's VmHWM read from /proc every 20 ms, not wait4's: Linux
    carries the RSS of the forked parent (this script, holding an ingested corpus) into the
    child's maxrss, which made every contender report the parent's size."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or {**os.environ, "PYTHONPATH": str(REPO)})
    out_b: list[str] = []
    err_b: list[str] = []

    def pump(src: Any, dst: list[str]) -> None:
        dst.append(src.read())

    ts = [threading.Thread(target=pump, args=(proc.stdout, out_b)),
          threading.Thread(target=pump, args=(proc.stderr, err_b))]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    hwm = 0
    while True:
        hwm = max(hwm, _vm_hwm_kib(proc.pid))
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
    for t in ts:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = "".join(out_b), "".join(err_b)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed ({proc.returncode}): {err[-3000:]}")
    usage = SimpleNamespace(ru_utime=ru.ru_utime, ru_stime=ru.ru_stime, ru_maxrss=hwm)
    return out, err, usage, time.perf_counter() - t0


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of ``pid`` so far (KiB), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(args: list[str], timeout: float = 1800) -> tuple[dict[str, Any], Any, float]:
    """Run a contender; return (its JSON on the last stdout line, its rusage, wall seconds).
    ``ru_maxrss`` is its peak RSS in KiB, ``ru_utime + ru_stime`` its CPU seconds."""
    out, err, ru, wall = run_proc(args, timeout)
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(args[:4])} printed no result: {err[-3000:]}")
    return json.loads(lines[-1]), ru, wall


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    """Plain-text table; ``cols`` are (key, header, format)."""
    head = [h for _, h, _ in cols]
    body = [[("-" if r.get(k) is None else format(r[k], f)) for k, _, f in cols] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda xs: "  ".join(x.rjust(w) if i else x.ljust(w)  # noqa: E731
                                for i, (x, w) in enumerate(zip(xs, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def chart(path: Path, title: str, rows: list[dict[str, Any]], metrics: list[tuple[str, str]]) -> bool:
    """One horizontal bar panel per metric; returns False when matplotlib is missing
    (``pip install 'pyclient[bench]'``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [r["name"] for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.6 * len(rows) + 1.6))
    for ax, (key, label) in zip(axes if len(metrics) > 1 else [axes], metrics):
        vals = [float(r.get(key) or 0) for r in rows]
        ax.barh(names, vals, color="#4c72b0")
        ax.set_title(label, fontsize=10)
        ax.invert_yaxis()
        for i, (v, r) in enumerate(zip(vals, rows)):
            text = "not measured" if r.get(key) is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
            ax.text(v, i, f" {text}", va="center", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def python() -> str:
    return sys.executable


def save_results(out: Path, prefix: str, args: dict[str, Any], rows: list[dict[str, Any]],
                 title: str, metrics: list[tuple[str, str]]) -> None:
    """Write <prefix>-<time>.json (arguments and rows) and, with matplotlib, a PNG chart."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{prefix}-{stamp}.json").write_text(json.dumps({"args": args, "rows": rows}, indent=2,
                                                           default=str))
    png = out / f"{prefix}-{stamp}.png"
    if chart(png, title, rows, metrics):
        print(f"chart: {png}")
    else:
        print("chart skipped: pip install 'pyclient[bench]' (matplotlib)")
