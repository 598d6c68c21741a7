"""Issue 32: the new verbs keep the promise the old ones keep (docs/reliability.md, "The fault
battery (issue 32)"). `tune` checks everything before any work and prints its table before it
writes; every long verb exits 128 + the signal, also for a signal during shutdown; tuned.json,
manifests, run files and store rows are validated at their edge; writers of one tuned directory
are serialised; three misleading messages. Each test failed on the main of the time (2bd6d4e)
unless its docstring says it guards what the typed result already fixed."""
from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from pfdeploy.errors import UserError

from conftest import invoke_cli
from test_compare import synth_doc, write_run

MODEL = "pf_vit_ti"


def one_line(proc, code: int) -> str:
    """The exit code, no traceback, and exactly one `pfdeploy: error:` line (the last one)."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("pfdeploy: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ------------------------------------------------------------------------- a torch winner's tuned directory

def torch_row(**extra) -> dict:
    """A stored torch winner row (no artifact file: nothing to export)."""
    row = {"case_key": "k", "model": MODEL, "weights": "synthetic:0", "backend": "torch", "device": "cpu",
           "precision": "fp32", "batch": 1, "threads": 1, "scenario": "latency", "status": "ok",
           "variant": "default", "options": {}, "p50_ms": 10.0, "p50_ci_low_ms": 9.5, "p50_ci_high_ms": 10.5,
           "processes": 3, "artifact": {"runner": {"backend": "torch"}},
           "tune": {"status": "winner", "vs_default": None, "tied_with": []}}
    row.update(extra)
    return row


def write_torch(dest: Path) -> Path:
    from pfdeploy.tune.artifact import write_tuned

    return write_tuned(dest, torch_row(), run_id="run1", store_url="r.db", machine={"machine_id": "m"})


def _tuned_dir_with(tmp_path: Path, user_file: bool) -> Path:
    d = write_torch(tmp_path / "t")
    if user_file:
        (d / "notes.txt").write_text("mine")
    return d


# ------------------------------------------------------------------------- 1. tune checks before any work

@pytest.fixture
def no_tune(monkeypatch):
    """`tune` must never start: the refusals come before it."""
    import pfdeploy.tune.run as run

    def tune(*a, **k):
        raise AssertionError("the tune started before the refusal")

    monkeypatch.setattr(run, "tune", tune)


def _out_case(kind: str, tmp_path: Path, make_readonly) -> tuple[Path, str]:
    """(--out, a phrase of the one line) for each kind of unusable --out."""
    out = tmp_path / "tuned"
    if kind == "read-only":
        out.mkdir()
        make_readonly(out)
        return out, "not writable"
    if kind == "under-a-file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "tuned", "is a file, not a directory"
    out.mkdir()
    target = out / "resnet50"
    if kind == "user-folder":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work")
        return out, "is not a pfdeploy tuned directory"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
        return out, "is a symbolic link"
    if kind == "tuned-dir-with-user-file":
        d = write_torch(target)
        (d / "notes.txt").write_text("mine")
        return out, "which pfdeploy did not write"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["read-only", "under-a-file", "user-folder", "symlink", "tuned-dir-with-user-file"])
def test_tune_out_is_checked_before_any_work(kind, tmp_path, make_readonly, no_tune):
    out, phrase = _out_case(kind, tmp_path, make_readonly)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    line = one_line(invoke_cli("tune", "resnet50", "--backends", "torch", "--out", str(out),
                               "--store", str(tmp_path / "r.db")), 1)
    assert phrase in line, line
    assert not (tmp_path / "r.db").exists()  # refused before the store was created
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing touched, nothing left


def test_tune_refuses_what_bench_refuses_up_front(tmp_path, monkeypatch, no_tune):
    import psutil

    from pfdeploy.preflight import usable_cpus

    store = tmp_path / "r.db"
    line = one_line(invoke_cli("tune", "resnet50", "--threads", str(usable_cpus() + 1), "--store", str(store)), 2)
    assert "--threads" in line and "CPU" in line
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=2**30))  # 1 GiB free
    line = one_line(invoke_cli("tune", "resnet50", "--batch", "4096", "--store", str(store)), 2)
    assert "--batch 4096 is too large for resnet50" in line
    pytest.importorskip("timm")
    line = one_line(invoke_cli("tune", "timm:surely_not_a_timm_model_xyz", "--store", str(store)), 2)
    assert "surely_not_a_timm_model_xyz" in line
    assert not store.exists()


def _canned(out_dir_seen: list):
    """A finished tune whose one model has an overall winner; it writes its winners when asked
    (out_dir), as tune() does, through write_winners."""
    import pfdeploy.tune.run as run

    def tune(cfg, store, store_url="", progress=None, out_dir=None):
        rt = {"backend": "torch", "candidates": [], "generations": 2,
              "shipped": {"variant": "default", "precision": "fp32", "status": "winner", "p50_ms": 1.0}}
        result = run.TuneResult(models=[{"model": "resnet50", "runtimes": [rt], "skipped": [], "overall": {
            "backend": "torch", "variant": "default", "precision": "fp32", "status": "winner", "dir": None}}],
            runs=["r0"], final_run="r1", store_url=store_url)
        out_dir_seen.append(out_dir)
        if out_dir is not None:
            run.write_winners(result, [], store, out_dir, run.TuneProgress())
        return result

    return tune


def test_tune_prints_its_table_before_a_failing_write(tmp_path, monkeypatch):
    """A full disk while writing the tuned directory: the table is shown, then one line, exit 1."""
    import pfdeploy.tune.run as run

    seen: list = []
    monkeypatch.setattr(run, "tune", _canned(seen))

    def full(result, frows, store, out_dir, progress):
        raise UserError(f"cannot write tuned directory {out_dir}/resnet50: No space left on device")

    monkeypatch.setattr(run, "write_winners", full)
    proc = invoke_cli("tune", "resnet50", "--backends", "torch", "--out", str(tmp_path / "tuned"),
                      "--store", str(tmp_path / "r.db"))
    line = one_line(proc, 1)
    assert "No space left on device" in line
    assert "fastest torch default (fp32)" in proc.stdout  # the table came first


def test_a_full_disk_while_writing_a_tuned_directory_is_one_line(tmp_path, monkeypatch):
    import pfdeploy.tune.artifact.write as w

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(w, "_write_json", full)
    with pytest.raises(UserError, match=r"cannot write tuned directory .*/t: No space left on device"):
        write_torch(tmp_path / "t")
    assert list(tmp_path.iterdir()) == []  # no temporary directory, no lock file


# ------------------------------------------------------------------------- 2. 128 + the signal

@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_tune_exits_128_plus_the_signal(signum, code, tmp_path, monkeypatch):
    from pfdeploy import signals
    import pfdeploy.tune.run as run

    def stopped(cfg, store, store_url="", progress=None, out_dir=None):
        signals._state.signum = int(signum)  # what the handler records; the engine then returns "interrupted"
        return run.TuneResult(models=[], runs=["r0"], store_url=store_url, status="interrupted")

    monkeypatch.setattr(run, "tune", stopped)
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    try:
        proc = invoke_cli("tune", "resnet50", "--backends", "torch", "--no-save", "--store", str(tmp_path / "r.db"))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and signals.signal_name(signum) in proc.stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ab_exits_128_plus_the_signal(signum, code, tmp_path, monkeypatch):
    """`pfdeploy ab` follows the rule (it did from the start: kept here with the other verbs)."""
    import pfdeploy.ab as ab
    from pfdeploy.ab.run import ABOutcome

    side = ab.classify(sys.executable, "base")

    def run_ab(base, head, cfg, settings, store, progress, planned=None):
        return ABOutcome(sides=[side, side], cases=[], not_compared=[], statement="-", base_run_id="b",
                         head_run_id="h", ab_id="x", status="interrupted", wall_s=1.0, budget_s=10.0,
                         threshold=0.05, alpha=0.05, signum=int(signum))

    monkeypatch.setattr(ab, "plan", lambda *a, **k: None)
    monkeypatch.setattr(ab, "run_ab", run_ab)
    proc = invoke_cli("ab", sys.executable, sys.executable, "--models", "resnet50", "--backends", "torch",
                      "--store", str(tmp_path / "r.db"))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr


LATE_SIGNAL = textwrap.dedent('''
    import os, signal, sys, time
    from pfdeploy.cli import results as verb

    def stopped(*a, **k):  # the first Ctrl-C stops the verb, which exits 130 itself (as bench and tune do)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        except KeyboardInterrupt:
            sys.exit(130)

    verb.command.callback = stopped

    class SecondCtrlC:
        """Torn down with __main__ while the interpreter shuts down: a second Ctrl-C then."""
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            os.write(1, b"survived the second Ctrl-C\\n")

    late = SecondCtrlC()
    from pfdeploy.cli import run
    sys.argv = ["pfdeploy", "results"]
    run()
''')


@pytest.mark.subprocess
def test_a_second_ctrl_c_during_shutdown_keeps_exit_130(tmp_path):
    """The second Ctrl-C a moment after the first used to find Python's default handler (put back
    at shutdown) and kill the process by SIGINT (-2), not exit 130."""
    script = tmp_path / "late.py"
    script.write_text(LATE_SIGNAL)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
    assert "survived the second Ctrl-C" in proc.stdout and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------- 3. types at the edge

@pytest.mark.parametrize("field, value, needle", [
    ("batch", "four", "batch must be a whole number"),
    ("batch", True, "batch must be a whole number"),
    ("threads", [2], "threads must be a whole number"),
    ("threads", 2.5, "threads must be a whole number"),
    ("measured.p50_ms", "fast", "measured.p50_ms must be a positive number"),
    ("measured.p50_ci_high_ms", [10.5], "measured.p50_ci_high_ms must be a positive number"),
    ("measured.p50_ci_low_ms", -1, "measured.p50_ci_low_ms must be a positive number"),
    ("model", 7, "model must be a non-empty string"),
    ("measured.p50_ci_low_ms", 1e6, "is inverted"),     # an inverted interval (fresh battery)
    ("runtime_settings", "x", "runtime_settings must be an object"),
])
def test_wrong_types_in_tuned_json_are_one_line(field, value, needle, tmp_path):
    from pfdeploy.tune.artifact import read_tuned

    d = write_torch(tmp_path / "t")
    t = json.loads((d / "tuned.json").read_text())
    if field.startswith("measured."):
        t["measured"][field.split(".", 1)[1]] = value
    else:
        t[field] = value
    (d / "tuned.json").write_text(json.dumps(t))
    with pytest.raises(UserError, match=needle) as exc:
        read_tuned(d)
    assert "\n" not in str(exc.value) and str(d / "tuned.json") in str(exc.value)


def test_bench_tuned_with_a_wrong_type_is_one_line(tmp_path):
    d = write_torch(tmp_path / "t")
    t = json.loads((d / "tuned.json").read_text())
    t["batch"] = "four"
    (d / "tuned.json").write_text(json.dumps(t))
    line = one_line(invoke_cli("bench", "--tuned", str(d), "--store", str(tmp_path / "r.db")), 1)
    assert "batch must be a whole number" in line
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("field, value, needle", [
    ("threads", 64, "threads 64 is more than"), ("backend", "nosuch", "nosuch"),
    ("model", "timm:nonexistent_model_xyz", "nonexistent_model_xyz"), ("scenario", "warp", "warp")])
def test_bench_tuned_with_a_value_this_machine_cannot_run_names_the_file(field, value, needle, tmp_path):
    """A value from tuned.json that bench refuses (more threads than CPUs, an unknown runtime,
    model or scenario) is said as the file's, exit 1, not as a flag the user never typed (was
    "--threads 64 is more than ...", exit 2). Fresh battery, issue 32."""
    d = write_torch(tmp_path / "t")
    t = json.loads((d / "tuned.json").read_text())
    t[field] = value
    (d / "tuned.json").write_text(json.dumps(t))
    line = one_line(invoke_cli("bench", "--tuned", str(d), "--store", str(tmp_path / "r.db")), 1)
    assert str(d / "tuned.json") in line and needle in line and "--threads" not in line, line
    assert not (tmp_path / "r.db").exists()


def _artifact_dir(tmp_path: Path, files) -> Path:
    """An artifact directory (one model file) whose manifest lists `files` as given."""
    d = tmp_path / "art"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"onnx")
    man = {"format": "pfdeploy-artifact", "version": 1, "status": "ok", "key": "k", "model": MODEL,
           "weights": "synthetic:0", "target": "onnx", "precision": "fp32", "exporter": {}, "tools": {},
           "files": files, "model_file": "model.onnx", "sha256": "0" * 64, "created_at": "2026-01-01T00:00:00Z",
           "pfdeploy_version": "0"}
    (d / "manifest.json").write_text(json.dumps(man))
    return d


@pytest.mark.parametrize("files", [
    ["model.onnx"],
    {"model.onnx": "abc"},
    {"model.onnx": {"sha256": "0" * 64, "bytes": "4"}},
    {"model.onnx": {"sha256": 5, "bytes": 4}},
], ids=["list", "string-entry", "bytes-string", "sha-number"])
def test_wrong_types_in_a_manifests_files_are_one_line(files, tmp_path):
    from pfdeploy.exporters import load_artifact
    from pfdeploy.tune.artifact import read_tuned

    d = _artifact_dir(tmp_path, files)
    with pytest.raises(UserError, match="manifest") as exc:
        load_artifact(d)
    assert "\n" not in str(exc.value)
    # the same manifest inside a tuned directory: one line too, and no "re-export" advice
    t = write_torch(tmp_path / "t")
    rec = json.loads((t / "tuned.json").read_text())
    rec["artifact"] = {"file": "model.onnx", "sha256": "0" * 64, "manifest": "manifest.json", "request": None}
    (t / "tuned.json").write_text(json.dumps(rec))
    for f in ("model.onnx", "manifest.json"):
        (t / f).write_bytes((d / f).read_bytes())
    with pytest.raises(UserError) as exc:
        read_tuned(t)
    assert "\n" not in str(exc.value) and "re-export" not in str(exc.value)


@pytest.fixture
def damaged_store(tmp_path):
    """A store whose first result row holds valid JSON of the wrong shape in `extra` (a list)."""
    from pfdeploy.store import open_store

    db = tmp_path / "s.db"
    with open_store(db) as s:
        for i in range(3):
            d = synth_doc(f"t{i}", i)
            d["results"][0]["model"] = "pf_resnet50"
            write_run(s, d)
    con = sqlite3.connect(db)
    con.execute("UPDATE results SET extra = ? WHERE id = (SELECT min(id) FROM results)", ("[1, 2]",))
    con.commit()
    con.close()
    return db


@pytest.mark.parametrize("verb", [["results", "--all"], ["claims"], ["report", "--out", "{tmp}/site"],
                                  ["compare", "t0", "t2", "--base-window", "2", "--fail-on", "never"]])
def test_a_store_row_whose_extra_is_a_list_is_a_warning_and_the_rest_shown(verb, damaged_store, tmp_path):
    """Guards the store side (fixed with the typed result): one warning, exit 0, the rest shown."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in verb]
    proc = invoke_cli(*args, "--store", str(damaged_store))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warns = [ln for ln in proc.stderr.splitlines() if "extra fields are not a JSON object (list)" in ln]
    assert len(warns) == 1, proc.stderr
    if verb[0] == "results":
        assert proc.stdout.count("resnet50") >= 6  # every row shown, the damaged one too
    if verb[0] == "report":
        assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize("blob", ["latency_ns = X'0102'", "rounds = X'01'",
                                  "latency_ns = X'01000000000000000200000000000000'"])
@pytest.mark.parametrize("verb", [["results", "t1", "--format", "json"], ["claims"], ["report", "--out", "{tmp}/site"],
                                  ["compare", "t0", "t1", "--fail-on", "never"],
                                  ["results", "t1", "--format", "csv", "--samples"]])
def test_a_damaged_samples_blob_in_the_store_is_a_warning_and_the_rest_shown(verb, blob, tmp_path):
    """A samples record changed outside pfdeploy (a blob that is not whole 8-byte values, round
    ids not one per sample) was a traceback in every reader of samples: now one warning naming
    the result, that result without samples, everything else shown (fresh battery, issue 32)."""
    from pfdeploy.store import open_store

    db = tmp_path / "s.db"
    with open_store(db) as s:
        for i in range(2):
            write_run(s, synth_doc(f"t{i}", i))
    con = sqlite3.connect(db)
    con.execute(f"UPDATE samples SET {blob} WHERE result_id = (SELECT max(id) FROM results)")
    con.commit()
    con.close()
    args = [a.replace("{tmp}", str(tmp_path)) for a in verb]
    proc = invoke_cli(*args, "--store", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warns = [ln for ln in proc.stderr.splitlines() if "are damaged" in ln]
    assert len(warns) == 1 and "samples of result" in warns[0], proc.stderr


def test_compare_says_what_is_at_a_run_file_path(tmp_path):
    """A loop of links, a dangling link, a device, a directory given to `compare` as a run file:
    each said as what it is (was "does not exist", or "no run, tag or commit matches" for a name
    not ending in .json); a FIFO is read (a run file piped in). Fresh battery, issue 32."""
    import threading

    from pfdeploy.store import write_run_file

    good = write_run_file(synth_doc("base", 1), tmp_path / "base.json")
    (tmp_path / "l1.json").symlink_to(tmp_path / "l2.json")
    (tmp_path / "l2.json").symlink_to(tmp_path / "l1.json")
    (tmp_path / "d.json").symlink_to(tmp_path / "nowhere.json")
    (tmp_path / "dir.json").mkdir()
    cases = {"l1.json": "is a loop of symbolic links", "d.json": "nowhere.json, which does not exist",
             "dir.json": "is a directory, not a run file", "nothere.json": "does not exist"}
    for name, said in cases.items():
        line = one_line(invoke_cli("compare", str(tmp_path / name), str(good), "--store", str(tmp_path / "s.db")), 1)
        assert said in line, (name, line)
    line = one_line(invoke_cli("compare", "/dev/null", str(good), "--store", str(tmp_path / "s.db")), 1)
    assert "/dev/null is a device, not a run file" in line
    fifo = tmp_path / "piped"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(good.read_bytes()))
    feeder.start()
    proc = invoke_cli("compare", str(fifo), str(good), "--fail-on", "never", "--store", str(tmp_path / "s.db"))
    feeder.join(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", ["abc", [[1, "a"]], {"0": [1]}, [1, 2, 3]])
@pytest.mark.parametrize("verb", ["compare", "claims"])
def test_process_rounds_of_the_wrong_shape_in_a_run_file_is_one_line(verb, value, tmp_path):
    """Guards what the typed result fixed at the run-file edge (a traceback before it)."""
    from pfdeploy.store import write_run_file

    base = write_run_file(synth_doc("base", 1), tmp_path / "base.json")
    doc = synth_doc("head", 2)
    doc["results"][0]["process_rounds"] = value
    head = tmp_path / "head.json"
    head.write_text(json.dumps(doc))
    args = ["compare", str(base), str(head)] if verb == "compare" else ["claims", str(head)]
    line = one_line(invoke_cli(*args), 1)
    assert "head.json" in line and "process_rounds" in line


@pytest.mark.parametrize("where", ["run-file", "store"])
def test_a_string_baselines_is_refused_not_read_letter_by_letter(where, tmp_path):
    """`baselines: "resnet50"` is a type error (one line for a file the user gave, a warning for
    a stored row), never the baselines "r", "e", "s", ... (guards the typed result's edge)."""
    doc = synth_doc("head", 2)
    doc["results"][0]["model"] = "pf_resnet50"
    if where == "run-file":
        doc["results"][0]["baselines"] = "resnet50"
        f = tmp_path / "head.json"
        f.write_text(json.dumps(doc))
        line = one_line(invoke_cli("claims", str(f)), 1)
        assert "baselines" in line
        return
    from pfdeploy.store import open_store

    db = tmp_path / "s.db"
    with open_store(db) as s:
        write_run(s, doc)
    con = sqlite3.connect(db)
    con.execute("UPDATE results SET baselines = ? WHERE id = (SELECT min(id) FROM results)", ('"resnet50"',))
    con.commit()
    con.close()
    proc = invoke_cli("claims", "--store", str(db))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "field 'baselines'" in proc.stderr and "vs r " not in proc.stdout


# ------------------------------------------------------------------------- 6. one writer of a tuned directory at a time

WRITER = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    from test_reliability_verbs import write_torch
    from pathlib import Path
    from pfdeploy.errors import UserError
    for i in range(int(sys.argv[3])):
        try:
            write_torch(Path(sys.argv[1]))
        except UserError as exc:
            print("USERERROR", exc, flush=True)
''')


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_concurrent_writers_of_one_tuned_directory_are_serialised(tmp_path):
    """Four processes write the same DIR 200 times each: every write succeeds (one at a time) or
    fails in one line; no traceback, no `.old-*`, `.tmp-*` or lock file left, DIR readable."""
    from pfdeploy.tune.artifact import read_tuned

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "pf_vit_ti"
    tests = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, str(script), str(dest), tests, "200"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0 and "Traceback" not in e, e[-3000:]
        assert "USERERROR" not in o, o  # serialised: both writers succeed every time
    assert sorted(p.name for p in out.iterdir()) == ["pf_vit_ti"]
    assert read_tuned(dest)["model"] == MODEL


def test_a_writer_that_waits_too_long_for_the_lock_fails_in_one_line(tmp_path):
    from pfdeploy.publish import target_lock

    target = tmp_path / "d"
    with target_lock(target, "tuned directory") as lock:
        assert lock == tmp_path / ".d.lock" and lock.exists()
        holder = subprocess.run([sys.executable, "-c", textwrap.dedent(f'''
            from pfdeploy.publish import target_lock
            from pfdeploy.errors import UserError
            try:
                with target_lock({str(target)!r}, "tuned directory", wait_s=0.3):
                    print("LOCKED")
            except UserError as exc:
                print("USERERROR", exc)
        ''')], capture_output=True, text=True, timeout=120)
        assert "USERERROR cannot write tuned directory" in holder.stdout, holder.stdout + holder.stderr
        assert "another pfdeploy process is writing it" in holder.stdout
    assert list(tmp_path.iterdir()) == []  # the lock file removed after


# ------------------------------------------------------------------------- 7. messages that misled

def test_a_symlink_loop_is_said_as_a_loop_not_not_found(tmp_path):
    from pfdeploy.exporters import load_artifact
    from pfdeploy.tune.artifact import read_tuned

    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    for fn in (read_tuned, load_artifact):
        with pytest.raises(UserError, match="loop of symbolic links") as exc:
            fn(tmp_path / "a")
        assert "not found" not in str(exc.value)
    line = one_line(invoke_cli("bench", "--tuned", str(tmp_path / "a"), "--store", str(tmp_path / "r.db")), 1)
    assert "loop of symbolic links" in line
    line = one_line(invoke_cli("ab", str(tmp_path / "a"), sys.executable, "--models", "resnet50",
                               "--store", str(tmp_path / "r.db")), 2)
    assert "loop of symbolic links" in line and "does not exist" not in line
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(UserError, match="is a symbolic link to .*missing, which does not exist"):
        read_tuned(tmp_path / "dangling")


def test_a_damaged_tuned_directory_is_not_told_to_re_export(tmp_path):
    from pfdeploy.tune.artifact import read_tuned

    t = write_torch(tmp_path / "t")
    rec = json.loads((t / "tuned.json").read_text())
    rec["artifact"] = {"file": "model.onnx", "sha256": "0" * 64, "manifest": "manifest.json", "request": None}
    (t / "tuned.json").write_text(json.dumps(rec))
    (t / "model.onnx").write_bytes(b"onnx")
    (t / "manifest.json").write_text('{"format": "pfdeploy-artifact", "version": 1}')  # incomplete
    with pytest.raises(UserError) as exc:
        read_tuned(t)
    assert "re-export" not in str(exc.value) and "pfdeploy tune" in str(exc.value)


# ------------------------------------------------------------------ the fresh battery (issue 32)

def test_an_output_directory_root_cannot_create_in_is_refused_before_any_work(tmp_path, monkeypatch):
    """`os.access` answers from permission bits; for root they say yes where creating a file still
    fails (sysfs, NFS with root_squash). The output checks create (and remove) an empty temporary
    file: a directory where that fails is refused before any work, in one line, and nothing is
    left in a directory where it works."""
    import tempfile

    from pfdeploy import outputs

    ok = tmp_path / "ok"
    ok.mkdir()
    assert outputs.check_output_file(ok / "r.json", "--json") == ok / "r.json"
    assert outputs.check_output_dir(ok / "site", "--out") == ok / "site"
    assert list(ok.iterdir()) == []  # the probe removed
    real = tempfile.mkstemp

    def refuse(*a, dir=None, **kw):  # what sysfs answers root
        if dir is not None and Path(dir) == ok:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(UserError, match="cannot be written .*Permission denied"):
        outputs.check_output_file(ok / "r.json", "--json")
    with pytest.raises(UserError, match="cannot be written"):
        outputs.check_output_dir(ok / "site", "--out")
    proc = invoke_cli("bench", "--models", MODEL, "--backends", "torch", "--json", str(ok / "r.json"),
                      "--store", str(tmp_path / "r.db"))
    line = one_line(proc, 1)
    assert "Permission denied" in line and not (tmp_path / "r.db").exists()  # nothing measured, no store


def test_small_usage_messages_from_the_fresh_battery(tmp_path, monkeypatch):
    store = ["--store", str(tmp_path / "r.db")]
    line = one_line(invoke_cli("bench", "--models", MODEL, "--backends", "torch", "--batch", "1,,2", *store), 2)
    assert "empty item" in line and "1,,2" in line
    line = one_line(invoke_cli("ab", sys.executable, sys.executable, "--models", MODEL, "--budget", "inf", *store), 2)
    assert "--budget must be a positive, finite number" in line and "max-time" not in line
    proc = invoke_cli("export", MODEL, "--to", "onnx", "--precision", "int8", "--calib-size", "0")
    assert proc.returncode == 2 and "--calib-size" in proc.stderr and "Traceback" not in proc.stderr

    import importlib

    from pfdeploy.store import open_store

    def unopenable(*a, **kw):  # the store's own message when SQLite cannot open the file
        raise UserError(f"results store {tmp_path / 's.db'}: unable to open database file")

    monkeypatch.setattr(importlib.import_module("pfdeploy.store.open").migrations, "state", unopenable)
    with pytest.raises(UserError) as exc:
        open_store(tmp_path / "s.db")
    assert str(exc.value).count("results store") == 1, str(exc.value)


@pytest.mark.parametrize("bad", [-200000, 10**30 // 10**6])
def test_claims_refuses_an_impossible_sample_in_a_run_file_as_compare_does(bad, tmp_path):
    """`claims` accepted a run file with a sample of -200000 ns that `compare` refuses (fresh battery)."""
    doc = synth_doc("head", 2)
    doc["results"][0]["samples_ns"][5] = bad
    f = tmp_path / "h.json"
    f.write_text(json.dumps(doc))
    line = one_line(invoke_cli("claims", str(f)), 1)
    assert "impossible latency sample" in line and "h.json" in line
