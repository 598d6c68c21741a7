"""`pfdeploy claims --at best` (issue 23 item 6): each parameter-free model against each of its
baselines at each one's best deployment, from the newest `pfdeploy tune` final run (suite
"tune-final") of a synthetic store: per runtime and across runtimes, the verdicts, the pairing
over the final rotation's shared rounds, the message without a tune run, the 100-column table,
the report section."""
from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from rich.console import Console

from pfdeploy import claims as K
from pfdeploy.store import open_store

ROUNDS, PER_ROUND, GENERATIONS = 30, 8, 3
BASELINES = {"pf_resnet50_max": ["resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0"],
             "pf_vit_s": ["deit_small_patch16_224"]}
FAMILY = {"pf_resnet50_max": "parameter-free", "resnet50": "conv", "dw_resnet50": "depthwise",
          "pf_vit_s": "parameter-free", "deit_small_patch16_224": "attention"}
# model -> runtime -> (precision, variant, median ms, default?, overall winner?): one winner per runtime.
# pf_resnet50_max is truly faster than resnet50 everywhere; on openvino it equals dw_resnet50 (same
# median); dw_resnet50's fastest deployment is on onnxruntime, pf_resnet50_max's on openvino. The ViT
# pair: the longest baseline name of the zoo (the table must still fit 100 columns).
WINNERS = {
    "pf_resnet50_max": {"onnxruntime": ("int8", "ort-int8-qdq", 10.0, False, False),
                        "openvino": ("int8", "ov-int8-async", 9.0, False, True)},
    "resnet50": {"onnxruntime": ("int8", "ort-int8-qdq", 16.0, False, False),
                 "openvino": ("bf16", "ov-latency-hint", 14.0, True, True)},
    "dw_resnet50": {"onnxruntime": ("int8", "ort-int8-qdq", 8.5, False, True),
                    "openvino": ("int8", "ov-int8-async", 9.0, False, False)},
    "pf_vit_s": {"onnxruntime": ("fp32", "ort-default", 20.0, True, True),
                 "openvino": ("bf16", "ov-bf16-latency-async", 21.0, False, False)},
    "deit_small_patch16_224": {"onnxruntime": ("fp32", "ort-default", 22.0, True, False),
                               "openvino": ("bf16", "ov-bf16-latency-async", 19.0, False, True)},
}
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


def _levels(seed: int) -> np.ndarray:
    """The machine's state in each round of the rotation: shared by every case (drift)."""
    return np.exp(0.08 * np.random.default_rng(seed).standard_normal(ROUNDS))


def tune_row(model: str, backend: str, precision: str, variant: str, ms: float, default: bool, overall: bool,
             levels: np.ndarray, seed: int, status: str = "winner") -> dict:
    """A row of a tune-final run: samples in every round of the one rotation (round ids shared by
    every case: paired), split over GENERATIONS worker-process generations."""
    rng = np.random.default_rng(seed)
    samples, rounds = [], []
    for r, lv in enumerate(levels):
        samples += [int(ms * 1e6 * lv * (1 + 0.01 * abs(x))) for x in rng.standard_normal(PER_ROUND)]
        rounds += [r] * PER_ROUND
    x = np.asarray(samples, float) / 1e6
    per = ROUNDS // GENERATIONS
    vs_default = None if default else {"ratio": 1.3, "ci_low": 1.2, "ci_high": 1.4, "paired": True, "rounds": 20,
                                       "processes": 3, "how": "paired, 20 rounds in 3 process generations"}
    return {"case_key": f"{model}/{backend}/{variant}/cpu/{precision}/b1", "model": model,
            "family": FAMILY.get(model, "conv"), "baselines": BASELINES.get(model, []),
            "weights": "synthetic:0", "backend": backend, "device": "cpu", "precision": precision, "batch": 1,
            "threads": 2, "scenario": "latency", "status": "ok", "error": None, "clock": "host",
            "params": 14_200_000 if model.startswith("pf_") else 25_600_000, "macs": 2_200_000_000,
            "variant": variant, "options": {"artifact": {}} if default else {"artifact": {"recipe": "x"}},
            "n": len(samples), "p50_ms": float(np.median(x)), "p50_ci_low_ms": float(np.median(x)) * 0.99,
            "p50_ci_high_ms": float(np.median(x)) * 1.01, "processes": GENERATIONS,
            "process_rounds": [list(range(g * per, (g + 1) * per)) for g in range(GENERATIONS)],
            "tune": {"candidate": variant, "default": default, "note": f"{variant} setting", "status": status,
                     "runtime_winner": True, "overall_winner": overall, "eliminated_by": None,
                     "eliminated_at": None, "elimination": None, "vs_default": vs_default, "tied_with": []},
            "samples_ns": samples, "sample_rounds": rounds}


def tune_final_doc(winners=WINNERS, seed: int = 1, machine_id: str = "m-0001", tag: str = "tune-1",
                   started_at: str = "2026-12-01T08:00:00+00:00") -> dict:
    levels = _levels(seed)
    rows = []
    for i, (model, per) in enumerate(winners.items()):
        for j, (backend, (precision, variant, ms, default, overall)) in enumerate(per.items()):
            rows.append(tune_row(model, backend, precision, variant, ms, default, overall, levels,
                                 seed * 1000 + 10 * i + j))
    run = {"id": f"tunefinal{seed:04d}{machine_id}"[:32], "tag": tag, "git_commit": "0123456789abcdef0123",
           "suite": K.TUNE_FINAL_SUITE, "suite_version": "1", "machine_id": machine_id, "status": "finished",
           "started_at": started_at, "machine": {"cpu": {"model": "Synthetic CPU", "logical_cores": 2},
                                                 "memory_gib": 8},
           "tools": {}, "config": {"tune": {"scenario": "latency"}}, "loadavg_before": [0.5, 0.5, 0.5]}
    return {"format": "pfdeploy-run", "version": 1, "run": run, "results": rows}


def write(store, doc: dict, started_at: dt.datetime) -> str:
    """Through the store API (begin_run, add_result, finish_run): extra fields ("tune", "variant",
    "options", "baselines", "process_rounds") come back in the row dict."""
    run = doc["run"]
    meta = {k: run[k] for k in ("tag", "git_commit", "suite", "suite_version", "machine_id", "machine", "tools",
                                "config", "loadavg_before")}
    run_id = store.begin_run({**meta, "started_at": started_at})
    for row in doc["results"]:
        fields = {k: v for k, v in row.items() if k not in ("samples_ns", "sample_rounds")}
        store.add_result(run_id, fields, row["samples_ns"], row["sample_rounds"])
    store.finish_run(run_id, "finished")
    return run_id


@pytest.fixture(scope="module")
def best_store(tmp_path_factory):
    """An older tune-final run (pf_resnet50_max slower then), the newest one (WINNERS), and an
    ordinary bench run after both (ignored by --at best)."""
    from test_compare import synth_doc, write_run

    db = tmp_path_factory.mktemp("best") / "r.db"
    slow = {m: {b: (p, v, ms * (2.0 if m.startswith("pf_") else 1.0), d, o) for b, (p, v, ms, d, o) in per.items()}
            for m, per in WINNERS.items()}
    with open_store(db) as store:
        write(store, tune_final_doc(slow, seed=7, tag="tune-old"), T0)
        write(store, tune_final_doc(seed=1, tag="tune-new"), T0 + dt.timedelta(hours=1))
        write_run(store, synth_doc("bench", 3), started_at=T0 + dt.timedelta(hours=2))
    return str(db)


def _by(data: K.BestClaims) -> dict:
    return {(c.kind, c.model, c.baseline, c.runtime): c for c in data.comparisons}


def _by_json(data: dict) -> dict:
    """The same of the JSON (`pfdeploy claims --at best --json`)."""
    return {(c["kind"], c["model"], c["baseline"], c["runtime"]): c for c in data["comparisons"]}


# ----------------------------------------------------------------------------------------------
# the comparisons
# ----------------------------------------------------------------------------------------------

def test_per_runtime_verdicts_and_pairing():
    data = K.best_claims([tune_final_doc()])
    by = _by(data)
    ort = by[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")]
    assert ort.verdict == "yes" and ort.paired and ort.rounds == ROUNDS and ort.processes == GENERATIONS
    assert ort.ratio == pytest.approx(16 / 10, rel=0.02) and 1 < ort.ci_low < ort.ratio < ort.ci_high
    assert "3 process generations" in ort.how and not ort.per_item
    assert ort.model_deployment.variant == "ort-int8-qdq" and ort.baseline_deployment.precision == "int8"
    ov = by[("runtime", "pf_resnet50_max", "resnet50", "openvino")]
    assert ov.verdict == "yes" and ov.baseline_deployment.variant == "ov-latency-hint"
    assert ov.baseline_deployment.tune.default is True and ov.model_deployment.tune.vs_default
    # equal medians: inconclusive
    eq = by[("runtime", "pf_resnet50_max", "dw_resnet50", "openvino")]
    assert eq.verdict == "inconclusive" and eq.ci_low < 1 < eq.ci_high and eq.paired
    slower = by[("runtime", "pf_resnet50_max", "dw_resnet50", "onnxruntime")]
    assert slower.verdict == "no" and slower.slower and slower.ratio == pytest.approx(8.5 / 10, rel=0.02)
    # the same figures as row_speedup of the two rows (baseline, model)
    from pfdeploy.bench.stats import row_speedup

    rows = {(r["model"], r["backend"]): r for r in tune_final_doc()["results"]}
    ref = row_speedup(rows[("resnet50", "onnxruntime")], rows[("pf_resnet50_max", "onnxruntime")])
    assert (ort.ratio, ort.ci_low, ort.ci_high) == (ref["ratio"], ref["ci_low"], ref["ci_high"])
    # the JSON: every key, the deployment's p50 and CI from its result
    doc = json.loads(json.dumps(data.to_dict()))
    assert list(doc) == ["at", "rule", "orientation", "runs", "machines", "comparisons"]
    j = _by_json(doc)[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")]
    assert list(j) == ["kind", "model", "baseline", "device", "scenario", "runtime", "model_deployment",
                       "baseline_deployment", "model_p50_ms", "baseline_p50_ms", "per_item", "ratio", "ci_low",
                       "ci_high", "paired", "rounds", "processes", "how", "verdict", "slower", "reason", "run_id",
                       "run_tag", "started_at", "machine_id"]
    md = j["model_deployment"]
    assert list(md) == ["backend", "precision", "variant", "batch", "threads", "scenario", "options", "p50_ms",
                        "p50_ci_low_ms", "p50_ci_high_ms", "n", "processes", "status", "params", "macs", "tune"]
    assert (md["p50_ms"], md["p50_ci_low_ms"], md["p50_ci_high_ms"]) == ort.model_deployment.result.ci
    assert list(md["tune"]) == list(K.TUNE_FIELDS) and md["tune"]["vs_default"]["ratio"] == 1.3
    assert j["ratio"] == ort.ratio and j["run_tag"] == "tune-1" and j["model_p50_ms"] == md["p50_ms"]


def test_across_runtimes_pairs_the_overall_winners():
    by = _by(K.best_claims([tune_final_doc()]))
    dw = by[("overall", "pf_resnet50_max", "dw_resnet50", K.ANY_RUNTIME)]
    # pf's fastest: openvino int8 (9 ms); dw's fastest: onnxruntime int8 (8.5 ms)
    assert dw.model_deployment.backend == "openvino" and dw.baseline_deployment.backend == "onnxruntime"
    assert dw.ratio == pytest.approx(8.5 / 9.0, rel=0.02) and dw.paired and dw.verdict == "no"
    r50 = by[("overall", "pf_resnet50_max", "resnet50", K.ANY_RUNTIME)]
    assert r50.baseline_deployment.backend == "openvino" and r50.baseline_deployment.precision == "bf16"
    assert r50.verdict == "yes" and r50.ratio == pytest.approx(14 / 9, rel=0.02)
    # baselines the spec names but the tune did not race: not measured, with the reason
    mob = by[("overall", "pf_resnet50_max", "mobilenetv2_100", K.ANY_RUNTIME)]
    assert mob.verdict == "not measured" and "not tuned" in mob.reason and mob.ratio is None
    assert mob.to_dict()["baseline_deployment"] is None and mob.to_dict()["model_deployment"]["backend"] == "openvino"
    # only parameter-free models are compared (baselines name no baselines)
    assert {c.model for c in by.values()} == {"pf_resnet50_max", "pf_vit_s"}
    vit = by[("overall", "pf_vit_s", "deit_small_patch16_224", K.ANY_RUNTIME)]
    assert vit.verdict == "no" and vit.slower and vit.ratio == pytest.approx(19 / 20, rel=0.02)
    assert K.deployment_text(vit.model_deployment) == "onnxruntime · fp32 · ort-default (default)"


def test_overall_winner_flag_decides_not_the_median():
    """tune.overall_winner marks each model's fastest deployment; a tied set stands by its marked row."""
    winners = {m: dict(per) for m, per in WINNERS.items()}
    # dw's openvino row marked overall although its onnxruntime row has the lower median
    winners["dw_resnet50"] = {"onnxruntime": ("int8", "ort-int8-qdq", 8.5, False, False),
                              "openvino": ("int8", "ov-int8-async", 9.0, False, True)}
    by = _by(K.best_claims([tune_final_doc(winners)]))
    dw = by[("overall", "pf_resnet50_max", "dw_resnet50", K.ANY_RUNTIME)]
    assert dw.baseline_deployment.backend == "openvino" and dw.verdict == "inconclusive"


def test_ties_and_different_batches():
    doc = tune_final_doc()
    levels = _levels(1)
    # a second resnet50 onnxruntime row tied with the winner: the declared winner stands for the runtime
    doc["results"].append(tune_row("resnet50", "onnxruntime", "int8", "ort-int8-alt", 15.9, False, False, levels, 99,
                                   status="tied"))
    by = _by(K.best_claims([doc]))
    assert by[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")].baseline_deployment.variant == "ort-int8-qdq"
    # different batches (throughput): compared per item
    for r in doc["results"]:
        if r["model"] == "resnet50" and r["backend"] == "openvino":
            r["batch"] = 4
            r["samples_ns"] = [s * 4 for s in r["samples_ns"]]
    c = _by(K.best_claims([doc]))[("runtime", "pf_resnet50_max", "resnet50", "openvino")]
    assert c.per_item and c.ratio == pytest.approx(14 / 9, rel=0.02)
    assert 1 < c.ci_low < c.ratio < c.ci_high and c.paired
    assert K.deployment_text(c.baseline_deployment, with_backend=False) == "bf16 · ov-latency-hint (default) · b4"
    # per item is `Result.per_item_ms`: by the items of a step where the artifact records them
    for r in doc["results"]:
        if r["model"] == "pf_resnet50_max" and r["backend"] == "openvino":
            r["artifact"] = {"items_per_step": 2}
            r["samples_ns"] = [s * 2 for s in r["samples_ns"]]
            r["p50_ms"], r["p50_ci_low_ms"], r["p50_ci_high_ms"] = (2 * r[k] for k in ("p50_ms", "p50_ci_low_ms",
                                                                                       "p50_ci_high_ms"))
    c = _by(K.best_claims([doc]))[("runtime", "pf_resnet50_max", "resnet50", "openvino")]
    assert c.per_item and c.ratio == pytest.approx(14 / 9, rel=0.02)
    assert c.model_deployment.result.per_item_ms == pytest.approx(9, rel=0.02)


def test_only_the_newest_tune_final_run_of_each_machine(best_store):
    from pfdeploy.report.build import load_docs

    with open_store(best_store, create=False) as store:
        docs = load_docs(store)
    data = K.best_claims(docs)
    assert [r.tag for r in data.runs] == ["tune-new"]
    assert _by(data)[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")].ratio == pytest.approx(1.6, rel=0.02)
    other = tune_final_doc(seed=2, machine_id="m-0002", tag="tune-other")
    assert {r.machine_id for r in K.best_claims(docs + [other]).runs} == {"m-0001", "m-0002"}
    assert K.best_claims([d for d in docs if not K.is_tune_final(d)]).runs == []


def test_a_newer_tune_of_another_scenario_does_not_hide_the_latency_one(best_store):
    """A throughput tune of one model after the latency tune of several: both are answered."""
    import copy

    from pfdeploy.report.build import load_docs

    with open_store(best_store, create=False) as store:
        docs = load_docs(store)
    newest = max((d for d in docs if K.is_tune_final(d)), key=lambda d: d["run"]["started_at"])
    tp = copy.deepcopy(newest)
    tp["run"].update(id="tunefinalthroughput00000000000000"[:32], tag="tune-tp", started_at="2099-01-01T00:00:00+00:00",
                     config={"scenario": "throughput", "device": "cpu"})
    assert {r.tag for r in K.best_claims(docs + [tp]).runs} == {"tune-new", "tune-tp"}


# ----------------------------------------------------------------------------------------------
# pfdeploy claims --at best
# ----------------------------------------------------------------------------------------------

def test_cli_json_gives_every_figure(best_store, capsys):
    from pfdeploy.cli import main

    rc = main(["claims", "--at", "best", "--store", best_store, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["at"] == "best" and [r["tag"] for r in data["runs"]] == ["tune-new"]
    c = _by_json(data)[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")]
    for k in ("ratio", "ci_low", "ci_high", "paired", "rounds", "processes", "how", "verdict", "model_p50_ms",
              "baseline_p50_ms", "run_id", "machine_id"):
        assert c[k] is not None, k
    assert c["model_deployment"]["options"] == {"artifact": {"recipe": "x"}}
    assert c["model_deployment"]["tune"]["vs_default"]["ratio"] == 1.3


def test_cli_table_fits_100_columns(best_store, monkeypatch):
    from test_output_width import assert_clean, run_verb

    code, out = run_verb(monkeypatch, 100, "claims", "--at", "best", "--store", best_store)
    assert code == 0
    data = K.best_claims(_docs(best_store))
    shown = [c for c in data.comparisons if c.verdict != "not measured"]
    assert_clean(out, 100, [K.ratio_text(c) for c in shown] + ["│ yes ", "│ no, slower ", "│ inconclusive ",
                                                                "any runtime", "ov-latency-hint", "tune-new",
                                                                "│ deit_small_patch16_224 │", "ov-bf16-latency-async"])
    assert "each at its best" in out and "baselines of pf_resnet50_max not tuned in this run" in out
    code, wide = run_verb(monkeypatch, 100, "claims", "--at", "best", "--store", best_store, "--wide")
    assert code == 0 and "vs default PF/base" in wide and "1.30x / -" in wide


def test_cli_without_a_tune_run_says_so(tmp_path, capsys):
    from pfdeploy.cli import main
    from test_compare import synth_doc, write_run

    db = tmp_path / "r.db"
    with open_store(db) as store:
        write_run(store, synth_doc("bench", 1))
    for argv in (["claims", "--at", "best", "--store", str(db)], ["claims", "--at", "best", "--store", str(db), "--json"]):
        rc = main(argv)
        cap = capsys.readouterr()
        err = cap.err.strip()
        assert rc == 1 and cap.out == "" and "Traceback" not in err and len(err.splitlines()) == 1
        assert "no `pfdeploy tune` results in" in err and "run `pfdeploy tune MODELS` first" in err
    open_store(tmp_path / "empty.db").close()
    rc = main(["claims", "--at", "best", "--store", str(tmp_path / "empty.db")])
    assert rc == 1 and "no `pfdeploy tune` results" in capsys.readouterr().err
    # a named run that is not a tune run
    rc = main(["claims", "--at", "best", "--store", str(db), "latest"])
    err = capsys.readouterr().err
    assert rc == 1 and "is not a `pfdeploy tune` result" in err and "Traceback" not in err
    # the default (--at same) is unchanged
    rc = main(["claims", "--store", str(db)])
    assert rc == 0 and "claims on cpu" in capsys.readouterr().out


def test_cli_named_run_and_run_file(best_store, tmp_path, capsys):
    from pfdeploy.cli import main

    rc = main(["claims", "--at", "best", "--store", best_store, "tune-old", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["tag"] for r in data["runs"]] == ["tune-old"]
    assert _by_json(data)[("runtime", "pf_resnet50_max", "resnet50", "onnxruntime")]["ratio"] == pytest.approx(0.8, rel=0.02)
    # two runs named: both are compared (not only the newest of the machine)
    rc = main(["claims", "--at", "best", "--store", best_store, "tune-old", "tune-new", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["tag"] for r in data["runs"]] == ["tune-new", "tune-old"]
    assert {c["run_tag"] for c in data["comparisons"]} == {"tune-new", "tune-old"}
    path = tmp_path / "final.json"
    with open_store(best_store, create=False) as store:
        store.export_run(store.runs(suite=K.TUNE_FINAL_SUITE)[0]["id"], path)
    rc = main(["claims", "--at", "best", str(path)])
    assert rc == 0 and "any runtime" in capsys.readouterr().out


def _docs(url):
    from pfdeploy.report.build import load_docs

    with open_store(url, create=False) as store:
        return load_docs(store)


def test_print_best_full_width_names_every_deployment(best_store):
    from pfdeploy.cli.claims import print_best

    c = Console(file=io.StringIO(), width=100, force_terminal=False, color_system=None)
    data = K.best_claims(_docs(best_store))
    print_best(c, data)
    out = c.file.getvalue()
    for comp in data.comparisons:
        if comp.verdict != "not measured":
            assert K.ratio_text(comp) in out
    assert "PF: openvino · int8 · ov-int8-async" in out and "base: bf16 · ov-latency-hint*" in out


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------

def test_report_section_present_with_a_tune_run(best_store, tmp_path):
    from pfdeploy.report import build_report

    site = build_report(tmp_path / "site", store_url=best_store)
    index = (site.out / "index.html").read_text()
    assert 'id="best"' in index and "Each model at its best deployment" in index
    data = K.best_claims(_docs(best_store))
    for comp in data.comparisons:
        if comp.verdict != "not measured":
            assert K.ratio_text(comp) in index
    assert "ov-latency-hint" in index and "any runtime" in index
    assert json.loads((site.out / "claims-best.json").read_text())["comparisons"] == json.loads(
        json.dumps(data.to_dict()))["comparisons"]


def test_report_section_absent_without_a_tune_run(tmp_path):
    from pfdeploy.report import build_report
    from test_compare import synth_doc, write_run

    with open_store(tmp_path / "r.db") as store:
        write_run(store, synth_doc("bench", 1))
        site = build_report(tmp_path / "site", store=store)
    index = (site.out / "index.html").read_text()
    assert 'id="best"' not in index and "Each model at its best deployment" not in index
    assert not (site.out / "claims-best.json").exists()


def test_report_data_of_a_tune_run_without_parameter_free_models():
    from pfdeploy.report.data import best_sections

    baselines_only = {m: per for m, per in WINNERS.items() if not m.startswith("pf_")}
    best = best_sections([tune_final_doc(baselines_only)])
    assert best is not None and best["sections"] == [] and best["json"]["runs"]
    assert best_sections([]) is None
    full = best_sections([tune_final_doc()])
    assert [(s["model"], len(s["rows"])) for s in full["sections"]] == [("pf_resnet50_max", 6), ("pf_vit_s", 3)]
    assert full["sections"][0]["not_tuned"] == ["efficientnet_b0", "mobilenetv2_100"]
