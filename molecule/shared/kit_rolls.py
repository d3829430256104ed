"""When each host's service went down and came back, and whether a roll took one host at a time.

Lab hosts are containers of this machine's kernel, so systemd's monotonic timestamps of every
host are on one clock and can be compared. Used by molecule/default/tests/test_rolling.py and
tests/security/_rotation.py (make lab-rotation, make test-default-rotation).
"""

from __future__ import annotations

from typing import Any, Mapping


def service_spans(hosts: Mapping[str, Any], unit: str = "kafka") -> dict[str, tuple[int, int]]:
    """{host: (stop, start)} of ``unit`` on each testinfra host, in microseconds of the monotonic clock."""
    out = {}
    for name, h in hosts.items():
        show = h.check_output(f"systemctl show {unit} -p InactiveEnterTimestampMonotonic "
                              "-p ActiveEnterTimestampMonotonic")
        values = dict(line.split("=", 1) for line in show.splitlines())
        out[name] = (int(values["InactiveEnterTimestampMonotonic"]), int(values["ActiveEnterTimestampMonotonic"]))
    return out


def assert_rolled_one_at_a_time(spans: Mapping[str, tuple[int, int]], since_us: int, step: str = "") -> None:
    """Every host was restarted after ``since_us``, and no two were down at the same moment."""
    prefix = f"{step}: " if step else ""
    for name, (stop_at, start_at) in spans.items():
        assert stop_at > since_us and start_at > stop_at, f"{prefix}{name} was not restarted by the roll"
    ordered = sorted(spans.values())
    for (_, end), (begin, _) in zip(ordered, ordered[1:]):
        assert end < begin, f"{prefix}two hosts were down at once: {dict(spans)}"
