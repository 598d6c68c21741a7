"""Who else used the CPU while a case was measured (Linux `/proc`; standard library only).

A load average counts runnable tasks, not CPU taken from a measurement: on a machine where other
work runs at a lower priority (nice, a low-weight cgroup) the load average can read 30 while the
measurement keeps both cores, and a single busy loop at the same priority reads barely +1 while
it takes half the machine. What matters for a latency is CPU time that other processes actually
got while the case ran, and, in a VM, the time the hypervisor gave to other guests (steal).

    before = cpu_snapshot()          # in the measuring process, just outside the timed interval
    ... measure ...
    usage = cpu_usage(before, cpu_snapshot())
    record = row_record(usage)       # what a result row stores (pooled rounds: add_usage first)
    # usage: {"wall_s", "machine_s" (capacity: wall x CPUs), "busy_s", "self_s", "other_s", "steal_s",
    #  "other_share", "steal_share"}  or None where /proc/stat is not there

`other_s` is the CPU time of every process but this one (the benchmark's parent is idle, waiting
for the round's reply, so whatever it does counts as other too), `other_share` its part of the
machine's capacity in that interval. The kernel accounts in clock ticks (usually 10 ms), so a
single 0.25 s round is coarse; sum the rounds of a case (`add_usage`) before reading a share.
"""
from __future__ import annotations

import os
import time

_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _proc_stat() -> dict | None:
    try:
        with open("/proc/stat") as f:
            line = f.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != "cpu":
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    vals = [int(v) / tick for v in parts[1:1 + len(_FIELDS)]]
    vals += [0.0] * (len(_FIELDS) - len(vals))
    return dict(zip(_FIELDS, vals))


def cpu_snapshot() -> dict | None:
    """The machine's CPU time counters and this process's own CPU time (all its threads), now."""
    stat = _proc_stat()
    if stat is None:
        return None
    t = os.times()
    return {"stat": stat, "self_s": t.user + t.system, "wall": time.monotonic()}


def cpu_usage(before: dict | None, after: dict | None) -> dict | None:
    """CPU time used between two snapshots: by this process, by every other one, stolen by the
    hypervisor; None when either snapshot is missing."""
    if not before or not after:
        return None
    d = {k: after["stat"][k] - before["stat"][k] for k in _FIELDS}
    machine = sum(d.values())  # every CPU's time in the interval, busy or not
    busy = machine - d["idle"] - d["iowait"] - d["steal"]
    own = max(0.0, after["self_s"] - before["self_s"])
    usage = {"wall_s": after["wall"] - before["wall"], "machine_s": machine, "busy_s": busy, "self_s": own,
             "other_s": max(0.0, busy - own), "steal_s": max(0.0, d["steal"])}
    return _shares(usage)


def add_usage(total: dict | None, usage: dict | None) -> dict | None:
    """Sum of two usages (either may be None)."""
    if usage is None:
        return total
    if total is None:
        return dict(usage)
    out = {k: total.get(k, 0.0) + usage.get(k, 0.0) for k in ("wall_s", "machine_s", "busy_s", "self_s",
                                                               "other_s", "steal_s")}
    return _shares(out)


def _shares(u: dict) -> dict:
    m = u["machine_s"]
    u["other_share"] = (u["other_s"] / m) if m > 0 else None
    u["steal_share"] = (u["steal_s"] / m) if m > 0 else None
    return u


def row_record(usage: dict | None) -> dict | None:
    """A case's pooled usage as a result row records it (`cpu_contention`); None off Linux."""
    if not usage or not usage.get("machine_s"):
        return None

    def r(v):
        return None if v is None else round(float(v), 4)

    return {"other_share": r(usage["other_share"]), "steal_share": r(usage["steal_share"]),
            "other_cpu_s": r(usage["other_s"]), "own_cpu_s": r(usage["self_s"]),
            "machine_cpu_s": r(usage["machine_s"]), "source": "/proc/stat and the worker's os.times()"}
