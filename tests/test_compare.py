"""`pfdeploy compare`: statistics and verdicts on synthetic samples (METHOD.md section 8), the
case matching, and the Markdown / JSON outputs. CLI tests are in test_compare_cli.py.

The helpers at the top (synthetic samples, run documents, writing runs through the store API)
are also used by the report tests."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from pfdeploy import compare as C
from pfdeploy.render import to_json
from pfdeploy.result import Result

CASES = (  # model, family, backend, p50 ms
    ("pf_resnet50_max", "parameter-free", "onnxruntime", 30.0),
    ("resnet50", "conv", "onnxruntime", 40.0),
    ("dw_resnet50", "depthwise", "onnxruntime", 35.0),
)


# ----------------------------------------------------------------------------------------------
# synthetic data helpers
# ----------------------------------------------------------------------------------------------

def synth_samples(median_ms: float, seed: int, rounds: int = 30, per_round: int = 10, noise: float = 0.02,
                  drift: float = 0.0, factor: float = 1.0) -> tuple[list[int], list[int]]:
    """Latency samples in ns taken in `rounds` rounds of `per_round`: a per-round level
    (lognormal drift, the shared machine's state during that round) times a right-skewed
    per-sample noise (timings have a floor and a tail)."""
    rng = np.random.default_rng(seed)
    samples, idx = [], []
    for r in range(rounds):
        level = median_ms * factor * float(np.exp(drift * rng.standard_normal()))
        x = level * (1.0 + noise * np.abs(rng.standard_normal(per_round)))
        samples += [int(v * 1e6) for v in x]
        idx += [r] * per_round
    return samples, idx


def synth_row(model: str, family: str, backend: str, median_ms: float, seed: int, factor: float = 1.0,
              threads: int = 2, device: str = "cpu", precision: str = "fp32", status: str = "ok",
              error: str | None = None, with_rounds: bool = True, **kw) -> dict:
    row = {"model": model, "family": family, "weights": "synthetic:0", "backend": backend,
           "device": device, "precision": precision, "batch": 1, "threads": threads,
           "scenario": "latency", "status": status, "error": error, "clock": "host",
           "params": 14_200_000 if family == "parameter-free" else 25_600_000, "macs": 2_200_000_000,
           "artifact_sha256": "ab" * 32, "artifact": {"exporter": "onnx", "opset": 18},
           "parity": {"passed": True, "verdict": "passed", "per_batch": {"1": {"max_abs": 1.2e-5, "cosine_min": 1.0, "top1": 1.0}}}, "warnings": [], "round_size": 10}
    row.update(kw)
    row["case_key"] = C.case_key(row)
    if status != "ok":
        row.update(samples_ns=[], sample_rounds=None)
        return row
    s, r = synth_samples(median_ms, seed, factor=factor)
    x = np.asarray(s, dtype=float) / 1e6
    row.update(n=len(s), p50_ms=float(np.median(x)), p50_ci_low_ms=float(np.median(x)) * 0.99,
               p50_ci_high_ms=float(np.median(x)) * 1.01, p90_ms=float(np.percentile(x, 90)),
               min_ms=float(x.min()), max_ms=float(x.max()), mean_ms=float(x.mean()), std_ms=float(x.std()),
               cv=float(x.std() / x.mean()), items_per_s=1000.0 / float(np.median(x)),
               samples_ns=s, sample_rounds=r if with_rounds else None)
    return row


def synth_doc(tag: str, seed: int, factor: float | dict = 1.0, machine_id: str = "m-0001", cases=CASES,
              started_at: str | None = None, commit: str = "0123456789abcdef0123", threads: int = 2,
              run_id: str | None = None, **row_kw) -> dict:
    """A run document (run-file format) over `cases`, each case slower by `factor` (a number or
    {model: factor})."""
    results = []
    for i, (model, family, backend, ms) in enumerate(cases):
        f = factor.get(model, 1.0) if isinstance(factor, dict) else factor
        results.append(synth_row(model, family, backend, ms, seed * 1000 + i, factor=f, threads=threads, **row_kw))
    run = {"id": run_id or f"run{seed:04d}{tag}"[:32], "tag": tag, "git_commit": commit, "suite": "default",
           "suite_version": "1", "machine_id": machine_id, "status": "finished",
           "started_at": started_at or "2026-11-27T05:00:00+00:00",
           "machine": {"cpu": {"model": "Synthetic CPU", "logical_cores": 2}, "memory_gib": 8},
           "tools": {"torch": "2.x"}, "config": {"min_time": 1.0}, "loadavg_before": [0.5, 0.5, 0.5],
           "loadavg_after": [0.6, 0.5, 0.5]}
    return {"format": "pfdeploy-run", "version": 1, "run": run, "results": results}


def write_run(store, doc: dict, started_at: dt.datetime | None = None) -> str:
    """Write a synthetic run document through the store API (begin_run, add_result, finish_run)."""
    run = doc["run"]
    meta = {k: run[k] for k in ("tag", "git_commit", "suite", "suite_version", "machine_id", "machine",
                                "tools", "config", "loadavg_before") if k in run}
    if started_at is not None:
        meta["started_at"] = started_at
    run_id = store.begin_run(meta)
    for row in doc["results"]:
        fields = {k: v for k, v in row.items() if k not in ("samples_ns", "sample_rounds")}
        samples = row.get("samples_ns") or None
        store.add_result(run_id, fields, samples, row.get("sample_rounds") if samples else None)
    store.finish_run(run_id, run.get("status", "finished"), loadavg_after=run.get("loadavg_after"))
    return run_id


def by_model(cmp: C.Comparison) -> dict[str, C.CaseComparison]:
    return {c.model: c for c in cmp.cases}


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------

def _stats(base, head, rounds=True):
    """rounds=False: every sample its own unit (the single-sample bootstrap, for contrast)."""
    if rounds:
        return C.ratio_stats(base[0], head[0], base[1], head[1])
    return C.ratio_stats(base[0], head[0], list(range(len(base[0]))), list(range(len(head[0]))))


def test_shift_of_ten_percent_is_a_regression():
    st = _stats(synth_samples(20, 1), synth_samples(20, 2, factor=1.10))
    assert st.ratio == pytest.approx(1.10, abs=0.01)
    assert 1.0 < st.ci_low <= st.ratio <= st.ci_high
    assert st.p_value < 1e-6
    assert C.verdict(st) == ("regression", "")
    assert st.base_method == st.head_method == "rounds" and st.base_units == 30


def test_improvement_is_mirrored():
    st = _stats(synth_samples(20, 1), synth_samples(20, 2, factor=0.88))
    assert st.ci_high < 1.0
    assert C.verdict(st)[0] == "improvement"


@pytest.mark.parametrize("seed", range(8))
def test_identical_distributions_are_unchanged(seed):
    # A/A: same distribution, independent draws (different seeds), modest drift between rounds
    st = _stats(synth_samples(20, 100 + seed, drift=0.01), synth_samples(20, 200 + seed, drift=0.01))
    assert st.ci_low <= 1.0 <= st.ci_high or abs(st.ratio - 1) < 0.02
    assert C.verdict(st)[0] == "unchanged"


def test_very_noisy_samples_are_inconclusive():
    noisy = dict(rounds=10, noise=0.3, drift=0.15)
    st = _stats(synth_samples(20, 1, **noisy), synth_samples(20, 2, **noisy))
    v, note = C.verdict(st)
    assert v == "inconclusive"
    assert "CI width" in note and st.ci_width > 0.05


def test_small_significant_shift_below_threshold_is_not_a_regression():
    # 2% slower, measured precisely: the CI excludes 1 but the change is under the 5% threshold
    st = _stats(synth_samples(20, 1, noise=0.005, rounds=60), synth_samples(20, 2, noise=0.005, rounds=60, factor=1.02))
    assert st.ci_low > 1.0
    assert C.verdict(st)[0] == "unchanged"
    assert C.verdict(st, threshold=0.01)[0] == "regression"


def test_rounds_are_resampled_whole():
    # every round holds the same values 1..9 in a different order: any multiset of whole rounds
    # has median 5 exactly, so a round bootstrap has no spread; resampling single samples does
    rng = np.random.default_rng(0)
    samples = np.concatenate([rng.permutation(np.arange(1, 10)) for _ in range(12)]).tolist()
    rounds = np.repeat(np.arange(12), 9).tolist()
    med, method, units = C.bootstrap_medians(samples, rounds, 500, np.random.default_rng(1))
    assert method == "rounds" and units == 12
    assert np.all(med == 5.0)
    med_s, method_s, units_s = C.bootstrap_medians(samples, list(range(108)), 500, np.random.default_rng(1))
    assert units_s == 108  # every sample its own unit: the single-sample bootstrap has spread
    assert med_s.min() < 5.0 < med_s.max()
    # no rounds recorded: contiguous blocks of ~n^(1/3) consecutive samples are the units
    med_b, method_b, units_b = C.bootstrap_medians(samples, None, 500, np.random.default_rng(1))
    assert method_b == "blocks" and units_b == int(np.ceil(108 / round(108 ** (1 / 3))))


def test_bootstrap_median_matches_explicit_resampling():
    # the weighted-median shortcut equals the median of the materialised replicate
    samples, rounds = synth_samples(10, 3, rounds=7, per_round=5)
    x, r = np.asarray(samples, float), np.asarray(rounds)
    for seed in range(5):
        med, _, _ = C.bootstrap_medians(samples, rounds, 1, np.random.default_rng(seed))
        counts = np.random.default_rng(seed).multinomial(7, np.full(7, 1 / 7), size=1)[0]
        replicate = np.concatenate([np.repeat(x[r == k][None, :], c, axis=0).ravel() for k, c in enumerate(counts)])
        assert med[0] == pytest.approx(float(np.median(replicate)))


def test_drift_between_rounds_widens_the_ci_instead_of_calling_a_change():
    # A/A pairs on a "shared machine": the level drifts from round to round. Resampling single
    # samples ignores that and calls changes that are not there; resampling rounds does not.
    noisy = dict(rounds=10, noise=0.3, drift=0.15)
    false_by_rounds = false_by_samples = 0
    for seed in range(20):
        base, head = synth_samples(20, seed, **noisy), synth_samples(20, 1000 + seed, **noisy)
        by_rounds, by_samples = _stats(base, head), _stats(base, head, rounds=False)
        assert by_rounds.ci_width > 1.3 * by_samples.ci_width
        false_by_rounds += C.verdict(by_rounds)[0] in ("regression", "improvement")
        false_by_samples += C.verdict(by_samples)[0] in ("regression", "improvement")
    assert false_by_rounds <= 2 < 5 <= false_by_samples


def test_statistics_are_deterministic_for_a_seed():
    base, head = synth_samples(20, 1), synth_samples(20, 2, factor=1.03)
    a = C.ratio_stats(base[0], head[0], base[1], head[1], seed=7)
    b = C.ratio_stats(base[0], head[0], base[1], head[1], seed=7)
    c = C.ratio_stats(base[0], head[0], base[1], head[1], seed=8)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_mann_whitney_disagreement_downgrades_to_inconclusive():
    st = C.RatioStats(1.2, 1.1, 1.3, 0.2, 1.0, 1.2, "rounds", "rounds", 10, 10)
    v, note = C.verdict(st)
    assert v == "inconclusive" and "Mann-Whitney" in note


# ----------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------

def test_compare_runs_regression_only_in_the_slowed_case():
    cmp = C.compare_runs(synth_doc("base", 1), synth_doc("head", 2, factor={"resnet50": 1.10}))
    v = by_model(cmp)
    assert v["resnet50"].verdict == "regression"
    assert v["pf_resnet50_max"].verdict == "unchanged" and v["dw_resnet50"].verdict == "unchanged"
    assert cmp.cases[0].model == "resnet50"  # regressions first
    assert cmp.exit_code("regression") == 1 and cmp.exit_code("never") == 0
    assert cmp.counts == {"regression": 1, "unchanged": 2}


def test_compare_runs_a_a_reports_no_regression():
    for seed in range(4):
        cmp = C.compare_runs(synth_doc("a1", 10 + seed), synth_doc("a2", 20 + seed))
        assert set(cmp.counts) <= {"unchanged", "inconclusive"}
        assert cmp.exit_code() == 0


def test_missing_new_failed_and_skipped_cases_are_listed():
    base = synth_doc("base", 1)
    head = synth_doc("head", 2)
    head["results"] = [r for r in head["results"] if r["model"] != "dw_resnet50"]  # missing
    head["results"].append(synth_row("mobilenetv2_100", "depthwise", "onnxruntime", 5.0, 9))  # new
    head["results"][0] = synth_row("pf_resnet50_max", "parameter-free", "onnxruntime", 30, 0, status="failed",
                                   error="worker died with SIGSEGV")
    base["results"].append(synth_row("resnet50", "conv", "openvino", 0, 0, status="skipped",
                                     error="openvino is not installed"))
    head["results"].append(synth_row("resnet50", "conv", "openvino", 0, 0, status="skipped",
                                     error="openvino is not installed"))
    cmp = C.compare_runs(base, head)
    got = {(c.model, c.backend): c for c in cmp.cases}
    assert len(cmp.cases) == 5
    assert got[("dw_resnet50", "onnxruntime")].verdict == "missing"
    assert got[("mobilenetv2_100", "onnxruntime")].verdict == "new"
    failed = got[("pf_resnet50_max", "onnxruntime")]
    assert failed.verdict == "failed" and "SIGSEGV" in failed.error and failed.note.startswith("failed in head")
    assert got[("resnet50", "openvino")].verdict == "skipped"
    assert got[("resnet50", "onnxruntime")].verdict == "unchanged"
    # a case that ran in base and fails in head fails the gate; missing/new/skipped do not
    assert [c.model for c in cmp.failing("regression")] == ["pf_resnet50_max"]


def test_failure_in_both_runs_does_not_fail_the_gate():
    base = synth_doc("base", 1, cases=CASES[:1], status="failed", error="boom")
    head = synth_doc("head", 2, cases=CASES[:1], status="failed", error="boom")
    cmp = C.compare_runs(base, head)
    assert cmp.cases[0].verdict == "failed" and cmp.cases[0].note == "failed in both runs"
    assert cmp.exit_code("regression") == 0


def test_different_machines_are_reported_not_compared():
    cmp = C.compare_runs(synth_doc("base", 1), synth_doc("head", 2, factor=1.5, machine_id="m-other"))
    assert not cmp.same_machine
    assert {c.verdict for c in cmp.cases} == {"not-compared"}
    assert any("different machines" in w for w in cmp.warnings)
    assert cmp.exit_code("regression") == 0 and cmp.exit_code("inconclusive") == 1


def test_thread_count_is_part_of_the_case_key():
    cmp = C.compare_runs(synth_doc("base", 1, threads=1), synth_doc("head", 2, threads=2, factor=0.6))
    assert sorted(cmp.counts.items()) == [("missing", 3), ("new", 3)]
    assert cmp.exit_code() == 0


def test_inconclusive_gate_level():
    noisy = dict(cases=CASES[:1])
    base = synth_doc("base", 1, **noisy)
    head = synth_doc("head", 2, **noisy)
    for doc, seed in ((base, 1), (head, 2)):
        s, r = synth_samples(30, seed, noise=0.5, drift=0.3)
        doc["results"][0].update(samples_ns=s, sample_rounds=r)
    cmp = C.compare_runs(base, head)
    assert cmp.cases[0].verdict == "inconclusive"
    assert cmp.exit_code("regression") == 0 and cmp.exit_code("inconclusive") == 1


def test_samples_without_rounds_fall_back_to_blocks_and_say_so():
    cmp = C.compare_runs(synth_doc("base", 1, with_rounds=False), synth_doc("head", 2, with_rounds=False, factor=1.1))
    assert {c.verdict for c in cmp.cases} == {"regression"}
    assert all(c.resampled == "blocks" and "no rounds recorded" in c.note for c in cmp.cases)


def test_results_without_samples_are_listed():
    base, head = synth_doc("base", 1), synth_doc("head", 2)
    base["results"][0] = Result.from_row(base["results"][0]).but(samples_ns=[], sample_rounds=None)
    cmp = C.compare_runs(base, head)
    c = next(c for c in cmp.cases if c.model == "pf_resnet50_max")
    assert c.verdict == "no-samples" and c.note == "no raw samples in base"


def test_case_verdicts_do_not_depend_on_case_order():
    base, head = synth_doc("base", 1), synth_doc("head", 2, factor=1.03)
    a = C.compare_runs(base, head)
    b = C.compare_runs({**base, "results": base["results"][::-1]}, {**head, "results": head["results"][::-1]})
    assert a.cases[0].ci_low is not None
    assert [(c.case_key, c.ci_low, c.ci_high) for c in a.cases] == [(c.case_key, c.ci_low, c.ci_high) for c in b.cases]


def test_load_difference_is_warned():
    head = synth_doc("head", 2)
    head["run"]["loadavg_before"] = [3.5, 2.0, 1.0]
    cmp = C.compare_runs(synth_doc("base", 1), head)
    assert any("load average differed" in w for w in cmp.warnings)


def test_bad_parameters_are_usage_errors():
    from pfdeploy.errors import UsageError

    with pytest.raises(UsageError):
        C.compare_runs(synth_doc("a", 1), synth_doc("b", 2), threshold=5)
    with pytest.raises(UsageError):
        C.compare_runs(synth_doc("a", 1), synth_doc("b", 2)).failing("sometimes")


# ----------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------

EVIL = "<script>alert(1)</script>|*x*"


def test_markdown_output():
    base, head = synth_doc("base", 1), synth_doc(EVIL, 2, factor={"resnet50": 1.10})
    head["results"][0] = synth_row("pf_resnet50_max", "parameter-free", "onnxruntime", 30, 0, status="failed",
                                   error="RuntimeError: bad | thing\nsecond line <b>")
    md = C.to_markdown(C.compare_runs(base, head))
    lines = md.splitlines()
    assert lines[0].startswith("### pfdeploy compare: 1 regression, 1 failed, 1 unchanged")
    assert "❌ fails the gate" in md
    header = next(l for l in lines if l.startswith("| verdict"))
    table = [l for l in lines if l.startswith("| ") and l is not header]
    n_cols = header.count(" | ") + 1
    assert len(table) == 3 and all(row.count(" | ") == n_cols - 1 for row in table)  # pipes escaped
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<b>" not in md and "second line" in md
    reg = next(l for l in table if "regression" in l)
    assert "resnet50" in reg and "+10." in reg


def test_json_output_is_complete_and_strict():
    cmp = C.compare_runs(synth_doc("base", 1), synth_doc("head", 2, factor={"resnet50": 1.10}))
    d = json.loads(to_json(cmp.to_dict("regression")))
    assert d["exit_code"] == 1 and d["fail_on"] == "regression"
    assert d["failing"] == [by_model(cmp)["resnet50"].case_key]
    assert d["threshold"] == 0.05 and d["same_machine"] is True
    assert d["base"]["tag"] == "base" and d["head"]["tag"] == "head"
    case = d["cases"][0]
    for key in ("case_key", "verdict", "ratio", "ci_low", "ci_high", "ci_width", "p_value", "base_p50_ms",
                "head_p50_ms", "threads", "resampled", "note"):
        assert key in case
    assert case["ci_width"] == pytest.approx(case["ci_high"] - case["ci_low"])


def test_step_summary_is_appended(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    md = C.to_markdown(C.compare_runs(synth_doc("base", 1), synth_doc("head", 2)))
    assert C.append_step_summary(md, env={"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    assert C.append_step_summary(md, env={}) is None
    text = summary.read_text()
    assert text.startswith("# earlier step\n### pfdeploy compare")


def test_table_output_does_not_interpret_markup():
    from rich.console import Console

    head = synth_doc("head", 2, cases=(("[bold red]x[/]", "conv", "onnxruntime", 10.0),))
    base = synth_doc("base", 1, cases=(("[bold red]x[/]", "conv", "onnxruntime", 10.0),))
    con = Console(record=True, width=250)
    C.print_table(C.compare_runs(base, head), con)
    assert "[bold red]x[/]" in con.export_text()


def test_confidence_is_family_wise_over_the_tested_cases():
    cases = tuple((f"m{i}", "conv", "onnxruntime", 20.0) for i in range(10))
    base, head = synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor={"m0": 1.10})
    head["results"].append(synth_row("extra", "conv", "onnxruntime", 5.0, 3))  # new: not in the family
    fam = C.compare_runs(base, head)
    per_case = C.compare_runs(base, head, correction="none")
    assert fam.tested == 10 and fam.case_confidence == pytest.approx(0.995) and fam.case_alpha == pytest.approx(0.005)
    assert per_case.case_confidence == 0.95 and per_case.case_alpha == 0.05
    assert "95% family-wise over 10 cases" in C.to_markdown(fam)
    wide, narrow = by_model(fam), by_model(per_case)
    for m in (f"m{i}" for i in range(10)):
        assert wide[m].ci_low <= narrow[m].ci_low and wide[m].ci_high >= narrow[m].ci_high
    assert wide["m0"].verdict == "regression"  # a real 10% slowdown still stands out
    # a p-value that passes one test but not one of ten
    st = C.RatioStats(1.08, 1.02, 1.14, 0.01, 1.0, 1.08, "rounds", "rounds", 30, 30)
    assert C.verdict(st, alpha=0.05)[0] == "regression"
    assert C.verdict(st, alpha=0.005)[0] == "inconclusive"


def test_mann_whitney_uses_round_medians_when_there_are_rounds():
    # 10 rounds of 50 samples each side, head 1% slower: 500 samples make the shift "significant",
    # 10 round medians do not
    base = synth_samples(20, 1, rounds=10, per_round=50, noise=0.02, drift=0.03)
    head = synth_samples(20, 2, rounds=10, per_round=50, noise=0.02, drift=0.03, factor=1.01)
    by_rounds, by_samples = _stats(base, head), _stats(base, head, rounds=False)
    assert by_samples.p_value < 1e-3 < by_rounds.p_value


def test_machine_wide_shift_is_its_own_finding_and_per_case_verdicts_are_relative():
    cases = tuple((f"m{i}", "conv", "onnxruntime", 20.0 + 3 * i) for i in range(6))
    faster = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=0.75))
    assert faster.shift is not None and faster.shift.ratio == pytest.approx(0.75, abs=0.02)
    assert faster.shift.ci_low < 0.75 < faster.shift.ci_high < 1 and faster.shift.beyond_threshold
    assert any("machine-wide shift: every case moved -2" in w for w in faster.warnings)
    # no case is an improvement on its own: they all moved together
    assert {c.verdict for c in faster.cases} <= {"unchanged", "inconclusive"}
    assert all(abs(c.rel_ratio - 1) < 0.03 for c in faster.cases)
    assert faster.exit_code("regression") == 0 and not faster.shift.fails_gate  # a common speed-up passes
    slower = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=1.2))
    assert slower.shift.fails_gate and slower.exit_code("regression") == 1
    assert {c.verdict for c in slower.cases} <= {"unchanged", "inconclusive"}
    assert "machine-wide shift +2" in slower.headline() and "rerun" in C.to_markdown(slower)
    allowed = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=1.2),
                             shift_fails=False)
    assert allowed.exit_code("regression") == 0 and allowed.shift.beyond_threshold
    # one case changing is that case's regression, not a shift
    one = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor={"m0": 1.3}))
    assert not one.shift.beyond_threshold and not any("machine-wide" in w for w in one.warnings)
    assert by_model(one)["m0"].verdict == "regression" and one.exit_code("regression") == 1
    # a shift AND one case 15% slower on top: the case is a regression relative to the shift
    both = C.compare_runs(synth_doc("b", 1, cases=cases),
                          synth_doc("h", 2, cases=cases, factor={f"m{i}": 0.8 * (1.15 if i == 3 else 1) for i in range(6)}))
    assert by_model(both)["m3"].verdict == "regression"
    assert by_model(both)["m3"].rel_ratio == pytest.approx(1.15, abs=0.03)
    assert sum(c.verdict == "regression" for c in both.cases) == 1


def test_each_runtime_gets_its_own_shift_when_a_neighbour_slows_them_unequally():
    """A busy core slowed ONNX Runtime 3.4x and OpenVINO 1.8x in a real run: one shift for all
    cases would leave that difference in every case's relative ratio (a wide tau, nothing
    detectable). With two runtimes of >= MIN_SHIFT_CASES cases each, each gets its own shift, and
    one case 12% slower on top of its runtime's shift is still found."""
    ort = tuple((f"o{i}", "conv", "onnxruntime", 20.0 + 3 * i) for i in range(5))
    ov = tuple((f"v{i}", "conv", "openvino", 21.0 + 3 * i) for i in range(5))
    cases = ort + ov
    factor = {**{c[0]: 1.40 for c in ort}, **{c[0]: 1.15 for c in ov}}
    uneven = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=factor))
    assert set(uneven.backend_shifts) == {"onnxruntime", "openvino"}
    assert uneven.backend_shifts["onnxruntime"].ratio == pytest.approx(1.40, abs=0.03)
    assert uneven.backend_shifts["openvino"].ratio == pytest.approx(1.15, abs=0.03)
    assert uneven.shift.spread < 0.03  # nothing left between the cases once each runtime has its shift
    assert {c.verdict for c in uneven.cases} <= {"unchanged", "inconclusive"}
    assert uneven.exit_code("regression") == 1 and uneven.backend_shifts["onnxruntime"].fails_gate
    assert any(w.startswith("per-runtime shifts") and "onnxruntime +40" in w for w in uneven.warnings)
    d = uneven.to_dict()
    assert d["backend_shifts"]["openvino"]["ratio"] == pytest.approx(1.15, abs=0.03)
    # a case 12% slower on top of its runtime's shift is a regression, relative to that shift
    one = dict(factor, o2=1.40 * 1.12)
    found = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=one))
    assert by_model(found)["o2"].verdict == "regression"
    assert by_model(found)["o2"].rel_ratio == pytest.approx(1.12, abs=0.03)
    assert "relative to the onnxruntime shift" in by_model(found)["o2"].note
    assert sum(c.verdict == "regression" for c in found.cases) == 1
    # runtimes that moved together: one shift for all (a shift per runtime would only add noise)
    together = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=1.3))
    assert together.backend_shifts == {} and together.shift.ratio == pytest.approx(1.3, abs=0.03)
    # one runtime with too few cases: a single shift for everything, as before
    few = C.compare_runs(synth_doc("b", 1, cases=ort + ov[:2]), synth_doc("h", 2, cases=ort + ov[:2], factor=factor))
    assert few.backend_shifts == {} and few.shift is not None


def test_fewer_cases_than_the_shift_needs_keep_absolute_verdicts_and_warn():
    cases = tuple((f"m{i}", "conv", "onnxruntime", 20.0) for i in range(3))
    cmp = C.compare_runs(synth_doc("b", 1, cases=cases), synth_doc("h", 2, cases=cases, factor=1.3))
    assert cmp.shift is None and {c.verdict for c in cmp.cases} == {"regression"}
    assert any("cannot be told from a code change" in w for w in cmp.warnings)
