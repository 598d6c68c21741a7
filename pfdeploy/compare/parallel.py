"""Many cases on every CPU: the per-case statistics of `compare_runs` spread over forked worker
processes (docs/compare.md, "Many cases").

Every case's statistics are a pure function of its two results, the comparison's settings and a
seed derived from the case key (`shift.stable_seed`), so where a case is computed changes nothing:
the cases come back in order and identical to a sequential run (tests/test_compare_scale.py). The
workers are forked after both runs are loaded, so they read the parent's results without copying
them through a pipe; only the keys go out and each case's comparison and ratio statistics come back.
A comparison of fewer than PARALLEL_MIN_CASES cases (every CI gate of a few dozen) runs in-process:
forking costs more than it saves there."""
from __future__ import annotations

import os
import signal
import sys

PARALLEL_MIN_CASES = 1000
CHUNK = 250  # cases per task: small enough to balance two workers, large enough to amortise the pickling

_SHARED: tuple | None = None  # (compare_case, base_rows, head_rows, cmp): set before the fork


def workers_for(cases: int, requested: int | None = None) -> int:
    """How many processes compute `cases` cases: `requested`, else one per usable CPU from
    PARALLEL_MIN_CASES cases on where fork is the start method (Linux), else 1."""
    if requested is not None:
        return max(1, int(requested))
    if cases < PARALLEL_MIN_CASES or not sys.platform.startswith("linux"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, cases // CHUNK))


def compare_cases(keys: list[str], base_rows: dict, head_rows: dict, cmp, stats: dict, compare_case,
                  workers: int = 1) -> list:
    """[CaseComparison] of `keys` in order (`compare_case(key, base, head, cmp, stats)` for each),
    on `workers` processes; `stats` gets each statistically compared case's RatioStats."""
    if workers < 2 or len(keys) < 2:
        return [compare_case(k, base_rows.get(k), head_rows.get(k), cmp, stats) for k in keys]
    import multiprocessing

    global _SHARED
    _SHARED = (compare_case, base_rows, head_rows, cmp)
    chunks = [keys[i:i + CHUNK] for i in range(0, len(keys), CHUNK)]
    out = []
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
            for part in pool.imap(_chunk, chunks):
                for case, st in part:
                    out.append(case)
                    if st is not None:
                        stats[case.case_key] = st
    finally:
        _SHARED = None
    return out


def _worker_init() -> None:
    # the parent decides what a Ctrl-C or a termination means (it exits 128 + the signal and
    # terminates the pool); a worker neither prints a KeyboardInterrupt nor outlives it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _chunk(keys: list[str]) -> list:
    compare_case, base_rows, head_rows, cmp = _SHARED
    out = []
    for k in keys:
        st: dict = {}
        case = compare_case(k, base_rows.get(k), head_rows.get(k), cmp, st)
        out.append((case, st.get(k)))
    return out
