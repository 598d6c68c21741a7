"""Each parameter-free model against its own baselines, and the paper's claims: the speedup
statistics (`bench.stats.speedup`), the verdict rule, the comparisons of `pfdeploy.claims`, the
bench summary's columns, `pfdeploy claims`, and the verdicts built from a committed real run file
(tests/data/claims-run.json: see docs/claims.md for how it was made)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pfdeploy import claims as K
from pfdeploy.bench.stats import paired_ratio, speedup
from test_compare import synth_doc, synth_samples, write_run

RUN_FILE = Path(__file__).parent / "data" / "claims-run.json"


# ----------------------------------------------------------------------------------------------
# speedup: orientation, pairing, CI
# ----------------------------------------------------------------------------------------------

def test_speedup_orientation_and_pairing():
    base = synth_samples(40.0, 1, drift=0.05)
    model = synth_samples(30.0, 2, drift=0.05)
    res = speedup(base[0], base[1], model[0], model[1])
    assert res["paired"] is True and res["rounds"] == 30
    assert res["ratio"] == pytest.approx(40 / 30, rel=0.03)  # above 1: the model is faster
    assert res["ci_low"] < res["ratio"] < res["ci_high"] and res["ci_low"] > 1
    assert res == {**paired_ratio(base[0], base[1], model[0], model[1]), "paired": True}
    flipped = speedup(model[0], model[1], base[0], base[1])
    assert flipped["ratio"] == pytest.approx(1 / res["ratio"], rel=0.02) and flipped["ci_high"] < 1


def test_speedup_unpaired_without_shared_rounds():
    base = synth_samples(40.0, 3)
    model = synth_samples(30.0, 4)
    for rounds in ((None, None), (base[1], None), (base[1], [r + 100 for r in model[1]])):
        res = speedup(base[0], rounds[0], model[0], rounds[1])
        assert res["paired"] is False and res["rounds"] == 0
        med = float(np.median(base[0])) / float(np.median(model[0]))
        assert res["ratio"] == pytest.approx(med)
        assert res["ci_low"] < med < res["ci_high"]
    same = speedup(base[0], None, base[0], None)
    assert same["ratio"] == 1.0 and same["ci_low"] < 1 < same["ci_high"]
    assert speedup([], None, model[0], None) is None and speedup(base[0], None, [], None) is None
    one = speedup([10], None, [5], None)
    assert one["ratio"] == 2.0 and one["ci_low"] is None
    with pytest.raises(ValueError):
        speedup(base[0], base[1][:-1], model[0], model[1])


def test_unpaired_ci_is_wider_than_paired_under_drift():
    """Pairing cancels the machine's drift shared by both cases' rounds (METHOD.md section 5)."""
    rng = np.random.default_rng(7)
    levels = np.exp(0.15 * rng.standard_normal(30))
    base, model, rounds = [], [], []
    for r, lv in enumerate(levels):
        base += [int(40e6 * lv * (1 + 0.01 * abs(rng.standard_normal()))) for _ in range(10)]
        model += [int(30e6 * lv * (1 + 0.01 * abs(rng.standard_normal()))) for _ in range(10)]
        rounds += [r] * 10
    p = speedup(base, rounds, model, rounds)
    u = speedup(base, None, model, None)
    assert p["paired"] and not u["paired"]
    assert (p["ci_high"] - p["ci_low"]) < (u["ci_high"] - u["ci_low"]) / 3


@pytest.mark.parametrize("lo,hi,expected", [
    (1.02, 1.10, ("yes", False)), (0.90, 0.95, ("no", True)), (0.95, 1.0, ("no", False)),
    (0.98, 1.01, ("inconclusive", False)), (1.0, 1.05, ("inconclusive", False)), (None, None, ("inconclusive", False)),
])
def test_verdict_rule(lo, hi, expected):
    assert K.verdict(lo, hi) == expected


# ----------------------------------------------------------------------------------------------
# comparisons: the baselines the spec names, family by family
# ----------------------------------------------------------------------------------------------

VIT_CASES = (("pf_vit_s", "parameter-free", "onnxruntime", 54.0),
             ("deit_small_patch16_224", "attention", "onnxruntime", 50.0),
             ("pf_resnet50_max", "parameter-free", "onnxruntime", 30.0),
             ("resnet50", "conv", "onnxruntime", 51.0),
             ("dw_resnet50", "depthwise", "onnxruntime", 30.0))
BASELINES = {"pf_vit_s": ["deit_small_patch16_224"],
             "pf_resnet50_max": ["resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0"]}


def _doc(tag="t", seed=1, machine_id="m-0001", cases=VIT_CASES, **kw):
    doc = synth_doc(tag, seed, machine_id=machine_id, cases=cases, **kw)
    for r in doc["results"]:
        r["baselines"] = BASELINES.get(r["model"], [])
    return doc


def test_comparisons_follow_the_named_baselines():
    comps = K.comparisons(K.results_of(_doc()))
    got = {(c.model, c.baseline): c for c in comps}
    assert set(got) == {("pf_vit_s", "deit_small_patch16_224"), ("pf_resnet50_max", "resnet50"),
                        ("pf_resnet50_max", "dw_resnet50"), ("pf_resnet50_max", "mobilenetv2_100"),
                        ("pf_resnet50_max", "efficientnet_b0")}
    vit = got[("pf_vit_s", "deit_small_patch16_224")]
    assert vit.ratio == pytest.approx(50 / 54, rel=0.03) and vit.verdict == "no" and vit.slower
    assert vit.paired and vit.rounds == 30
    assert vit.model_params == 14_200_000 and vit.baseline_params == 25_600_000 and vit.baseline_macs
    assert got[("pf_resnet50_max", "resnet50")].verdict == "yes"
    assert got[("pf_resnet50_max", "dw_resnet50")].verdict == "inconclusive"  # same median
    mob = got[("pf_resnet50_max", "mobilenetv2_100")]
    assert mob.verdict == "not measured" and mob.ratio is None and "not in this run" in mob.reason
    # the JSON of a comparison (`pfdeploy bench --json`'s "comparisons") keeps its keys
    assert list(vit.to_dict()) == ["model", "baseline", "device", "backend", "precision", "batch", "threads",
                                   "scenario", "model_p50_ms", "model_params", "model_macs", "baseline_p50_ms",
                                   "baseline_params", "baseline_macs", "ratio", "ci_low", "ci_high", "paired",
                                   "rounds", "verdict", "slower", "reason"]
    assert vit.to_dict()["model_p50_ms"] == vit.model_result.p50_ms and json.dumps(mob.to_dict())


def test_unpaired_and_sample_less_comparisons_are_marked():
    doc = _doc()
    rows = {r["model"]: r for r in doc["results"]}
    rows["deit_small_patch16_224"]["sample_rounds"] = [k + 100 for k in rows["deit_small_patch16_224"]["sample_rounds"]]
    rows["resnet50"]["samples_ns"], rows["resnet50"]["sample_rounds"] = [], None  # a summary without samples
    got = {(c.model, c.baseline): c for c in K.comparisons(K.results_of(doc))}
    vit = got[("pf_vit_s", "deit_small_patch16_224")]
    assert not vit.paired and vit.ci_low is not None and K.ratio_text(vit).startswith("~0.9")
    assert vit.text == K.ratio_text(vit.to_dict())
    r50 = got[("pf_resnet50_max", "resnet50")]
    assert r50.ratio == pytest.approx(rows["resnet50"]["p50_ms"] / rows["pf_resnet50_max"]["p50_ms"])
    assert r50.ci_low is None and r50.verdict == "inconclusive" and K.ratio_text(r50) == f"~{r50.ratio:.2f}x"


def test_comparisons_never_cross_configurations():
    doc = _doc()
    for r in doc["results"]:
        if r["model"] == "deit_small_patch16_224":
            r["precision"] = "fp16"
    vit = [c for c in K.comparisons(K.results_of(doc)) if c.model == "pf_vit_s"]
    assert [c.verdict for c in vit] == ["not measured"]


def test_rows_without_baselines_fall_back_to_the_zoo():
    pytest.importorskip("timm")
    doc = synth_doc("old", 1, cases=VIT_CASES)  # an older run file: rows carry no "baselines"
    assert {(c.model, c.baseline) for c in K.comparisons(K.results_of(doc)) if c.ratio is not None} == {
        ("pf_vit_s", "deit_small_patch16_224"), ("pf_resnet50_max", "resnet50"), ("pf_resnet50_max", "dw_resnet50")}


def test_claims_name_zoo_models_and_the_release_figures():
    pytest.importorskip("timm")
    from pfdeploy.zoo import get_spec

    for c in K.CLAIMS:
        model, base = get_spec(c.model), get_spec(c.baseline)
        assert model.family == "parameter-free" and c.baseline in model.baselines, c.id
        assert c.release_model_ms == model.published.gpu_ms, c.id
        if c.release_baseline_ms is not None:
            assert c.release_baseline_ms == base.published.gpu_ms, c.id
        if model.published.throughput:
            assert model.published.throughput.replace("/", " / ") in c.release, c.id


# ----------------------------------------------------------------------------------------------
# check_claims over a store's runs
# ----------------------------------------------------------------------------------------------

def test_check_claims_per_machine_and_configuration():
    old = _doc("old", 1, started_at="2026-11-26T05:00:00+00:00", factor={"pf_vit_s": 0.8})  # ViT faster then
    new = _doc("new", 2, started_at="2026-11-27T05:00:00+00:00")
    other = _doc("other", 3, machine_id="m-0002", cases=VIT_CASES[:2], precision="fp16")
    data = K.check_claims([old, other, new])
    by = {(v.claim, v.machine_id, v.precision): v for v in data.verdicts}
    assert set(data.machines) == {"m-0001", "m-0002"}
    # the newest run decides
    vit = by[("vits-vs-deits", "m-0001", "fp32")]
    assert vit.verdict == "no" and vit.slower and vit.run_tag == "new"
    assert K.verdict_text(vit).startswith("no, slower (0.9")
    assert by[("r50max-vs-r50", "m-0001", "fp32")].verdict == "yes"
    assert by[("r50max-vs-dw", "m-0001", "fp32")].verdict == "inconclusive"
    # not measured: the hybrid and PiT were never run; machine 2 only ran the ViT pair in fp16
    hyb = by[("r50hybrid-vs-r50", "m-0001", "fp32")]
    assert hyb.verdict == "not measured" and hyb.reason == "pf_resnet50_hybrid not measured here"
    assert by[("pits-vs-pits", "m-0001", "fp32")].reason == "pf_pit_s and pit_s_224 not measured here"
    assert by[("vits-vs-deits", "m-0002", "fp16")].verdict == "no"
    assert by[("r50max-vs-r50", "m-0002", "fp16")].verdict == "not measured"
    assert ("vits-vs-deits", "m-0002", "fp32") not in by  # machine 2 measured nothing in fp32
    assert len(data.verdicts) == len(K.CLAIMS) * 2
    doc = json.loads(json.dumps(data.to_dict()))
    assert list(doc) == ["rule", "orientation", "claims", "machines", "verdicts"]
    v = next(x for x in doc["verdicts"] if (x["claim"], x["machine_id"], x["precision"]) == ("vits-vs-deits", "m-0001",
                                                                                           "fp32"))
    assert list(v)[:3] == ["claim", "statement", "machine_id"] and list(v)[-3:] == ["run_id", "run_tag", "started_at"]
    assert v["run_tag"] == "new" and v["model_p50_ms"] == vit.model_p50_ms and v["ratio"] == vit.ratio


def test_models_in_different_runs_are_not_paired():
    a = _doc("a", 1, cases=VIT_CASES[:1])
    b = _doc("b", 2, cases=VIT_CASES[1:2])
    v = [x for x in K.check_claims([a, b]).verdicts if x.claim == "vits-vs-deits"][0]
    assert v.verdict == "not measured" and v.reason == "never measured in the same run"


# ----------------------------------------------------------------------------------------------
# the committed real run file
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_doc():
    from pfdeploy.store import read_run_file

    return read_run_file(RUN_FILE)


def _round_medians(row):
    s, r = np.asarray(row["samples_ns"], float), np.asarray(row["sample_rounds"])
    return {int(k): float(np.median(s[r == k])) for k in np.unique(r)}


def test_verdicts_from_the_committed_run_file(run_doc):
    rows = {r["model"]: r for r in run_doc["results"] if r["status"] == "ok"}
    assert {"pf_vit_s", "deit_small_patch16_224"} <= set(rows)
    assert rows["pf_vit_s"]["baselines"] == ["deit_small_patch16_224"]  # recorded by the engine
    data = K.check_claims([run_doc])
    mid = run_doc["run"]["machine_id"]
    vit = [v for v in data.verdicts if v.claim == "vits-vs-deits"]
    assert len(vit) == 1 and vit[0].machine_id == mid and vit[0].backend == "onnxruntime"
    vit = vit[0]
    # recomputed here from the raw samples: median over shared rounds of deit / pf_vit_s
    b, m = _round_medians(rows["deit_small_patch16_224"]), _round_medians(rows["pf_vit_s"])
    shared = sorted(set(b) & set(m))
    assert vit.paired and vit.rounds == len(shared) >= 2
    assert vit.ratio == pytest.approx(float(np.median([b[k] / m[k] for k in shared])))
    assert vit.ci_low <= vit.ratio <= vit.ci_high
    assert (vit.verdict, vit.slower) == K.verdict(vit.ci_low, vit.ci_high)
    assert vit.verdict != "not measured" and vit.run_id == run_doc["run"]["id"]
    assert vit.model_params == rows["pf_vit_s"]["params"] and vit.baseline_macs == rows["deit_small_patch16_224"]["macs"]
    others = {v.claim: v for v in data.verdicts}
    assert others["pits-vs-pits"].verdict == "not measured"
    assert others["r50hybrid-vs-r50"].reason == "pf_resnet50_hybrid not measured here"
    if "pf_resnet50_max" in rows and "resnet50" in rows:
        assert others["r50max-vs-r50"].verdict != "not measured"


def test_claims_cli_and_report_carry_the_same_verdicts(run_doc, tmp_path, capsys):
    from pfdeploy.cli import main
    from pfdeploy.report import build_report

    rc = main(["claims", str(RUN_FILE), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    cli = json.loads(out)
    expected = json.loads(json.dumps(K.check_claims([run_doc]).to_dict()))
    assert cli["verdicts"] == expected["verdicts"]

    rc = main(["claims", str(RUN_FILE)])
    text = capsys.readouterr().out
    assert rc == 0 and "ViT-S-max is faster than DeiT-S" in text
    vit = [v for v in cli["verdicts"] if v["claim"] == "vits-vs-deits"][0]
    assert K.ratio_text(vit) in text

    site = build_report(tmp_path / "site", docs=[run_doc])
    assert json.loads((site.out / "claims.json").read_text())["verdicts"] == cli["verdicts"]
    index = (site.out / "index.html").read_text()
    assert index.index('id="claims"') < index.index('class="machine"')  # the overview leads with them
    assert K.ratio_text(vit) in index and "ViT-S-max is faster than DeiT-S" in index
    run_page = next((site.out / "runs").glob("*.html")).read_text()
    assert 'id="comparisons"' in run_page and K.ratio_text(vit) in run_page


def test_claims_cli_reads_the_store(tmp_path, capsys):
    from pfdeploy.cli import main
    from pfdeploy.store import open_store

    db = tmp_path / "r.db"
    store = open_store(db)
    write_run(store, _doc("new", 2))
    store.close()
    rc = main(["claims", "--store", str(db)])
    text = capsys.readouterr().out
    assert rc == 0 and "no, slower" in text and "not measured on this machine" in text
    rc = main(["claims", "--store", str(db), "--all", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and {v["verdict"] for v in data["verdicts"]} == {"yes", "no", "inconclusive", "not measured"}


def test_claims_cli_errors_are_one_line(tmp_path, capsys):
    from pfdeploy.cli import main
    from pfdeploy.store import open_store

    rc = main(["claims", "--store", str(tmp_path / "missing.db")])
    err = capsys.readouterr().err
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    open_store(tmp_path / "empty.db").close()
    rc = main(["claims", "--store", str(tmp_path / "empty.db")])
    err = capsys.readouterr().err
    assert rc == 1 and "no runs yet" in err and len(err.strip().splitlines()) == 1
    rc = main(["claims", str(tmp_path / "nope.json")])
    err = capsys.readouterr().err
    assert rc != 0 and "does not exist" in err


# ----------------------------------------------------------------------------------------------
# the bench table and JSON summary
# ----------------------------------------------------------------------------------------------

def test_bench_summary_compares_each_pf_model_with_its_baselines():
    from pfdeploy.bench.config import CaseSpec
    from pfdeploy.bench.engine import CaseResult, Outcome
    from pfdeploy.result import Result
    from pfdeploy.cli.bench_summary import print_summary, speedup_columns, summary_data
    from rich.console import Console

    doc = _doc()
    results = []
    for r in doc["results"]:
        spec = CaseSpec(model=r["model"], backend=r["backend"], threads=r["threads"])
        row = dict(r, p99_ms=None, peak_rss_mb=None, parity={"status": "reference"})
        results.append(CaseResult(spec, Result.from_row(row)))
    data = summary_data(Outcome("run1", "finished", results, "sqlite:///x.db", 1.0))
    rows = {r["model"]: r for r in data["results"]}
    vit = rows["pf_vit_s"]
    assert list(vit["speedup"]) == ["deit_small_patch16_224"]
    c = vit["comparisons"][0]
    assert c["baseline"] == "deit_small_patch16_224" and c["ci_low"] <= c["ratio"] <= c["ci_high"] and c["paired"]
    assert rows["pf_resnet50_max"]["speedup"]["mobilenetv2_100"] is None
    assert rows["resnet50"]["comparisons"] == []
    assert sorted(speedup_columns(data["results"])) == ["deit_small_patch16_224", "dw_resnet50", "resnet50"]
    console = Console(width=400, record=True)
    print_summary(console, data)
    text = console.export_text()
    assert "vs deit_small_patch16_224" in text and "vs resnet50" in text and "vs mobilenetv2_100" not in text
    assert K.ratio_text(c) in text
    json.dumps(data)
