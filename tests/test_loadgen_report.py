"""Capacity runs read back (issue 31): `claims --at capacity` from the brackets, the report's
serving section (p99 against QPS as SVG, the capacity table), and the chart in a real browser."""
from __future__ import annotations

import os

import pytest

from pfdeploy.capacity import capacity_claims, curves
from pfdeploy.result import Result
from pfdeploy.report import build_report
from pfdeploy.store import open_store
from test_compare import synth_doc, write_run

CAPS = {"pf_resnet50_max": (20.0, 20.0, 23.0), "dw_resnet50": (12.0, 12.0, 13.5), "resnet50": (19.0, 19.0, 24.0)}


def capacity_doc(tag: str = "capacity", bound: float = 500.0) -> dict:
    cases = (("pf_resnet50_max", "parameter-free", "openvino", 50.0), ("dw_resnet50", "depthwise", "openvino", 80.0),
             ("resnet50", "conv", "openvino", 70.0))
    doc = synth_doc(tag, 7, cases=cases, scenario="capacity")
    for row in doc["results"]:
        cap, lo, hi = CAPS[row["model"]]
        row["baselines"] = ["resnet50", "dw_resnet50"] if row["family"] == "parameter-free" else []
        curve = [{"target_qps": q, "achieved_qps": q, "p50_ms": 60.0, "p99_ms": p99, "valid": p99 <= bound,
                  "process": 1} for q, p99 in ((0.7 * cap, 200.0), (lo, 450.0), (hi, 900.0), (1.2 * hi, 4000.0))]
        row["loadgen"] = {"scenario": "capacity", "latency_bound_ms": bound, "capacity_qps": cap,
                          "bracket_qps": [lo, hi], "saturated_qps": hi * 1.3, "p99_at_capacity_ms": 450.0,
                          "curve": curve, "processes": [], "validity": "VALID"}
    return doc


def test_claims_at_capacity_from_the_brackets():
    data = capacity_claims([capacity_doc()])
    got = {(c["model"], c["baseline"]): c for c in data["comparisons"]}
    assert set(got) == {("pf_resnet50_max", "dw_resnet50"), ("pf_resnet50_max", "resnet50")}
    dw = got["pf_resnet50_max", "dw_resnet50"]
    assert dw["ratio"] == pytest.approx(20 / 12) and dw["ci_low"] == pytest.approx(20 / 13.5)
    assert dw["verdict"] == "yes"  # the whole interval above 1
    r50 = got["pf_resnet50_max", "resnet50"]
    assert r50["ci_low"] < 1 < r50["ci_high"] and r50["verdict"] == "inconclusive"
    assert "capacity ratio" in data["rule"]


def test_claims_at_capacity_cli(cli, tmp_path):
    store = open_store(tmp_path / "r.db")
    write_run(store, capacity_doc())
    store.close()
    r = cli("claims", "--at", "capacity", "--store", str(tmp_path / "r.db"), "--wide")
    assert r.returncode == 0, r.stderr
    assert "pf_resnet50_max" in r.stdout and "dw_resnet50" in r.stdout and "yes" in r.stdout
    empty = open_store(tmp_path / "e.db")
    write_run(empty, synth_doc("latency", 1))
    empty.close()
    r = cli("claims", "--at", "capacity", "--store", str(tmp_path / "e.db"))
    assert r.returncode == 1 and "pfdeploy capacity" in r.stderr


def test_curves_and_the_serving_section_of_the_report(tmp_path):
    doc = capacity_doc()
    cs = curves([Result.from_row(r) for r in doc["results"]])
    assert len(cs) == 3 and all(len(c["points"]) == 4 for c in cs)
    store = open_store(tmp_path / "r.db")
    write_run(store, synth_doc("latency", 1))
    write_run(store, doc)
    out = build_report(tmp_path / "site", store=store).out
    store.close()
    html = (out / "index.html").read_text()
    assert 'id="serving"' in html and 'class="chart qps-chart"' in html
    assert html.count("<circle class=\"point valid\"") >= 6 and "point invalid" in html
    assert "bound 500 ms" in html and "table class=\"capacity\"" in html
    from pfdeploy.report.serving import serving_section

    older = capacity_doc("capacity-old")
    older["run"].update(id="older", started_at="2026-11-01T05:00:00+00:00")
    sec = serving_section([doc, older])
    pf = next(c for c in sec["capacities"] if c["model"] == "pf_resnet50_max")
    assert [h["run"] for h in pf["history"]] == ["older", doc["run"]["id"]]  # oldest first


@pytest.mark.browser
def test_the_serving_chart_in_chromium(tmp_path):
    from test_report_browser import CHROMIUM_ARGS, _chromium

    sync_api = pytest.importorskip("playwright.sync_api")
    exe = _chromium()
    store = open_store(tmp_path / "r.db")
    write_run(store, synth_doc("latency", 1))
    write_run(store, capacity_doc())
    out = build_report(tmp_path / "site", store=store).out
    store.close()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri())
        chart = page.locator("#serving svg.qps-chart").first
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200
        assert page.locator("#serving svg.qps-chart circle").count() == 12
        assert not errors
        keep = os.environ.get("PFDEPLOY_REPORT_SCREENSHOTS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            chart.screenshot(path=os.path.join(keep, "serving-chart.png"))
        b.close()


# ------------------------------------------------ compare and history of capacity runs (higher is better)

def _caps(doc: dict, caps: dict, run_id: str | None = None) -> dict:
    """`doc` with each model's capacity (value, low, high) replaced (a new run id when given)."""
    import copy

    out = copy.deepcopy(doc)
    if run_id:
        out["run"]["id"] = run_id
    for row in out["results"]:
        cap, lo, hi = caps[row["model"]]
        row["loadgen"] = {**row["loadgen"], "capacity_qps": cap, "bracket_qps": [lo, hi]}
    return out


def test_compare_of_capacity_runs_is_higher_is_better():
    from pfdeploy.compare import compare_runs

    base = capacity_doc()
    head = _caps(base, {"pf_resnet50_max": (14.0, 14.0, 15.0),     # serves 30% less: a regression
                        "dw_resnet50": (16.0, 16.0, 17.0),         # 33% more: an improvement
                        "resnet50": (19.5, 19.5, 23.0)}, run_id="head-run")  # within the brackets
    cmp = compare_runs(base, head)
    by = {c.model: c for c in cmp.cases}
    pf, dw, r50 = by["pf_resnet50_max"], by["dw_resnet50"], by["resnet50"]
    assert pf.metric == "capacity_qps" and pf.higher_is_better
    assert pf.ratio == pytest.approx(14 / 20) and pf.ci_low == pytest.approx(14 / 23) and pf.ci_high == pytest.approx(15 / 20)
    assert pf.verdict == "regression" and dw.verdict == "improvement"
    assert r50.verdict == "inconclusive" and "--tolerance" in r50.note   # brackets 20%+ wide
    assert cmp.tested == 0  # no sampling interval: outside the Bonferroni family and the shift
    assert (pf.base_capacity_qps, pf.head_capacity_qps) == (20.0, 14.0)
    # the same capacities again: nothing moved (a bracket narrower than the threshold: unchanged)
    tight = {m: (c, c, c * 1.02) for m, (c, _, _) in CAPS.items()}
    same = compare_runs(_caps(base, tight), _caps(base, tight, run_id="again"))
    assert {c.verdict for c in same.cases} == {"unchanged"}
    d = pf.to_dict()
    assert d["higher_is_better"] is True and d["metric"] == "capacity_qps"


def test_compare_of_capacity_runs_in_the_cli_table_and_markdown(cli, tmp_path):
    from pfdeploy.store import write_run_file

    base = write_run_file(capacity_doc(), tmp_path / "base.json")
    head = write_run_file(_caps(capacity_doc(), {"pf_resnet50_max": (14.0, 14.0, 15.0), "dw_resnet50": (12.0, 12.0, 13.5),
                                                 "resnet50": (19.0, 19.0, 24.0)}, run_id="head-run"),
                          tmp_path / "head.json")
    md = tmp_path / "cmp.md"
    r = cli("compare", str(base), str(head), "--markdown", str(md), "--wide", "--store", str(tmp_path / "none.db"))
    assert r.returncode == 1, r.stderr        # the capacity regression fails the gate
    assert "-30.0% QPS" in r.stdout and "20.000 QPS -> 14.000 QPS" in r.stdout
    text = md.read_text()
    assert "| 20.000 QPS | 14.000 QPS | -30.0% QPS |" in text and "higher is better" in text


def test_a_damaged_capacity_record_is_inconclusive_not_a_traceback():
    from pfdeploy.compare import compare_runs

    base = capacity_doc()
    head = _caps(base, {m: c for m, c in CAPS.items()}, run_id="head-run")
    head["results"][0]["loadgen"]["capacity_qps"] = "lots"
    head["results"][1]["loadgen"]["bracket_qps"] = [13.0, 9.0]  # high below low
    cmp = compare_runs(base, head)
    bad = [c for c in cmp.cases if c.verdict == "inconclusive" and "damaged" in c.note]
    assert len(bad) == 2


def test_history_of_capacity_runs_plots_the_capacity_with_its_bracket():
    from pfdeploy.report.data import history_cases

    first = capacity_doc()
    second = _caps(first, {"pf_resnet50_max": (14.0, 14.0, 15.0), "dw_resnet50": (12.0, 12.0, 13.5),
                           "resnet50": (19.0, 19.0, 24.0)}, run_id="second")
    second["run"]["started_at"] = "2026-11-28T05:00:00+00:00"
    cases = {c["meta"]["model"]: c for c in history_cases([first, second])}
    pf = cases["pf_resnet50_max"]
    assert [p["value"] for p in pf["points"]] == [20.0, 14.0]
    assert (pf["points"][1]["low"], pf["points"][1]["high"]) == (14.0, 15.0)
    assert pf["points"][1]["marker"] == "regression" and pf["regressions"] == 1
    assert "capacity (QPS)" in str(pf["chart"]) and "higher is better" in str(pf["chart"])
    assert "capacity 14.000 QPS" in pf["points"][1]["tip"]


def test_a_window_of_capacity_runs_pools_the_capacities():
    from pfdeploy.compare.window import pool_runs

    a = capacity_doc()
    b = _caps(a, {"pf_resnet50_max": (22.0, 22.0, 24.0), "dw_resnet50": (12.0, 12.0, 13.5),
                  "resnet50": (19.0, 19.0, 24.0)}, run_id="b")
    c = _caps(a, {"pf_resnet50_max": (18.0, 18.0, 21.0), "dw_resnet50": (12.0, 12.0, 13.5),
                  "resnet50": (19.0, 19.0, 24.0)}, run_id="c")
    pooled = {r.model: r for r in pool_runs([c, b, a], "w")["results"]}
    assert pooled["pf_resnet50_max"].capacity == (20.0, 18.0, 24.0)   # median, and every bracket's ends
