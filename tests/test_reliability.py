"""Issue 12: every bad input or fault of docs/reliability.md gives one clear line and the
documented exit code, nothing is lost or clobbered, signals are handled. Real files, real
processes, real signals; no duration is asserted."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pfdeploy.errors import UsageError, UserError

from conftest import invoke_cli
from test_compare import synth_doc, write_run

MODEL = "pf_vit_ti"  # the smallest exportable zoo model (shared with test_export_artifacts' cache)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith(("pfdeploy: error:", "Error:")), proc.stderr  # click: Usage + Error
    assert sum(ln.startswith("pfdeploy: error:") for ln in lines) <= 1, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def vit_onnx(artifact_cache):
    from pfdeploy.exporters import get_artifact

    return get_artifact(MODEL, "onnx")


# ------------------------------------------------------------------------- 1. verify that passes

def test_verify_of_a_passing_artifact_exits_0_without_traceback(vit_onnx):
    proc = invoke_cli("verify", str(vit_onnx.path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "passed" in proc.stdout


def test_verify_verdict_lines_need_only_their_own_fields():
    from pfdeploy.cli.verify import verdict_markup

    assert "passed" in verdict_markup({"verdict": "passed", "failures": [], "baseline": None})
    assert "FAILED: cosine [x]" in verdict_markup({"verdict": "failed", "failures": ["cosine [x]"]}).replace("\\", "")
    inc = verdict_markup({"verdict": "inconclusive", "failures": ["a"], "baseline": {"failures": ["b"]}})
    assert "inconclusive: a" in inc and "(b)" in inc


# ------------------------------------------------------------------------- 2. export --out --force

def test_export_out_force_never_deletes_user_files(vit_onnx, tmp_path):
    from pfdeploy.exporters import get_artifact

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="holds more than a pfdeploy artifact.*never deletes"):
        get_artifact(MODEL, "onnx", out=out, force=True)
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temp dir left beside it


def test_export_out_replaces_only_a_previous_artifact_with_force(vit_onnx, tmp_path):
    from pfdeploy.exporters import get_artifact, load_artifact

    out = tmp_path / "deploy"
    get_artifact(MODEL, "onnx", out=out)
    with pytest.raises(UserError, match="add --force to replace that artifact"):
        get_artifact(MODEL, "onnx", out=out)
    from pfdeploy.exporters.pipeline import _check_out

    assert _check_out(out, True) == out  # a previous artifact alone may be replaced with --force
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="never deletes"):
        _check_out(out, True)
    assert load_artifact(out).sha256 == vit_onnx.sha256 and (out / "notes.txt").exists()


def test_concurrent_exports_into_one_out_are_serialised(vit_onnx, tmp_path):
    """Four writers copying the artifact into one --out at once, ten times each (`--force`): each
    copy is made under the target's lock, so every one succeeds, OUT is one whole artifact after,
    and nothing is left beside it (no `.tmp-*`, `.old-*` or lock file)."""
    import threading

    from pfdeploy.exporters import load_artifact
    from pfdeploy.exporters.outdir import copy_out

    out = tmp_path / "deploy"
    errors: list[BaseException] = []

    def writer():
        try:
            for _ in range(10):
                copy_out(vit_onnx, out)
        except BaseException as exc:  # collected: the assertion names it
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]
    assert load_artifact(out).sha256 == vit_onnx.sha256


@pytest.mark.subprocess
def test_export_out_on_a_full_disk_is_one_line(vit_onnx, tmp_path):
    """RLIMIT_FSIZE makes every write past 64 KiB fail with EFBIG, as a full disk fails with
    ENOSPC: the copy into --out fails; one line, nothing left behind."""
    out = tmp_path / "full" / "deploy"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = subprocess.run([sys.executable, "-m", "pfdeploy", "export", MODEL, "--to", "onnx", "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=limit, timeout=600)
    err = one_line_error(proc)
    assert f"cannot write --out {out}" in err
    assert not out.exists() and list((tmp_path / "full").iterdir()) == []


# ------------------------------------------------------------------------- 3. user text in rich

def _render(renderable) -> str:
    from rich.console import Console

    c = Console(width=300, record=True, file=open(os.devnull, "w"))
    c.print(renderable)
    return c.export_text()


def test_table_cells_and_titles_are_shown_literally():
    from pfdeploy.backends import get_backend
    from pfdeploy.render import esc, table

    hint = get_backend("tensorrt").install_hint
    t = table(["tag", "reason"], [("[/x]", hint), ("feature/[wip]", "[bold]not bold[/bold]")], title="tag [/x]")
    text = _render(t)
    assert "pip install 'pfdeploy[gpu]'" in text and "feature/[wip]" in text and "[/x]" in text
    assert "[bold]not bold[/bold]" in text and "tag [/x]" in text
    assert _render(esc("pfdeploy[gpu] [/x]")).strip() == "pfdeploy[gpu] [/x]"


@pytest.fixture
def tagged_store(tmp_path):
    from pfdeploy.store import open_store

    url = str(tmp_path / "tags.db")
    with open_store(url) as store:
        write_run(store, synth_doc("[/x]", 1))
        write_run(store, synth_doc("feature/[wip]", 2))
    return url


def test_markup_in_tags_breaks_nothing(tagged_store):
    proc = invoke_cli("results", "--store", tagged_store, "--list")
    assert proc.returncode == 0, proc.stderr
    assert "feature/[wip]" in proc.stdout and "[/x]" in proc.stdout
    proc = invoke_cli("results", "--store", tagged_store, "--run", "feature/[wip]")
    assert proc.returncode == 0, proc.stderr
    assert "tag feature/[wip]" in proc.stdout
    proc = invoke_cli("compare", "[/x]", "feature/[wip]", "--store", tagged_store, "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    assert "compare [/x]" in proc.stdout and "feature/[wip]" in proc.stdout


# ------------------------------------------------------------------------- 4. signals

DRIVER = textwrap.dedent('''
    import sys
    from pfdeploy import signals
    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared, Progress
    from pfdeploy.store import open_store

    store_path, inputs, mode = sys.argv[1:4]

    class P(Progress):
        def case_done(self, r):
            print("DONE", r.spec.model, r.result["status"], flush=True)

    def case(name, **opts):
        return CaseSpec(model=name, backend="fake", threads=1, options=opts), Prepared(inputs=inputs, family="conv")

    if mode == "busy":  # one case whose load (first inference) busy-loops for 120 s
        cases = [case("busy", work_us=120_000_000)]
    else:  # "fast" converges in a few rounds; "slow" (1 s a step, 20 steps at least) is still measuring then
        cases = [case("fast", work_us=50), case("slow", work_us=1_000_000)]
    rule = StopRule(min_iters=20, min_time_s=0.001, max_time_s=60, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.2, min_samples=20)
    previous = signals.install()
    store = open_store(store_path)
    out = Engine(BenchConfig(models=(), rule=rule, round_time_s=0.005), store, store_url=store.url).run(
        P(), prepared_cases=cases)
    if signals.received() is None:  # as pfdeploy.cli.main and run do: a late signal cannot change the exit
        signals.restore(previous)
    signals.exiting()
    print("OUTCOME", out.status, out.signum, flush=True)
    sys.exit(128 + out.signum if out.status == "interrupted" else 0)
''')


@pytest.fixture
def driver(tmp_path):
    import numpy as np

    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 3, 4, 4), np.float32))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    def start(mode="pair"):
        env = {**os.environ, "TMPDIR": str(tmpdir)}
        return subprocess.Popen([sys.executable, str(script), str(tmp_path / "r.db"), str(inputs), mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    start.store = tmp_path / "r.db"
    start.tmpdir = tmpdir
    return start


def _workers(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "pfdeploy.bench.worker" in " ".join(k.cmdline())]


def _wait_line(proc, prefix: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} line; stderr: {proc.stderr.read()[-3000:]}")


@pytest.mark.slow  # ~37 s a case; the exit codes alone are also checked by faster tests in the default run
@pytest.mark.subprocess
@pytest.mark.parametrize("sigs, code", [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)],
                         ids=["sigterm", "ctrl-c-twice"])
def test_signal_stops_workers_keeps_cases_marks_run_cleans_up(driver, sigs, code):
    from pfdeploy.store import open_store

    proc = driver()
    try:
        assert _wait_line(proc, "DONE fast").split()[2] == "ok"
        workers = [w.pid for w in _workers(proc.pid)]
        assert workers, "the slow case's worker should be measuring"
        for s in sigs:  # several quick signals must not break the cleanup
            proc.send_signal(s)
            time.sleep(0.01)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err, err
    assert f"OUTCOME interrupted {sigs[0]}" in out
    with open_store(driver.store) as store:
        (run,) = store.runs()
        assert run["status"] == "interrupted"
        assert [r["model"] for r in store.results(run["id"])] == ["fast"]
    assert not [p for p in workers if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert list(driver.tmpdir.iterdir()) == []  # bench temp dir and worker logs removed


@pytest.mark.subprocess
def test_busy_worker_dies_with_its_killed_parent(driver):
    proc = driver("busy")
    try:
        deadline = time.monotonic() + 120
        workers = []
        while not workers and time.monotonic() < deadline:
            workers = _workers(proc.pid)
            time.sleep(0.2)
        assert workers, proc.stderr.read() if proc.poll() is not None else "no worker started"
        w = workers[0]
        # wait until the worker is past its start-up (busy in the 120 s first inference)
        while w.cpu_times().user < 1.0 and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.kill()  # SIGKILL: the parent runs no cleanup at all
        proc.wait(timeout=30)
        gone_by = time.monotonic() + 20
        while time.monotonic() < gone_by:
            if not psutil.pid_exists(w.pid) or psutil.Process(w.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.1)
        else:
            w.kill()
            raise AssertionError("the busy worker outlived its killed parent")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_exit_codes_of_signals(monkeypatch):
    from pfdeploy import signals
    from pfdeploy.cli import main
    from pfdeploy.cli import results as results_cli

    def stopped(*a, **k):
        raise signals.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(results_cli.command, "callback", stopped)
    assert main(["results"]) == 143
    assert signal.getsignal(signal.SIGTERM) is not signals._handler  # main() restores the handlers


# ------------------------------------------------------------------------- 5. threads, load timeout

def test_threads_above_the_usable_cpus_are_refused(tmp_path):
    from pfdeploy.cli.bench import build_config, usable_cpus

    n = usable_cpus()
    with pytest.raises(UsageError, match=f"more than the {n} CPU"):
        build_config("resnet50", None, "torch", None, None, None, n + 1, None, None, None, None, True, None)
    assert build_config("resnet50", None, "torch", None, None, None, n, None, None, None, None, True, None).threads == n
    proc = invoke_cli("bench", "--models", "resnet50", "--backends", "torch", "--threads", "999",
                   "--store", str(tmp_path / "r.db"))
    one_line_error(proc, 2)
    assert not (tmp_path / "r.db").exists()


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_a_hanging_load_fails_its_case_after_the_load_timeout(tmp_path, monkeypatch):
    import numpy as np

    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
    from pfdeploy.store import open_store

    monkeypatch.setenv("PFDEPLOY_LOAD_TIMEOUT_S", "2")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 4, 4), np.float32))
    hang = CaseSpec(model="hang", backend="fake", threads=1, options={"work_us": 600_000_000})
    ok = CaseSpec(model="ok", backend="fake", threads=1)
    rule = StopRule(min_iters=20, min_time_s=0.001, max_time_s=0.5, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.2, min_samples=20)
    with open_store(tmp_path / "r.db") as store:
        out = Engine(BenchConfig(models=(), rule=rule, round_time_s=0.005), store).run(
            prepared_cases=[(hang, Prepared(inputs=str(x))), (ok, Prepared(inputs=str(x)))])
    rows = {r.spec.model: r.result for r in out.results}
    assert rows["hang"]["status"] == "failed" and "no answer to load within 2 s" in rows["hang"]["error"]
    assert rows["ok"]["status"] == "ok"


# ------------------------------------------------------------------------- 6. outputs checked first

@pytest.mark.parametrize("verb", ["bench", "compare", "results", "report"])
def test_unwritable_output_fails_before_any_work(verb, tmp_path, make_readonly, tagged_store):
    ro = tmp_path / "ro"
    ro.mkdir()
    make_readonly(ro)
    store = str(tmp_path / "fresh.db")
    args = {
        "bench": ["bench", "--models", "resnet50", "--backends", "torch", "--store", store,
                  "--json", str(ro / "run.json")],
        "compare": ["compare", "[/x]", "feature/[wip]", "--store", tagged_store, "--markdown", str(ro / "pr.md")],
        "results": ["results", "--store", tagged_store, "--format", "csv", "--out", str(ro / "r.csv")],
        "report": ["report", "--store", tagged_store, "--out", str(ro / "site")],
    }[verb]
    err = one_line_error(invoke_cli(*args))
    assert str(ro) in err and ("not writable" in err or "denies write access" in err)
    assert list(ro.iterdir()) == []
    assert not Path(store).exists()  # bench: refused before the store was even created


def test_output_path_that_is_a_directory_or_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    err = one_line_error(invoke_cli("bench", "--models", "resnet50", "--backends", "torch", "--store",
                                 str(tmp_path / "r.db"), "--json", str(tmp_path / "file" / "x.json")))
    assert "is a file, not a directory" in err
    err = one_line_error(invoke_cli("results", "--format", "csv", "--out", str(tmp_path)))
    assert "is a directory" in err


def test_atomic_writer_umask_modes_and_full_disk(tmp_path, monkeypatch):
    import errno

    from pfdeploy import outputs

    old = os.umask(0o022)
    try:
        p = outputs.atomic_write_text(tmp_path / "a.md", "hello")
        assert (p.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
        os.umask(0o077)
        q = outputs.atomic_write_text(tmp_path / "b.md", "private")
        assert (q.stat().st_mode & 0o777) == 0o600
        os.chmod(p, 0o664)
        outputs.atomic_write_text(p, "again")  # a replaced file keeps its mode
        assert (p.stat().st_mode & 0o777) == 0o664 and p.read_text() == "again"
    finally:
        os.umask(old)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="cannot write output file .*a.md: No space left on device"):
        outputs.atomic_write_text(tmp_path / "a.md", "new")
    assert (tmp_path / "a.md").read_text() == "again"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.md", "b.md"]


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_bench_json_and_markdown_files_get_the_umask_mode(tmp_path, tagged_store):
    md = tmp_path / "pr.md"
    proc = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" -m pfdeploy "$@"', sys.executable, "compare", "[/x]",
                           "feature/[wip]", "--store", tagged_store, "--fail-on", "never", "--markdown", str(md)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (md.stat().st_mode & 0o777) == 0o644


# ------------------------------------------------------------------------- 8. impossible samples, empty HEAD

@pytest.mark.parametrize("bad", [0, -5, 2**70, 10**18])
def test_compare_refuses_impossible_samples(bad, tmp_path):
    from pfdeploy.compare import compare_runs
    from pfdeploy.store import write_run_file

    base, head = synth_doc("base", 1), synth_doc("head", 2)
    head["results"][0]["samples_ns"][3] = bad
    with pytest.raises(UserError, match=f"impossible latency sample {bad}"):
        compare_runs(base, head)
    if bad < 2**63:  # a run file can hold it; the CLI says the same in one line
        b, h = write_run_file(base, tmp_path / "b.json"), write_run_file(head, tmp_path / "h.json")
        err = one_line_error(invoke_cli("compare", str(b), str(h)))
        assert "impossible latency sample" in err


def test_head_without_results_fails_the_gate(tmp_path):
    from pfdeploy.store import write_run_file

    base, head = synth_doc("base", 1), synth_doc("head", 2)
    head["results"] = []
    b, h = write_run_file(base, tmp_path / "b.json"), write_run_file(head, tmp_path / "h.json")
    for fail_on in ("regression", "never"):
        err = one_line_error(invoke_cli("compare", str(b), str(h), "--fail-on", fail_on))
        assert "head run head" in err and "has no results" in err


# ------------------------------------------------------------------------- 9. read-only cache

def test_read_only_cache_holding_the_artifact_is_used(vit_onnx, tmp_path, make_readonly):
    from pfdeploy.exporters import get_artifact

    cache = tmp_path / "cache"
    art_dir = cache / "onnx" / vit_onnx.path.name
    shutil.copytree(vit_onnx.path, art_dir)
    for d in (art_dir, cache / "onnx", cache):
        make_readonly(d)
    art = get_artifact(MODEL, "onnx", cache_dir=cache)
    assert art.path == art_dir and art.sha256 == vit_onnx.sha256
    with pytest.raises(UserError, match="cache directory .* is not writable"):
        get_artifact(MODEL, "onnx", precision="fp16", cache_dir=cache)  # needs an export: refused early


# ------------------------------------------------------------------------- 10. minor

def test_huge_batch_is_refused_up_front(tmp_path):
    err = one_line_error(invoke_cli("bench", "--models", "resnet50", "--backends", "torch", "--batch", "100000",
                                 "--store", str(tmp_path / "r.db")), 2)
    assert "--batch 100000 is too large for resnet50" in err
    assert not (tmp_path / "r.db").exists()


def test_repeated_values_are_measured_once():
    from pfdeploy.cli.bench import build_config

    cfg = build_config("pf_resnet50,resnet50,pf_resnet50_hybrid,resnet50", None, "torch,torch", None, "fp32,fp32",
                       "1,1,2", None, None, None, None, None, True, None)
    assert cfg.models == ("pf_resnet50_hybrid", "resnet50") and cfg.backends == ("torch",)
    assert cfg.batches == (1, 2) and cfg.precisions == ("fp32",)


def test_bench_with_every_case_skipped_exits_1(tmp_path):
    proc = invoke_cli("bench", "--models", "resnet50", "--backends", "tensorrt", "--store", str(tmp_path / "r.db"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "nothing was measured: all 1 case(s) were skipped" in proc.stderr


def test_leftovers_of_killed_exports_are_swept(tmp_path):
    from pfdeploy.publish import _host, _owner_tag, make_temp_dir, sweep_stale_temp

    root = tmp_path / "cache"
    (root / "onnx").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    killed = root / "onnx" / f".tmp-pf_vit_ti-x-pid{dead}@{_host()}-abc123"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half")
    live = make_temp_dir(root / "onnx", "resnet50-x")  # ours: this process is alive
    assert _owner_tag() in live.name
    foreign = root / "onnx" / ".tmp-resnet50-x-pid1@otherhost-zzz"
    foreign.mkdir()
    unowned_old = root / "onnx" / ".tmp-old-format-abc"
    unowned_old.mkdir()
    os.utime(unowned_old, (time.time() - 7 * 3600,) * 2)
    removed = sweep_stale_temp(root)
    assert killed in removed and unowned_old in removed
    assert live.exists() and foreign.exists() and not killed.exists()


def test_verify_limit_below_1_is_a_usage_error(tmp_path):
    proc = invoke_cli("verify", str(tmp_path), "--limit", "-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--limit" in proc.stderr


def test_raw_protocol_4_pickle_is_refused_as_unsafe(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps(Evil(), protocol=4))
    from pfdeploy.weights import read_checkpoint

    with pytest.raises(UserError, match=r"refused: unsafe: the pickle would import (posix|nt)\.system"):
        read_checkpoint(path)
