"""Output a person can read (issue 15): tables fitted to the terminal at fixed widths, warnings
summarised one line per kind, and one check in a real pseudo-terminal."""
from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from rich.console import Console
from rich.text import Text

from pfdeploy.digest import group_labels, short_label, summarize_not_measured, summarize_warnings, varying_fields
from pfdeploy.render import Col, fit_table, print_table
from pfdeploy.store import open_store
from test_store import result_row, run_meta

DEFAULT_MODELS = ("pf_resnet50_max", "pf_resnet50_hybrid", "resnet50", "dw_resnet50", "mobilenetv2_100")
DEFAULT_BACKENDS = ("torch", "onnxruntime", "openvino")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def term(width: int) -> Console:
    """A terminal of `width` columns, colours off, writing into a string."""
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, legacy_windows=False)


def text_of(console: Console) -> str:
    return console.file.getvalue()


def default_suite_rows(noisy=(("pf_resnet50_hybrid", "openvino"), ("resnet50", "torch"), ("resnet50", "openvino")),
                       max_time=(("resnet50", "openvino"),)):
    """Fifteen result rows shaped like a real default-suite run (numbers of realistic widths)."""
    rows = []
    for i, m in enumerate(DEFAULT_MODELS):
        for j, b in enumerate(DEFAULT_BACKENDS):
            p50 = 123.456 + 7.891 * i - 3.3 * j
            cv = 0.136 if (m, b) in noisy else 0.012
            warnings = []
            if (m, b) in noisy:
                warnings.append(f"noisy: coefficient of variation {cv:.1%} > 5%")
            if (m, b) in max_time:
                warnings.append("stopped at max-time (8 s measured) before the median's CI reached +-1.0% (it is +-1.4%)")
            rows.append(result_row(model=m, backend=b, p50_ms=p50, p50_ci_low_ms=p50 - 1.234,
                                   p50_ci_high_ms=p50 + 2.345, p90_ms=p50 * 1.1, p99_ms=p50 * 1.3, cv=cv,
                                   items_per_s=1000 / p50, n=1234, load_ms=1234.0, peak_rss_mb=1234.0,
                                   warnings=warnings))
    return rows


def p50_cell(r) -> str:
    return f"{r['p50_ms']:.3f} [{r['p50_ci_low_ms']:.3f}, {r['p50_ci_high_ms']:.3f}]"


def assert_readable(out: str, rows, width: int):
    """Every line within `width`, no ellipsis, every model/backend and p50 [CI] whole on a line."""
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "…" not in out and "..." not in out
    for r in rows:
        if r["status"] != "ok":
            continue
        assert any(r["model"] in ln and r["backend"] in ln and p50_cell(r) in ln for ln in lines), (r["model"], out)


# ----------------------------------------------------------------------------- the fitter

COLS = [Col("model"), Col("backend"), Col("precision", fold="{}"), Col("batch", right=True, fold="batch {}"),
        Col("p50 ms [95% CI]", right=True), Col("CV", 2, right=True), Col("n", 3, right=True),
        Col("p99 ms", 5, right=True), Col("notes", 4, wrap=True)]


def _rows(precisions=("fp32",)):
    out = []
    for p in precisions:
        out.append(("pf_resnet50_hybrid", "onnxruntime", p, 1, "123.456 [122.222, 125.801]", "13.6% !", 1234,
                    "160.493", "one two three four"))
        out.append(("mobilenetv2_100", "openvino", p, 1, "9.876 [9.800, 9.999]", "1.2%", 64, "10.000", "-"))
    return out


@pytest.mark.parametrize("width", [60, 80, 100, 120])
def test_fitted_table_never_cuts_a_name_or_number(width):
    c = term(width)
    f = print_table(c, COLS, _rows(), title="t")
    out = text_of(c)
    assert all(len(line) <= width for line in out.splitlines())
    assert "…" not in out
    if width >= 80:  # the always-shown columns fit: each value whole on one line
        for v in ("pf_resnet50_hybrid", "onnxruntime", "123.456 [122.222, 125.801]", "9.876 [9.800, 9.999]"):
            assert v in out
    else:  # too narrow even for those: cells wrap, nothing is cropped
        flat = re.sub(r"[│┃\s]", "", out)
        assert "pf_resnet50_hybrid" in flat.replace("\n", "") or "pf_resnet50_hybri" in out
        assert "more columns with --wide" in out
    assert set(f.shown) >= {"model", "backend", "p50 ms [95% CI]"}
    assert "precision" not in f.shown and "batch" not in f.shown  # constant: folded into the title
    assert f.folded == ["fp32", "batch 1"] and "fp32, batch 1" in out


def test_no_column_is_hidden_that_would_fit():
    cols = [c if not c.wrap else Col(c.header, c.priority) for c in COLS]  # fixed widths for this check
    rows = _rows()
    for w in range(60, 140):
        f = fit_table(cols, rows, w)
        assert {"model", "backend", "p50 ms [95% CI]"} <= set(f.shown)
        if w >= f.width:  # the always-shown columns fit
            for h in f.hidden:
                keep = [i for i, c in enumerate(cols) if c.header in f.shown or c.header == h]
                sub = fit_table([cols[i] for i in keep], [[r[i] for i in keep] for r in rows], None)
                assert sub.width > w, (w, h)  # adding it would overflow the terminal
    full = fit_table(cols, rows, 200)
    assert full.shown == ["model", "backend", "p50 ms [95% CI]", "CV", "n", "p99 ms", "notes"] and not full.hidden
    narrow = fit_table(cols, rows, 80)
    assert narrow.hidden and narrow.width <= 80


def test_varying_precision_stays_a_column_and_wide_shows_everything():
    f = fit_table(COLS, _rows(("fp32", "fp16")), 100)
    assert "precision" in f.shown and "batch" not in f.shown
    c = term(80)
    f = print_table(c, COLS, _rows(), wide=True)
    assert f.hidden == [] and f.folded == [] and "precision" in f.shown
    out = text_of(c)
    assert "one two three four" in out and "more columns" not in out
    assert max(len(line) for line in out.splitlines()) > 80  # wider than the terminal, not squeezed


def test_non_terminal_output_keeps_the_full_table():
    c = Console(file=io.StringIO(), width=80)  # a file or pipe: not a terminal
    f = print_table(c, COLS, _rows())
    assert f.hidden == [] and f.folded == []
    out = text_of(c)
    for v in ("precision", "batch", "p99 ms", "one two three four", "123.456 [122.222, 125.801]"):
        assert v in out
    assert "…" not in out


def test_cells_are_never_markup():
    c = term(100)
    print_table(c, [Col("tag")], [("feature/[wip] [/x] [bold]",)], title="[red]t[/red]")
    out = text_of(c)
    assert "feature/[wip] [/x] [bold]" in out and "[red]t[/red]" in out


# ----------------------------------------------------------------------------- warnings

def test_warnings_summarised_one_line_per_kind():
    rows = default_suite_rows()
    rows.append(result_row(model="pf_resnet50_max", backend="tensorrt", status="skipped",
                           error="TensorRT runs only on CUDA devices", p50_ms=None))
    rows.append(result_row(model="resnet50", backend="tensorrt", status="skipped",
                           error="TensorRT runs only on CUDA devices", p50_ms=None))
    rows[0]["warnings"] = ["torch uses 1 threads, not 2"]
    s = summarize_warnings(rows)
    assert [w["kind"] for w in s] == ["other", "noisy", "max_time"]
    noisy = s[1]
    assert noisy["count"] == 3 and noisy["of"] == 15
    assert noisy["text"] == ("3 of 15 cases noisy (CV > 5%): pf_resnet50_hybrid (openvino), resnet50 (torch, "
                             "openvino); rerun on a quieter machine or raise --min-time")
    assert noisy["cases"] == ["pf_resnet50_hybrid/openvino", "resnet50/torch", "resnet50/openvino"]
    assert [d["message"] for d in noisy["details"]] == ["noisy: coefficient of variation 13.6% > 5%"] * 3
    assert noisy["details"][0]["case"] == rows[4 * 0 + 5]["case_key"]  # pf_resnet50_hybrid/openvino
    mt = s[2]
    assert mt["count"] == 1 and "stopped at --max-time (8 s) before the median's CI reached +-1.0%" in mt["text"]
    assert "raise --max-time" in mt["text"] and mt["details"][0]["message"].endswith("(it is +-1.4%)")
    assert s[0]["text"] == "1 of 17 cases: torch uses 1 threads, not 2: pf_resnet50_max (torch)"
    nm = summarize_not_measured(rows)
    assert len(nm) == 1 and nm[0]["count"] == 2
    assert nm[0]["text"] == ("skipped: 2 of 17 cases: pf_resnet50_max (tensorrt), resnet50 (tensorrt): "
                             "TensorRT runs only on CUDA devices")


def test_short_labels_name_only_what_varies():
    rows = [result_row(model="resnet50", backend="torch", batch=1), result_row(model="resnet50", backend="torch",
                                                                                batch=8)]
    f = varying_fields(rows)
    assert f == ["model", "backend", "batch"]
    assert [short_label(r, f) for r in rows] == ["resnet50/torch/b1", "resnet50/torch/b8"]
    assert group_labels(rows, f) == "resnet50 (torch b1, torch b8)"


# ----------------------------------------------------------------------------- results CLI

@pytest.fixture
def default_store(tmp_path):
    url = str(tmp_path / "r.db")
    rows = default_suite_rows()
    with open_store(url) as store:
        run_id = store.begin_run(run_meta(tag="feature/[wip]", suite="default", machine_id="a319855c6ee54d71"))
        for r in rows:
            store.add_result(run_id, r, np.arange(100, dtype=np.int64), np.arange(100) // 10)
        store.finish_run(run_id, "finished")
    return url, rows


@pytest.mark.parametrize("width", [80, 100, 120])
def test_results_table_fits_the_terminal(default_store, width):
    from pfdeploy.cli.results import print_run_table
    from pfdeploy.store import open_store as open_

    url, rows = default_store
    with open_(url, create=False) as store:
        run = store.resolve_run("latest")
        stored = store.results(run["id"])
    c = term(width)
    print_run_table(c, run, stored)
    out = text_of(c)
    assert_readable(out, rows, width)
    assert "cpu, fp32, batch 1, 2 threads, latency, weights synthetic:0, all ok" in out
    assert "tag feature/[wip]" in out
    warn = [ln for ln in out.splitlines() if "warning:" in ln]
    assert len(warn) == 2 and "3 of 15 cases noisy" in warn[0]
    if width >= 100:
        assert "13.6% !" in out  # the CV flag fits at 100 columns


@pytest.mark.subprocess
def test_results_cli_in_a_pipe_keeps_every_column(default_store):
    from conftest import run_cli

    url, rows = default_store
    proc = run_cli("results", "--store", url)
    assert proc.returncode == 0, proc.stderr
    for col in ("device", "precision", "threads", "p99 ms", "load ms", "peak RSS MB"):
        assert col in proc.stdout
    assert "more columns" not in proc.stdout


def _run_in_pty(args, columns=100, rows=50, timeout=120.0) -> str:
    """Run the installed CLI in a real pseudo-terminal of `columns` x `rows`; its output, decoded."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    env.update(COLUMNS=str(columns), TERM="xterm-256color")
    proc = subprocess.Popen([sys.executable, "-m", "pfdeploy", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(timeout=30)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace")).replace("\r\n", "\n")


@pytest.mark.subprocess
def test_results_in_a_real_100_column_terminal(default_store):
    url, rows = default_store
    out = _run_in_pty(["results", "--store", url], columns=100)
    assert "┏" in out  # drawn for a terminal
    assert_readable(out, rows, 100)
    assert "more columns with --wide" in out
    wide = _run_in_pty(["results", "--store", url, "--wide"], columns=100)
    assert "peak RSS MB" in wide and "more columns" not in wide


# ----------------------------------------------------------------------------- bench summary and progress

def _bench_data(rows):
    """summary_data()'s shape for the default suite (what `pfdeploy bench` prints)."""
    from pfdeploy.digest import summarize_not_measured, summarize_warnings

    results = []
    for r in rows:
        results.append({**{k: r[k] for k in ("model", "family", "backend", "device", "precision", "batch", "scenario",
                                               "n", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p90_ms", "p99_ms",
                                               "items_per_s", "params", "macs", "cv", "peak_rss_mb", "warnings")},
                        "speedup": {"resnet50": 1.2345, "dw_resnet50": 0.9876}, "parity": "pass",
                        "comparisons": [{"baseline": "resnet50", "ratio": 1.2345, "ci_low": 1.2012, "ci_high": 1.2789,
                                         "paired": True},
                                        {"baseline": "dw_resnet50", "ratio": 0.9876, "ci_low": 0.9512, "ci_high": 1.0234,
                                         "paired": False}],
                        "noisy": r["cv"] > 0.05})
    return {"run_id": "0123456789abcdef", "status": "finished", "store": "/tmp/x.db", "wall_s": 300.0,
            "results": results, "not_measured": [], "warnings": summarize_warnings(rows),
            "not_measured_summary": summarize_not_measured(rows), "notes": ["speedup = baseline p50 / this p50"]}


@pytest.mark.parametrize("width", [80, 100])
def test_bench_summary_fits(width):
    from pfdeploy.cli.bench_summary import print_summary

    rows = default_suite_rows()
    c = term(width)
    print_summary(c, _bench_data(rows))
    out = text_of(c)
    assert_readable(out, rows, width)
    assert "cpu, fp32, batch 1, latency" in out
    if width == 100:
        assert "vs resnet50" in out and "1.23x [1.20, 1.28]" in out
    assert sum("warning:" in ln for ln in out.splitlines()) == 2


def test_bench_speedup_columns_follow_the_data():
    from pfdeploy.cli.bench_summary import summary_table

    data = _bench_data(default_suite_rows())
    for r in data["results"]:
        r["comparisons"] = [{"baseline": "deit_small_patch16_224", "ratio": 0.93, "ci_low": 0.91, "ci_high": 0.95,
                             "paired": False}]
    cols, rows, _ = summary_table(data)
    headers = [c.header for c in cols]
    assert "vs deit_small_patch16_224" in headers and "vs resnet50" not in headers
    assert rows[0][headers.index("vs deit_small_patch16_224")] == "~0.93x [0.91, 0.95]"  # issue 9's marker


@pytest.mark.parametrize("width", [80, 100, 160])
def test_progress_line_fits_and_keeps_the_numbers(width):
    from pfdeploy.cli.bench_progress import RichProgress

    c = term(width)
    p = RichProgress(c)
    p.task = p.bar.add_task("x", total=100.0, completed=37.0)
    for text in ("pf_resnet50_hybrid/onnxruntime (round 123, n=12345)",
                 "pf_resnet50_hybrid: openvino fp32: exporting pf_resnet50_hybrid to openvino fp32 (dynamic 1:8:64)"):
        p.bar.update(p.task, description=p._fit(text))
        c.print(p.bar.make_tasks_table(p.bar.tasks))
    lines = [ln for ln in text_of(c).splitlines() if ln.strip()]
    assert len(lines) == 2
    for ln in lines:
        assert len(ln) <= width
        assert re.search(r"37% +\d:\d\d:\d\d ETA +(\d:\d\d:\d\d|-:--:--)$", ln.rstrip()), ln
    assert "(round 123, n=12345)" in lines[0] and re.search(r"pf_re\S*hybrid/onnxruntime", lines[0]), lines[0]
    if width >= 100:
        assert "pf_resnet50_hybrid/onnxruntime (round 123, n=12345)" in lines[0]


def test_fit_progress_text():
    from pfdeploy.cli.bench_progress import fit_progress_text

    assert fit_progress_text("short (round 1, n=2)", 40) == "short (round 1, n=2)"
    s = fit_progress_text("pf_resnet50_hybrid / onnxruntime / fp32 / b1 (round 12, n=340)", 30)
    assert len(s) == 30 and s.endswith(" (round 12, n=340)") and "…" in s and s.startswith("pf_re")
    assert fit_progress_text("a" * 50, 10) == "aaaa…aaaaa"


def test_report_run_page_leads_warnings_with_one_line_per_kind(default_store, tmp_path):
    import html

    from pfdeploy.report import build_report

    url, rows = default_store
    with open_store(url, create=False) as store:
        build_report(tmp_path / "site", store=store)
    (page,) = [p for p in (tmp_path / "site").rglob("*.html") if "runs/" in str(p)]
    text = html.unescape(page.read_text(encoding="utf-8"))
    head = text.index('<ul class="warning-kinds">')
    assert "3 of 15 cases noisy (CV > 5%): pf_resnet50_hybrid (openvino), resnet50 (torch, openvino)" in text[head:]
    assert text[head:].count("noisy: coefficient of variation 13.6% > 5%") == 3  # every case's detail still listed


# ----------------------------------------------------------------------------- models and devices

@pytest.mark.parametrize("width", [80, 100])
def test_models_and_devices_fit(width, monkeypatch):
    import pfdeploy.render as render
    from pfdeploy.cli import main
    from pfdeploy.zoo import list_models

    c = term(width)
    monkeypatch.setattr(render, "console", c)
    assert main(["models"]) == 0
    out = text_of(c)
    assert all(len(ln) <= width for ln in out.splitlines()) and "…" not in out
    lines = out.splitlines()
    for s in list_models(None):
        assert any(f"│ {s.name} " in ln for ln in lines), s.name
    assert "input 224x224" in out  # shared by every model: in the title
    c.file = io.StringIO()
    assert main(["devices"]) == 0
    out = text_of(c)
    assert all(len(ln) <= width for ln in out.splitlines()) and "…" not in out
    assert "│ cpu " in out


def test_a_warning_every_case_has_is_not_followed_by_every_name():
    rows = default_suite_rows(noisy=[(m, b) for m in DEFAULT_MODELS for b in DEFAULT_BACKENDS], max_time=())
    (s,) = summarize_warnings(rows)
    assert s["text"] == "all 15 cases noisy (CV > 5%); rerun on a quieter machine or raise --min-time"
    assert len(s["cases"]) == 15 and len(s["details"]) == 15


def test_progress_shows_names_literally():
    from pfdeploy.cli.bench_progress import RichProgress

    c = term(100)
    p = RichProgress(c)
    p.task = p.bar.add_task("x", total=1.0)
    p.bar.update(p.task, description=p._fit("timm:odd[/x]name/onnxruntime (round 1, n=2)"))
    c.print(p.bar.make_tasks_table(p.bar.tasks))
    assert "timm:odd[/x]name/onnxruntime (round 1, n=2)" in text_of(c)


# ----------------------------------------------------------------------------- every verb that prints a table

DATA = os.path.join(os.path.dirname(__file__), "data")
MARKUP = re.compile(r"\[/\]|\[/?(?:bold|dim|italic|green|red|yellow|cyan|magenta|blue|white)\b[^\]]*\]")
WIDTHS = [80, 100, 160]


@pytest.fixture(scope="module")
def claims_store(tmp_path_factory):
    """A store holding one real default-suite run (samples and all) and a run tagged with markup."""
    import json

    url = str(tmp_path_factory.mktemp("width") / "claims.db")
    with open_store(url) as store:
        store.import_run(json.load(open(os.path.join(DATA, "claims-run.json"))))
        run_id = store.begin_run(run_meta(tag="feature/[wip] [/x]", suite="default", machine_id="a319855c6ee54d71"))
        for r in default_suite_rows():
            store.add_result(run_id, r, np.arange(100, dtype=np.int64), np.arange(100) // 10)
        store.finish_run(run_id, "finished")
    return url


def run_verb(monkeypatch, width: int, *argv: str) -> tuple[int, str]:
    """`pfdeploy ARGV` in this process, printing to a terminal of `width` columns (COLUMNS and
    rich's force_terminal, colours off); (exit code, what it printed)."""
    import pfdeploy.render as render
    from pfdeploy.cli import main

    monkeypatch.setenv("COLUMNS", str(width))
    c = Console(file=io.StringIO(), force_terminal=True, color_system=None, legacy_windows=False)
    assert c.width == width and c.is_terminal
    monkeypatch.setattr(render, "console", c)
    try:
        code = main(list(argv))
    except SystemExit as exc:  # verbs that exit 1 on a finding (fleet nodes with an unusable node)
        code = exc.code
    return code, text_of(c)


def assert_clean(out: str, width: int, whole=()):
    """No line wider than the terminal, no literal markup, no ellipsis (a cut name or number), and
    each of `whole` (names and numbers) in one piece on some line."""
    lines = out.splitlines()
    assert lines, "nothing printed"
    assert all(len(ln) <= width for ln in lines), max(lines, key=len)
    assert not MARKUP.search(out), MARKUP.search(out).group(0)
    assert "…" not in out and "..." not in out
    for w in whole:
        assert any(w in ln for ln in lines), (w, out)


def _stored(url):
    with open_store(url, create=False) as store:
        return [(run, store.results(run["id"])) for run in store.runs()]


@pytest.mark.parametrize("width", WIDTHS)
def test_width_models_devices_weights(width, monkeypatch):
    from pfdeploy.pretrained import catalogue
    from pfdeploy.zoo import list_models

    code, out = run_verb(monkeypatch, width, "models")
    assert code == 0
    assert_clean(out, width, [f"│ {s.name} " for s in list_models(None)])
    code, out = run_verb(monkeypatch, width, "devices")
    assert code == 0
    assert_clean(out, width, ["│ cpu "])
    code, out = run_verb(monkeypatch, width, "weights", "list")
    assert code == 0
    assert_clean(out, width, [f"│ {r['name']} " for r in catalogue()] + [f" {r['top1']:.1f} " for r in catalogue()])


@pytest.mark.parametrize("width", WIDTHS)
def test_width_results_and_store_info(width, monkeypatch, claims_store):
    code, out = run_verb(monkeypatch, width, "results", "--all", "--store", claims_store)
    assert code == 0
    whole = [r["model"] for _, rows in _stored(claims_store) for r in rows if r["status"] == "ok"]
    whole += [f"{r['p50_ms']:.3f}" for _, rows in _stored(claims_store) for r in rows if r["p50_ms"] is not None]
    assert_clean(out, width, whole + ["feature/[wip]", "[/x]"])  # user text shown literally
    code, out = run_verb(monkeypatch, width, "results", "--list", "--store", claims_store)
    assert code == 0
    assert_clean(out, width, [run["id"][:12] for run, _ in _stored(claims_store)])
    code, out = run_verb(monkeypatch, width, "store", "info", "--store", claims_store)
    assert code == 0
    assert_clean(out, width, ["schema", "revision", "needs_upgrade"])


@pytest.mark.parametrize("width", WIDTHS)
def test_width_bench_table_of_a_stored_run(width, claims_store):
    """The bench table (pfdeploy.cli.bench_summary) of a real stored default-suite run."""
    import json

    from pfdeploy.cli.bench_summary import outcome_of_run, print_summary, summary_data

    doc = json.load(open(os.path.join(DATA, "claims-run.json")))
    data = summary_data(outcome_of_run(doc, doc["run"]["id"], "finished", claims_store, 321.0))
    c = term(width)
    print_summary(c, data)
    out = text_of(c)
    whole = [r["model"] for r in data["results"]] + [f"{r['p50_ms']:.3f}" for r in data["results"]]
    assert_clean(out, width, whole)
    assert data["results"] and any(r["comparisons"] for r in data["results"])
    if width >= 100:
        from pfdeploy.labels import ratio_text

        assert "vs resnet50" in out
        assert_clean(out, width, [ratio_text(c) for r in data["results"] for c in r["comparisons"]
                                  if c["baseline"] == "resnet50" and c["ratio"] is not None])


@pytest.mark.parametrize("width", WIDTHS)
def test_width_claims(width, monkeypatch, claims_store):
    from pfdeploy.claims import check_claims, ratio_text
    from pfdeploy.report.build import load_docs

    code, out = run_verb(monkeypatch, width, "claims", "--store", claims_store)
    assert code == 0
    with open_store(claims_store, create=False) as store:
        data = check_claims(load_docs(store))
    shown = [v for v in data.verdicts if v.verdict != "not measured"]
    assert shown
    words = {("no, slower" if v.slower else v.verdict) for v in shown}
    assert_clean(out, width, [ratio_text(v) for v in shown] + [f"│ {w} " for w in words])


@pytest.mark.parametrize("width", WIDTHS)
def test_width_compare(width, monkeypatch):
    runs = os.path.join(DATA, "runs")
    import pfdeploy.compare as C

    base, head = os.path.join(runs, "ab-slow.json"), os.path.join(runs, "bb-base.json")
    code, out = run_verb(monkeypatch, width, "compare", base, head, "--fail-on", "never")
    assert code == 0
    cmp = C.compare_runs(C.load_run(base), C.load_run(head))
    whole = [f"│ {c.verdict} " for c in cmp.cases] + [c.model for c in cmp.cases if c.model]
    whole += [f"{(c.ratio - 1) * 100:+.1f}%" for c in cmp.cases if c.ratio is not None]
    assert_clean(out, width, whole)


@pytest.mark.parametrize("width", WIDTHS)
def test_width_fleet_nodes_with_ray_faked(width, monkeypatch):
    import pfdeploy.fleet as fleet
    from pfdeploy import __version__

    nodes = [
        fleet.Node("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "gpu-box-a", "10.0.0.5", 64.0, 8.0, "H100",
                   pfdeploy_version=__version__, python="3.11.7", cpu_model="AMD EPYC 9654 96-Core Processor",
                   physical_cores=96, logical_cores=192, memory_gib=1511.6, gpu_names=["NVIDIA H100 80GB HBM3"] * 8,
                   tools={"torch": "2.14.1", "onnxruntime": "1.32.0", "tensorrt": "10.13.2"},
                   machine_id="a319855c6ee54d71", machine_name="rack7-[a]"),
        fleet.Node("ff1b2c3d4e5f60718293a4b5c6d7e8f9", "cpu-box-b", "10.0.0.7", 16.0, 0.0,
                   pfdeploy_version="0.1.0", cpu_model="Intel(R) Xeon(R) Platinum 8480+", physical_cores=8,
                   logical_cores=16, machine_id="b419855c6ee54d72",
                   unusable=f"pfdeploy 0.1.0 there, {__version__} here: install the same version on every node "
                            "(docs/fleet.md)"),
    ]
    monkeypatch.setattr(fleet, "check_reachable_address", lambda address: address)
    monkeypatch.setattr(fleet, "connect", lambda address: object())
    monkeypatch.setattr(fleet, "probe_nodes", lambda ray: nodes)
    monkeypatch.setattr(fleet, "disconnect", lambda: None)
    code, out = run_verb(monkeypatch, width, "fleet", "nodes", "--address", "10.0.0.5:6379")
    assert code == 1  # an unusable node
    assert_clean(out, width, ["0a1b2c3d (rack7-[a])", "gpu-box-a", "cpu-box-b", "│ yes "])
    assert "no: pfdeploy 0.1.0" in out
