"""Issue 25's fault battery, the cases that held on the main of the time and must keep holding
(docs/reliability.md, "The fault battery"): closed pipes, odd locales and terminals, very long
tags, a full disk under the store, a truncated store, hostile run files, mirrors with schemes
pfdeploy cannot fetch. The cases that failed then are in tests/test_reliability_files.py; the
others named in the table are tested where their feature is (test names in the table)."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pfdeploy.errors import UserError

from test_compare import synth_doc, write_run

LONG_TAG = "x" * 10_000


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    from pfdeploy.store import open_store

    path = tmp_path_factory.mktemp("battery") / "r.db"
    with open_store(path) as s:
        write_run(s, synth_doc("base", 1))
        write_run(s, synth_doc(LONG_TAG, 2))
        write_run(s, synth_doc("<script>alert(1)</script> ünïcödé", 3))
    return path


def pfdeploy(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pfdeploy", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


def test_closed_pipe_is_a_quiet_exit(store):
    """`pfdeploy results ... | head -1`: the reader goes away; no traceback, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "pfdeploy", "results", "--store", str(store), "--all",
                             "--format", "csv", "--samples"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize("env", [
    {"LC_ALL": "C", "LANG": "C", "TERM": "dumb", "COLUMNS": "20"},
    {"LC_ALL": "POSIX", "LANG": "", "TERM": "xterm-256color", "COLUMNS": "300"},
    {"LC_ALL": "tr_TR.UTF-8", "NO_COLOR": "1", "COLUMNS": "80"},
    # an output encoding that cannot show the store's "ünïcödé" tag: escapes, not a UnicodeEncodeError
    {"PYTHONIOENCODING": "ascii", "LC_ALL": "C"},
], ids=["C-dumb-20", "posix-wide", "turkish-no-color", "ascii-output"])
@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_odd_locales_and_terminals(store, env):
    for args in (["results", "--list"], ["compare", "base", LONG_TAG, "--fail-on", "never"]):
        r = pfdeploy(*args, "--store", store, env=env)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr


def test_ten_thousand_character_tag_everywhere(store, tmp_path, capsys):
    from pfdeploy.cli import main

    assert main(["results", "--store", str(store), "--run", LONG_TAG]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert main(["results", "--store", str(store), "--list", "--format", "json"]) == 0
    assert LONG_TAG in {run["tag"] for run in json.loads(capsys.readouterr().out)}
    from pfdeploy.report.build import build_report
    from pfdeploy.store import open_store

    with open_store(store, create=False, readonly=True) as s:
        summary = build_report(tmp_path / "site", store=s)
    pages = "".join(p.read_text(encoding="utf-8") for p in summary.out.rglob("*.html"))
    assert LONG_TAG in pages and "<script>alert(1)" not in pages


DISK_FULL = textwrap.dedent('''
    import resource, signal, sys
    import numpy as np
    from pfdeploy.errors import UserError
    from pfdeploy.store import open_store
    from test_compare import synth_doc, write_run

    store = open_store(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like ENOSPC
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        for i in range(200):
            write_run(store, synth_doc(f"fill-{i}", 10 + i))
    except UserError as exc:
        print("USERERROR", exc)
        sys.exit(1)
    print("NOT FULL")
''')


def test_full_disk_under_the_store_is_one_line_and_keeps_the_runs(store, tmp_path):
    """A store that cannot grow (RLIMIT_FSIZE: the file system's answer to a full disk): the
    write fails as one UserError line, earlier runs are intact, the store still opens."""
    import shutil

    from pfdeploy.store import open_store

    db = tmp_path / "full.db"
    shutil.copyfile(store, db)
    script = tmp_path / "fill.py"
    script.write_text(DISK_FULL)
    tests = str(Path(__file__).parent)
    r = subprocess.run([sys.executable, str(script), str(db), str(db.stat().st_size + 64 * 1024)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])})
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.stdout, r.stderr[-2000:])
    assert "USERERROR results store" in r.stdout and "full" in r.stdout.lower(), r.stdout
    with open_store(db, create=False, readonly=True) as s:
        tags = {run["tag"] for run in s.runs()}
        assert {"base", LONG_TAG} <= tags
        assert s.integrity_check() == "ok"
        assert len(s.results(s.resolve_run("base")["id"])) == 3


def test_truncated_store_is_one_line(store, tmp_path):
    db = tmp_path / "cut.db"
    data = store.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    before = db.read_bytes()
    for args in (["results", "--run", "base"], ["results", "--list"], ["store", "info"]):
        r = pfdeploy(*args, "--store", db)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith("pfdeploy: error: ") and str(db) in lines[0], r.stderr
    assert db.read_bytes() == before


def _doc_file(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["results"][0].__setitem__("p50_ms", float("nan")), "NaN"),
    (lambda d: d["results"][0]["samples_ns"].__setitem__(0, float("inf")), "Infinity"),
    (None, "not valid JSON"),
])
def test_hostile_run_files_are_one_line(mutate, message, tmp_path):
    from pfdeploy.store import write_run_file

    base = write_run_file(synth_doc("base", 1), tmp_path / "base.json")
    if mutate is None:
        head = _doc_file(tmp_path, "head.json", "")  # empty
    else:
        doc = synth_doc("head", 2)
        mutate(doc)
        head = _doc_file(tmp_path, "head.json", json.dumps(doc, allow_nan=True))
        assert message in head.read_text()
    r = pfdeploy("compare", base, head)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("pfdeploy: error: ") and "head" in lines[0], r.stderr


def test_a_hundred_thousand_samples_compare(tmp_path):
    import numpy as np

    from pfdeploy.compare import compare_runs
    from pfdeploy.store import read_run_file, write_run_file

    rng = np.random.default_rng(0)
    docs = []
    for tag, seed in (("base", 1), ("head", 2)):
        doc = synth_doc(tag, seed)
        for res in doc["results"]:
            res["samples_ns"] = rng.integers(9_000_000, 11_000_000, 100_000).tolist()
            res["sample_rounds"] = (np.arange(100_000) // 1000).tolist()
        docs.append(read_run_file(write_run_file(doc, tmp_path / f"{tag}.json")))
    cmp = compare_runs(*docs, resamples=200)
    assert len(cmp.cases) == len(docs[0]["results"]) and all(c.verdict for c in cmp.cases)


@pytest.mark.parametrize("mirror", ["ftp://127.0.0.1:1/pflayer", "file:///nonexistent/pflayer"])
def test_mirrors_with_schemes_pfdeploy_cannot_fetch(mirror, tmp_path):
    r = pfdeploy("weights", "fetch", "resnet50_max",
                 env={"PFDEPLOY_WEIGHTS_MIRROR": mirror, "PFDEPLOY_CACHE_DIR": str(tmp_path / "cache")})
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("pfdeploy: error:")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and f"cannot download {mirror}/resnet50_max.pth" in lines[0]
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
