"""Several benches writing to one store at once, a lock held by another process, and a bench
killed in the middle of a run: nothing is lost or corrupted, and the store still opens."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pfdeploy.store import open_store
from test_store import result_row, run_meta, store_url  # noqa: F401  (store_url is a fixture)

WRITERS = 4
RESULTS_PER_WRITER = 40
SAMPLES_PER_RESULT = 2000


def _samples(writer: int, i: int) -> np.ndarray:
    return np.random.default_rng(writer * 1000 + i).integers(1_000_000, 50_000_000, SAMPLES_PER_RESULT)


def _writer(url: str, writer: int, barrier, queue) -> None:
    """One bench: a run with RESULTS_PER_WRITER results of SAMPLES_PER_RESULT samples each."""
    try:
        store = open_store(url)  # several processes open (and migrate) a new store at once
        barrier.wait(timeout=60)
        run_id = store.begin_run(run_meta(tag=f"writer{writer}"))
        for i in range(RESULTS_PER_WRITER):
            rounds = np.arange(SAMPLES_PER_RESULT) // 100
            store.add_result(run_id, result_row(model=f"m{i}", backend=f"w{writer}", p50_ms=float(i)),
                             _samples(writer, i), rounds)
        store.finish_run(run_id, "finished")
        store.close()
        queue.put((writer, run_id, None))
    except BaseException as exc:  # report to the parent instead of dying silently
        queue.put((writer, None, repr(exc)))


def test_concurrent_writer_processes_lose_nothing(store_url):  # noqa: F811
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(store_url, w, barrier, queue)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [r for r in reports if r[2]]
    assert not errors, errors

    with open_store(store_url) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        assert len(runs) == WRITERS and {r["status"] for r in runs} == {"finished"}
        for writer, run_id, _ in reports:
            rows = store.results(run_id)
            assert [r["model"] for r in rows] == [f"m{i}" for i in range(RESULTS_PER_WRITER)]
            assert {r["backend"] for r in rows} == {f"w{writer}"}
            samples = store.samples_for_run(run_id)
            assert len(samples) == RESULTS_PER_WRITER
            for i, row in enumerate(rows):
                assert samples[row["id"]]["latency_ns"] == _samples(writer, i).tolist()
                assert samples[row["id"]]["round"][-1] == (SAMPLES_PER_RESULT - 1) // 100


def _hold_write_lock(path: str, seconds: float, ready) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_write_waits_for_and_retries_past_a_held_lock(tmp_path):
    """A write that finds the database locked beyond SQLite's busy timeout retries the whole
    transaction and lands once the other process lets go; no duplicate, no error."""
    path = str(tmp_path / "locked.db")
    store = open_store(path, busy_timeout_ms=50, lock_timeout_s=60)
    run_id = store.begin_run(run_meta())
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(path, 1.0, ready))
    holder.start()
    assert ready.wait(60)
    rid = store.add_result(run_id, result_row(), [1, 2, 3])  # blocks, retries, then succeeds
    holder.join(60)
    assert holder.exitcode == 0
    assert [r["id"] for r in store.results(run_id)] == [rid]
    assert store.samples(rid)["latency_ns"] == [1, 2, 3]
    store.close()


def test_lock_never_released_is_a_user_error(tmp_path):
    path = str(tmp_path / "stuck.db")
    store = open_store(path, busy_timeout_ms=20, lock_timeout_s=0.3)
    run_id = store.begin_run(run_meta())
    import sqlite3

    from pfdeploy.errors import UserError

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(UserError, match="stayed locked"):
            store.add_result(run_id, result_row(), [1])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.results(run_id) == []
    store.close()


KILLED_BENCH = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from pfdeploy.store import open_store
    from test_store import result_row, run_meta
    store = open_store({url!r})
    run_id = store.begin_run(run_meta(tag="killed"))
    print(run_id, flush=True)
    i = 0
    while True:  # writes as fast as it can until it is killed, mid-transaction sooner or later
        store.add_result(run_id, result_row(model=f"m{{i}}"), np.full(3000, i, dtype=np.int64),
                         np.zeros(3000, dtype=np.int64))
        i += 1
""")


def test_killed_bench_keeps_earlier_results(store_url):  # noqa: F811
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BENCH.format(tests=tests_dir, url=store_url)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()
        with open_store(store_url) as store:
            deadline = time.monotonic() + 120
            while len(store.results(run_id)) < 25:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with open_store(store_url) as store:  # still opens
        assert store.integrity_check() == "ok"
        run = store.resolve_run("killed")
        assert run["id"] == run_id and run["status"] == "running" and run["finished_at"] is None
        rows = store.results(run_id)
        assert len(rows) >= 25
        assert [r["model"] for r in rows] == [f"m{i}" for i in range(len(rows))]  # no gap, no half row
        samples = store.samples_for_run(run_id)
        assert sorted(samples) == [r["id"] for r in rows]  # every result has its samples
        for i, row in enumerate(rows):
            assert samples[row["id"]]["latency_ns"] == [i] * 3000
        store.finish_run(run_id, "interrupted")  # what the engine does for a run it knows died
        assert store.get_run(run_id)["status"] == "interrupted"
        other = store.begin_run(run_meta(tag="after"))
        store.add_result(other, result_row(), [1])
        assert len(store.results(other)) == 1
