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
