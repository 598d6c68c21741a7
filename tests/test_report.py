"""`pfdeploy report`: the static site built from a store of synthetic runs (written through the
store API): pages, charts, escaping of everything that comes from users, atomic replacement,
and the CLI. The real-browser test is test_report_browser.py."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from pfdeploy.errors import UserError
from pfdeploy.report import build_report
from pfdeploy.store import open_store
from test_compare import CASES, synth_doc, write_run

EVIL_TAG = "<script>alert(1)</script>"
EVIL_MODEL = "pf_x<img src=x onerror=alert(2)>"
EVIL_ERROR = "RuntimeError: </script><script>alert(3)</script> & more"
EXTRA = (("mobilenetv2_100", "depthwise", "onnxruntime", 8.0),
         ("pf_resnet50_max", "parameter-free", "openvino", 25.0),
         ("resnet50", "conv", "openvino", 33.0))
T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)


def make_store(path: Path, n_runs: int = 4, slow_from: int = 2) -> tuple:
    """A store with `n_runs` runs of CASES+EXTRA on one machine; resnet50 is 12% slower from run
    `slow_from` on; the last run is tagged EVIL_TAG, has a failed case with EVIL_ERROR and a
    case whose model name is EVIL_MODEL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(path)
    ids = []
    for i in range(n_runs):
        last = i == n_runs - 1
        cases = CASES + EXTRA + ((EVIL_MODEL, "parameter-free", "onnxruntime", 12.0),)
        doc = synth_doc(EVIL_TAG if last else f"nightly-{i}", 50 + i, cases=cases,
                        factor={"resnet50": 1.12} if i >= slow_from else 1.0, commit=f"{i:02d}c0ffee{i:02d}" * 3)
        if last:
            failed = doc["results"][2]  # dw_resnet50 onnxruntime
            failed.update(status="failed", error=EVIL_ERROR, samples_ns=[], sample_rounds=None, p50_ms=None,
                          p50_ci_low_ms=None, p50_ci_high_ms=None)
        ids.append(write_run(store, doc, started_at=T0 + dt.timedelta(hours=i)))
    return store, ids


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store, ids = make_store(root / "results.db")
    summary = build_report(root / "site", store=store)
    return summary, ids, root


def _pages(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in out.rglob("*.html")}


def test_site_layout(site):
    summary, ids, _ = site
    out = summary.out
    pages = _pages(out)
    assert {"index.html", "history.html", "runs.html"} <= set(pages)
    assert {f"runs/{i}.html" for i in ids} <= set(pages)
    assert (out / "assets" / "report.css").is_file() and (out / "assets" / "report.js").is_file()
    assert summary.runs == 4 and summary.sections == 1
    assert summary.cases == len(CASES) + len(EXTRA) + 1
    assert not [p for p in out.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]  # no temp dirs left


def test_nothing_is_fetched_from_the_network(site):
    for name, html in _pages(site[0].out).items():
        for attr, url in re.findall(r'\b(src|href)="([^"]*)"', html):
            assert not re.match(r"^(https?:)?//", url), (name, url)
        assert "@import" not in html
    css = (site[0].out / "assets" / "report.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_user_strings_are_escaped_everywhere(site):
    pages = _pages(site[0].out)
    for name, html in pages.items():
        assert EVIL_TAG not in html, name
        assert "<img src=x" not in html, name
        assert "<script>alert(3)" not in html, name
        # the only script elements are the report's own
        for tag in re.findall(r"<script[^>]*>", html):
            assert tag in ('<script type="application/json" id="pfdeploy-data">', '<script src="assets/report.js">'), tag
    index = pages["index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index          # the tag, as text
    assert "pf_x&lt;img src=x onerror=alert(2)&gt;" in index          # the model, as text
    run_page = pages[f"runs/{site[1][-1]}.html"]
    assert "RuntimeError: &lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt; &amp; more" in run_page


def test_json_in_script_cannot_close_the_element(site):
    html = _pages(site[0].out)["history.html"]
    m = re.search(r'<script type="application/json" id="pfdeploy-data">(.*?)</script>', html, re.S)
    blob = m.group(1)
    assert "<" not in blob and ">" not in blob
    data = json.loads(blob)
    assert EVIL_MODEL in {c["model"] for c in data["cases"]}  # round-trips intact
    assert data["filters"] == ["machine", "device", "backend", "model", "precision"]
    assert len(data["cases"]) == site[0].cases


def test_overview_chart_and_speedup_table(site):
    html = _pages(site[0].out)["index.html"]
    svg = re.search(r'<svg[^>]*class="chart bar-chart".*?</svg>', html, re.S).group(0)
    bars = re.findall(r'<rect class="bar" data-group="([^"]*)" data-series="([^"]*)"', svg)
    # every ok case of the latest run is a bar; the failed dw_resnet50/onnxruntime is not
    assert ("dw_resnet50", "onnxruntime") not in bars
    assert ("resnet50", "openvino") in bars and ("pf_resnet50_max", "onnxruntime") in bars
    assert len(bars) == len(CASES) + len(EXTRA) + 1 - 1
    assert svg.count('class="errbar"') == len(bars)
    assert 'font-weight="bold"' in svg  # parameter-free models stand out
    # speedup of pf_resnet50_max against resnet50 (40 ms * 1.12 vs 30 ms), from paired rounds
    row = re.search(r'<tr class="pf">\s*<td title="parameter-free[^"]*">pf_resnet50_max</td><td>onnxruntime</td>(.*?)</tr>',
                    html, re.S).group(1)
    speedups = [float(x) for x in re.findall(r">(\d+\.\d+)×<", row)]
    assert any(abs(s - 40 * 1.12 / 30) < 0.05 for s in speedups), speedups
    assert "paired rounds" in row
    assert 'class="parity ok"' in html and "14.20" in html  # parity status and params (M)


def test_history_markers_follow_compare(site):
    html = _pages(site[0].out)["history.html"]
    sections = dict(re.findall(r'<section class="case" id="(case-\d+)"(.*?)</section>', html, re.S))
    regressed = [k for k, s in sections.items() if 'class="marker regression"' in s]
    assert len(regressed) == 2  # resnet50 on onnxruntime and openvino, once each
    for k in regressed:
        assert 'data-model="resnet50"' in sections[k]
        assert sections[k].count('class="marker regression"') == 1
    failed = [k for k, s in sections.items() if 'class="marker failed"' in s]
    assert len(failed) == 1 and 'data-model="dw_resnet50"' in sections[failed[0]]
    assert all(s.count('class="band"') >= 1 for s in sections.values())


def test_run_page_shows_environment_manifests_and_failures(site):
    html = _pages(site[0].out)[f"runs/{site[1][-1]}.html"]
    assert 'id="failures"' in html and "dw_resnet50" in html
    assert "Synthetic CPU" in html and "min_time" in html  # machine and config
    assert '"exporter": "onnx"' in html.replace("&#34;", '"')  # artifact manifest
    assert "abababababababab" in html  # artifact sha256


def test_rebuild_replaces_the_previous_report(tmp_path):
    store, _ = make_store(tmp_path / "db" / "r.db", n_runs=2)
    out = tmp_path / "site"
    build_report(out, store=store)
    (out / "stale.html").write_text("old")
    build_report(out, store=store)
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "site"]


def test_a_failed_build_leaves_the_old_report_intact(tmp_path, monkeypatch):
    store, _ = make_store(tmp_path / "db" / "r.db", n_runs=2)
    out = tmp_path / "site"
    build_report(out, store=store)
    before = (out / "index.html").read_text()
    from pfdeploy.report import build as B

    monkeypatch.setattr(B.D, "run_summary", lambda doc: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_report(out, store=store)
    assert (out / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "site"]


def test_refuses_to_replace_a_directory_that_is_not_a_report(tmp_path):
    store, _ = make_store(tmp_path / "db" / "r.db", n_runs=1)
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="not a pfdeploy report"):
        build_report(precious, store=store)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_empty_store_is_a_user_error(tmp_path):
    (tmp_path / "db").mkdir()
    store = open_store(tmp_path / "db" / "empty.db")
    with pytest.raises(UserError, match="no runs"):
        build_report(tmp_path / "site", store=store)
    assert not (tmp_path / "site").exists()


def test_report_cli(tmp_path, cli):
    make_store(tmp_path / "db" / "r.db", n_runs=2)
    res = cli("report", "--store", str(tmp_path / "db" / "r.db"), "--out", str(tmp_path / "site"), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["runs"] == 2 and Path(info["index"]).is_file()
    missing = cli("report", "--store", str(tmp_path / "nope.db"), "--out", str(tmp_path / "site2"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "Traceback" not in missing.stderr
    assert "nope.db" in missing.stderr
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "site2").exists()


def test_parity_status_reads_the_exporters_manifest():
    from pfdeploy.report.data import parity_status

    manifest = {"passed": True, "precision": "fp32", "seed": 7_000_000, "batches": [1, 3],
                "per_batch": {"1": {"max_abs": 4.3e-05, "max_rel": 2e-05, "cosine_min": 0.99999, "top1": 1.0},
                              "3": {"max_abs": 5.0e-05, "max_rel": 1e-05, "cosine_min": 0.99998, "top1": 1.0}}}
    label, cls, detail = parity_status(manifest)
    assert (label, cls) == ("pass", "ok")
    assert "max_abs=5e-05" in detail and "cosine_min=1" in detail and "seed" not in detail
    assert parity_status({**manifest, "passed": False})[:2] == ("FAIL", "bad")
    assert parity_status({}) == ("-", "na", "")
    assert parity_status({"note": "no verdict"})[:2] == ("unverified", "na")
    assert parity_status({**manifest, "passed": False, "verdict": "inconclusive"})[:2] == ("inconclusive", "na")
    assert parity_status({"status": "reference", "note": "PyTorch is the reference"}) == (
        "reference", "na", "PyTorch is the reference")


def test_run_page_names_cannot_leave_the_runs_folder():
    from pfdeploy.report.data import slug

    for evil in ("../../etc/passwd", "..", "a/b", "x" * 300, "<script>"):
        s = slug(evil)
        assert "/" not in s and not s.startswith(".") and len(s) <= 100 and re.fullmatch(r"[A-Za-z0-9_.-]+", s)
    assert slug("../a") != slug("__a")  # sanitised names get a hash: no collisions
    assert slug("e617a6ae9ea84efdac9b23894ce41f28") == "e617a6ae9ea84efdac9b23894ce41f28"


def test_axis_ticks():
    from pfdeploy.report.svg import nice_range, nice_ticks

    t = nice_range(35.1, 35.9)
    assert t[0] <= 35.1 and t[-1] >= 35.9 and t == sorted(t) and len(t) <= 12
    assert nice_range(5.0, 5.0)[0] < 5.0 < nice_range(5.0, 5.0)[-1]
    assert nice_ticks(47.3)[0] == 0 and nice_ticks(47.3)[-1] >= 47.3
    assert nice_ticks(0) == [0.0, 1.0] and nice_range(float("nan"), 1) == [0.0, 1.0]


def test_rows_that_differ_by_variant_or_tune_status_show_them(tmp_path):
    """Issue 30 item 5: a tune run holds several rows of one model, runtime and precision that
    differ only by their runtime setting (variant) and fate; the run page and the overview show
    those columns so that no two rows look the same. A run whose rows do not differ by them shows
    neither column."""
    cases = (("pf_resnet50_max", "parameter-free", "openvino", 25.0),
             ("pf_resnet50_max", "parameter-free", "openvino", 22.0),
             ("pf_resnet50_max", "parameter-free", "openvino", 30.0),
             ("resnet50", "conv", "openvino", 33.0))
    doc = synth_doc("tune", 5, cases=cases)
    fates = (("ov-latency", "winner"), ("ov-async", "tied"), ("ov-bf16", "eliminated"), ("ov-latency", "winner"))
    for r, (variant, status) in zip(doc["results"], fates):
        r.update(variant=variant, case_key=f"{r['case_key']}/{variant}",
                 tune={"candidate": variant, "status": status, "runtime_winner": status != "eliminated"})
    with open_store(tmp_path / "r.db") as store:
        bench_id = write_run(store, synth_doc("bench", 6), started_at=T0)
        tune_id = write_run(store, doc, started_at=T0 + dt.timedelta(hours=1))
        site = build_report(tmp_path / "site", store=store)
    pages = _pages(site.out)
    run_page = pages[f"runs/{tune_id}.html"]
    results = re.search(r'<h2 id="results">.*?</table>', run_page, re.S).group(0)
    assert "<th>variant</th>" in results and ">tune</th>" in results
    rows = re.findall(r"<tr><td[^>]*>pf_resnet50_max</td>(.*?)</tr>", results, re.S)
    cells = {tuple(re.findall(r"<td[^>]*>([^<]*)</td>", row)[:3]) for row in rows}
    assert cells == {("openvino", "ov-latency", "winner"), ("openvino", "ov-async", "tied"),
                     ("openvino", "ov-bf16", "eliminated")}
    # the comparisons of each variant against the baseline: the variant tells them apart
    comps = re.search(r'<h2 id="comparisons">.*?</table>', run_page, re.S).group(0)
    assert "<th>variant</th>" in comps and all(v in comps for v in ("ov-latency", "ov-async", "ov-bf16"))
    # the overview of the latest run on this machine (the tune run, started last): one row per variant
    index = pages["index.html"]
    block = re.search(r'<table class="speedup">.*?</table>', index, re.S).group(0)
    assert "<th>variant</th>" in block and ">tune</th>" in block
    assert all(f"<td>{v}</td>" in block for v in ("ov-latency", "ov-async", "ov-bf16", "winner", "tied", "eliminated"))
    bars = re.findall(r'data-group="pf_resnet50_max" data-series="([^"]*)"', index)
    assert sorted(bars) == ["openvino · ov-async", "openvino · ov-bf16", "openvino · ov-latency"]
    # an ordinary run: no variant, no tune column
    bench = pages[f"runs/{bench_id}.html"]
    assert "<th>variant</th>" not in bench and ">tune</th>" not in bench


def test_report_builds_while_a_run_has_no_results(tmp_path):
    """Issue 32: a bench still running (or interrupted before its first case) is listed, not fatal."""
    from pfdeploy.report import build_report
    from pfdeploy.store import open_store

    store = open_store(tmp_path / "r.db")
    for tag in ("a", "b"):
        rid = store.begin_run({"tag": tag, "machine_id": "m1"})
        store.add_result(rid, {"model": "resnet50", "backend": "onnxruntime", "device": "cpu", "precision": "fp32",
                               "batch": 1, "threads": 1, "scenario": "latency", "status": "ok", "p50_ms": 1.0,
                               "weights": "synthetic:0"}, [1_000_000] * 20, list(range(20)))
        store.finish_run(rid, "finished")
    running = store.begin_run({"tag": "still-running", "machine_id": "m1"})  # no result yet
    interrupted = store.begin_run({"tag": "stopped", "machine_id": "m1"})
    store.finish_run(interrupted, "interrupted")
    summary = build_report(tmp_path / "site", store=store)
    assert summary.runs == 4
    runs = (tmp_path / "site" / "runs.html").read_text()
    assert "still-running" in runs and "stopped" in runs
    assert (tmp_path / "site" / "runs" / f"{running}.html").exists()


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_concurrent_reports_into_one_out_are_serialised(tmp_path):
    """Three `pfdeploy report --out OUT` processes at once (issue 32, item 6's lock on every
    published directory): each exits 0, OUT is one whole site, and nothing is left beside it
    (no `.tmp-*`, `.old-*` or lock file)."""
    import os
    import subprocess
    import sys

    store, _ = make_store(tmp_path / "results.db", n_runs=2)
    store.close()
    out = tmp_path / "site"
    env = {**os.environ, "PFDEPLOY_STORE": str(tmp_path / "results.db")}
    procs = [subprocess.Popen([sys.executable, "-m", "pfdeploy", "report", "--out", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0 and "Traceback" not in e, e[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db", "site"]
    assert (out / "index.html").is_file() and (out / "history.html").is_file()
