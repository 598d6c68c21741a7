"""Warnings about the machine rather than the code: other processes' CPU share and the load
average differed between the two runs."""
from __future__ import annotations

from .runs import typed_rows

CONTENTION_WARN = 0.10  # share of the machine's CPU taken by other processes during the timed rounds


def run_contention(doc: dict) -> float | None:
    """The share of the machine's CPU that other processes took while the run's cases were timed
    (every ok row's `cpu_contention`, pooled); None when the rows do not carry it."""
    other = machine = 0.0
    for row in typed_rows(doc):
        c = row.cpu_contention if row.ok else None
        if c is not None and c.machine_cpu_s is not None and c.machine_cpu_s > 0:
            other += float(c.other_cpu_s or 0.0)
            machine += float(c.machine_cpu_s)
    return other / machine if machine > 0 else None


def _contention_warnings(base_doc: dict, head_doc: dict) -> list[str]:
    """Other processes took a different share of the CPU in the two runs: measured, not guessed
    from the load average (which counts waiting tasks, whatever their priority)."""
    b, h = run_contention(base_doc), run_contention(head_doc)
    if b is None or h is None or max(b, h) <= CONTENTION_WARN or abs(h - b) < CONTENTION_WARN:
        return []
    side = "head" if h > b else "base"
    return [f"other processes took {max(b, h):.0%} of the machine's CPU while {side}'s cases were timed (the other "
            f"run: {min(b, h):.0%}): a busy neighbour, not the code, moved that run; rerun on a quiet machine"]


def _load_warnings(base_run: dict, head_run: dict) -> list[str]:
    """Machine load differs between the runs: a verdict may then reflect the neighbours."""
    def peak(run):
        vals = []
        for k in ("loadavg_before", "loadavg_after"):
            v = run.get(k)
            if isinstance(v, (list, tuple)) and v:
                v = v[0]
            if isinstance(v, (int, float)):
                vals.append(float(v))
        return max(vals) if vals else None

    b, h = peak(base_run), peak(head_run)
    if b is None or h is None:
        return []
    cores = None
    for run in (head_run, base_run):
        m = run.get("machine") or {}
        cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
        cores = cpu.get("logical_cores") or m.get("logical_cores") or m.get("cpu_count")
        if cores:
            break
    limit = 0.5 * float(cores) if isinstance(cores, (int, float)) and cores else 1.0
    if abs(h - b) >= limit:
        return [f"1-minute load average differed between the runs (base up to {b:.2f}, head up to {h:.2f}): "
                "other processes may explain part of any difference"]
    return []


