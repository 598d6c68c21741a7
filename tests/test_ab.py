"""`pfdeploy ab`: the block statistics (simulated, seeded), the ABPolicy through the real engine with
the fake runner (both sides stored, paired by block), and the refusals before anything is timed.
No duration is asserted."""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

from pfdeploy.ab import ABPolicy, Pair, classify, side_spec
from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
from pfdeploy.bench.stats.ab import MIN_BLOCKS, Sequential, block_value, decide, estimate, spent
from pfdeploy.errors import UsageError
from pfdeploy.store import open_store

RULE = StopRule(min_iters=5, min_time_s=0.01, max_time_s=600, warmup_iters=3, warmup_time_s=0.01,
                target_ci=0.05, min_samples=5, processes=1, max_processes=100)


# ------------------------------------------------------------------ statistics
def test_block_value_is_the_median_of_round_ratios_so_one_switched_round_does_not_move_it():
    rounds = list(range(8))
    base = [1000] * 8
    head = [1100] * 8
    head[3] = 1900  # the machine switched speed state between the two slots of round 3
    v, n = block_value(base, rounds, head, rounds)
    assert n == 8 and math.exp(v) == pytest.approx(1.1)
    # rounds the two sides did not share are not paired
    v, n = block_value([1000, 1000], [0, 1], [1200, 1200], [1, 2])
    assert n == 1 and math.exp(v) == pytest.approx(1.2)
    assert block_value([1], [0], [1], [5]) == (None, 0)


def test_alpha_spending_is_cumulative_and_reaches_alpha():
    a = [spent(t, 0.05) for t in (0.0, 0.1, 0.3, 0.6, 1.0, 1.5)]
    assert a == sorted(a) and a[0] == 0.0 and a[-2] == a[-1] == pytest.approx(0.05)
    # Pocock-type: a tenth of the information spends a sixth of alpha (O'Brien-Fleming-type: 1e-4 of it)
    assert a[1] == pytest.approx(0.05 * math.log(1 + (math.e - 1) * 0.1)) and 0.15 < a[1] / 0.05 < 0.17


def test_a_decisive_change_stops_early_in_a_long_budget():
    """Issue 29: a 10% slower head (block log ratios ~0.12, sd ~0.03, as measured here) must be a
    regression within a few blocks even when the budget plans 70; an A/A of the same noise is not."""
    rng = np.random.default_rng(1)
    slow = list(0.12 + 0.03 * rng.standard_normal(70))
    same = list(0.03 * rng.standard_normal(70))
    seq = Sequential(["slow", "same"], max_blocks=70)
    decided = {}
    for b in range(MIN_BLOCKS, 71):
        for c, v in seq.look({"slow": slow[:b], "same": same[:b]}, final=b == 70).items():
            decided[c] = (v, b)
        if len(decided) == 2:
            break
    assert decided["slow"][0] == "regression" and decided["slow"][1] <= 8, decided
    assert decided["same"][0] in ("equivalent", "inconclusive"), decided


def test_verdicts_of_intervals():
    from pfdeploy.bench.stats.ab import Estimate

    assert decide(Estimate(5, 1.0, 0.97, 1.03), 0.05) == "equivalent"
    assert decide(Estimate(5, 1.1, 1.04, 1.16), 0.05) == "regression"
    assert decide(Estimate(5, 0.9, 0.85, 0.95), 0.05) == "improvement"
    assert decide(Estimate(5, 1.0, 0.9, 1.1), 0.05) is None


def _simulate(shift, sd, cases=3, max_blocks=12, seed=0, alpha=0.05):
    rng = np.random.default_rng(seed)
    seq = Sequential([f"c{i}" for i in range(cases)], max_blocks=max_blocks, alpha=alpha, threshold=0.05)
    values = {c: [] for c in seq.cases}
    for b in range(max_blocks):
        for c in seq.cases:
            values[c].append(math.log1p(shift if c == "c0" else 0.0) + rng.normal(0, sd))
        seq.look(values, final=b == max_blocks - 1)
        if len(seq.verdicts) == cases:
            break
    return seq


def test_aa_simulations_hold_the_family_wise_error():
    """200 simulated A/A runs (seeded) of 3 cases with a block spread of 3%: the share of runs with any
    regression or improvement verdict stays at or below alpha."""
    bad = 0
    for seed in range(200):
        seq = _simulate(0.0, 0.03, seed=seed)
        bad += any(v in ("regression", "improvement") for v in seq.verdicts.values())
    assert bad / 200 <= 0.05


def test_a_ten_percent_change_is_found_and_the_detectable_change_stated():
    found = 0
    for seed in range(100):
        seq = _simulate(0.10, 0.02, seed=seed)
        found += seq.verdicts["c0"] == "regression"
        est = seq.estimates["c0"]
        assert est.detectable is not None and est.detectable > 0
    assert found >= 95
    seq = _simulate(0.0, 0.005, seed=1)
    assert all(v == "equivalent" for v in seq.verdicts.values())  # no change larger than 5%


def test_no_look_before_min_blocks():
    seq = Sequential(["a"], max_blocks=10)
    assert seq.look({"a": [0.5] * (MIN_BLOCKS - 1)}) == {} and seq.looks == 0
    est = estimate([0.0, 0.01, -0.01, 0.02], 0.05, 0.05)
    assert est.blocks_needed is not None and est.ci_low < 1 < est.ci_high


def test_an_early_look_of_a_long_budget_decides_nothing_and_does_not_overflow():
    """A quiet machine: the budget buys hundreds of blocks, so the first look (3 blocks) spends
    little alpha (~1e-60 under the O'Brien-Fleming-type rule first used) and its t quantile on 2
    degrees of freedom is enormous: the interval's upper end can pass the largest float. It was an
    OverflowError that ended `pfdeploy ab` (found measuring issue 29 on 2026-12-06); now such a
    look decides nothing."""
    seq = Sequential(["a", "b", "c"], max_blocks=400)
    values = {"a": [0.09, 0.10, 0.08], "b": [0.30, -0.20, 0.10], "c": [0.0, 0.001, -0.001]}
    assert "a" not in seq.look(values) and "b" not in seq.verdicts
    est = estimate([0.3, -0.2, 0.1], 1e-12, 0.05)
    assert est.ci_high == math.inf and est.ci_low == 0.0 and decide(est, 0.05) is None
    assert math.isfinite(seq.estimates["a"].ratio)
    # the decisive change is still found later, with the alpha the later looks spend
    more = {k: v * 60 for k, v in values.items()}
    now = seq.look(more, final=True)
    assert now.get("a") == "regression" and seq.verdicts.get("c") == "equivalent"


# ------------------------------------------------------------------ through the engine
@pytest.fixture
def inputs(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((1, 3, 4, 4), np.float32))
    return str(p)


def _run(tmp_path, inputs, head_work, base_work=300, max_blocks=6, alpha=0.05):
    store = open_store(tmp_path / "r.db")
    spec = CaseSpec(model="m", backend="fake", threads=1, options={"work_us": base_work})
    hspec = CaseSpec(model="m", backend="fake", threads=1, options={"work_us": head_work})
    b, h = side_spec(spec, "base"), side_spec(hspec, "head")
    pair = Pair(case_key=spec.key, label="m", base_key=b.key, head_key=h.key)
    policy = ABPolicy([pair], budget_s=600, threshold=0.05, alpha=alpha, tag_head="head", rounds=6,
                      max_blocks=max_blocks)
    cfg = BenchConfig(models=(), rule=RULE, round_time_s=0.01, tag="base")
    eng = Engine(cfg, store, store_url=store.url, policy=policy, grouping=lambda todo, il: [todo])
    out = eng.run(prepared_cases=[(b, Prepared(inputs=inputs, family="conv")),
                                  (h, Prepared(inputs=inputs, family="conv"))])
    return store, policy, out, pair


def test_ab_through_the_engine_stores_both_sides_paired_by_block(tmp_path, inputs):
    store, policy, out, pair = _run(tmp_path, inputs, head_work=600, max_blocks=4)  # head 2x slower
    assert out.status == "finished"
    assert policy.seq.verdicts[pair.case_key] == "regression"
    base = store.results(policy.base_run_id)
    head = store.results(policy.head_run_id)
    assert len(base) == len(head) == 1
    rb, rh = base[0], head[0]
    assert rb.case_key == rh.case_key == pair.case_key and rb.variant is None  # the ordinary case key
    assert rb.ab.side == "base" and rh.ab.side == "head" and rb.ab.ab_id == rh.ab.ab_id
    assert rb.ab.other_run_id == policy.head_run_id and rh.ab.other_run_id == policy.base_run_id
    assert rh.ab.verdict == "regression" and rh.ab.ci_low > 1
    assert rb.processes == rh.processes == len(rh.ab.block_ratios) >= MIN_BLOCKS
    # every block's base and head processes shared their rounds (adjacent slots of one rotation)
    assert all(set(pb) == set(ph) for pb, ph in zip(rb.process_rounds, rh.process_rounds))
    assert rh.ab.order[:2] == ["base-first", "head-first"]
    assert store.get_run(policy.head_run_id)["tag"] == "head" and store.get_run(policy.base_run_id)["tag"] == "base"
    assert store.get_run(policy.head_run_id)["status"] == "finished"


def test_aa_through_the_engine_gives_no_change_verdict(tmp_path, inputs):
    store, policy, out, pair = _run(tmp_path, inputs, head_work=300, alpha=0.001, max_blocks=4)
    assert policy.seq.verdicts[pair.case_key] in ("equivalent", "inconclusive")


# ------------------------------------------------------------------ sides and refusals
def test_sides_are_told_apart_by_what_is_there(tmp_path):
    assert classify(sys.executable, "base").kind == "interpreter"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    assert classify(str(venv), "head").python.endswith("bin/python")
    cache = tmp_path / "cache"
    (cache / "onnx").mkdir(parents=True)
    assert classify(str(cache), "base").kind == "cache"
    (tmp_path / "empty-cache").mkdir()
    assert classify(str(tmp_path / "empty-cache"), "base").kind == "cache"  # exported into on demand
    other = tmp_path / "project"
    other.mkdir()
    (other / "README.md").write_text("x")
    with pytest.raises(UsageError, match="none of"):
        classify(str(other), "base")
    with pytest.raises(UsageError, match="does not exist"):
        classify(str(tmp_path / "nope"), "head")
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(UsageError, match="not executable"):
        classify(str(f), "base")


@pytest.mark.parametrize("args, msg", [
    (["NOPE", "NOPE"], "does not exist"),
    (["README", "README"], "not executable"),
    (["PY", "PY", "--threshold", "0"], "--threshold"),
    (["PY", "PY", "--budget", "-5"], "--budget"),
    (["FOREIGN", "PY"], "worker protocol"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_is_timed(cli, tmp_path, args, msg):
    foreign = tmp_path / "foreign-python"  # an interpreter without pfdeploy
    foreign.write_text("#!/bin/sh\nexec /usr/bin/env -i PATH=/usr/bin:/bin python3 -I \"$@\"\n")
    foreign.chmod(0o755)
    readme = tmp_path / "README"
    readme.write_text("x")
    subst = {"NOPE": str(tmp_path / "nope"), "README": str(readme), "PY": sys.executable, "FOREIGN": str(foreign)}
    store = tmp_path / "s.db"
    r = cli("ab", *[subst.get(a, a) for a in args], "--models", "mobilenetv2_100", "--backends", "onnxruntime",
             "--store", str(store))
    assert r.returncode == 2, r.stdout + r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not store.exists()  # nothing was timed, nothing stored


def test_a_speed_state_switch_is_said_in_the_row():
    from pfdeploy.bench.rows import speed_states

    rounds = [r for r in range(12) for _ in range(5)]
    steady = [1000 + (i % 5) for i in range(60)]
    assert speed_states(steady, rounds) is None
    switched = [1700 if r >= 6 else 1000 for r in rounds]  # two states 1.7x apart
    assert speed_states(switched, rounds) == pytest.approx(1.7)
    assert speed_states([], []) is None


def test_the_report_shows_ab_runs_and_marks_them(tmp_path, inputs):
    from pfdeploy.report import build_report

    store, policy, out, pair = _run(tmp_path, inputs, head_work=600, max_blocks=3)
    summary = build_report(tmp_path / "site", store=store)
    runs = (tmp_path / "site" / "runs.html").read_text()
    assert "A/B base" in runs and "A/B head" in runs
    head_page = (tmp_path / "site" / "runs" / f"{policy.head_run_id}.html").read_text()
    assert "A/B: base and head measured together" in head_page and "regression" in head_page
    ratios = store.results(policy.head_run_id)[0].ab.block_ratios
    assert ", ".join(str(round(v, 4)) for v in ratios) in head_page
    assert summary.runs == 2


@pytest.mark.slow
def test_two_tuned_directories_through_the_cli(tmp_path):
    """Two tuned deployments of one model (pf_vit_ti, ONNX Runtime), each side keeping its variant;
    both stored, paired by the ab record."""
    import json

    from test_tuned_dir import vit_onnx as _fixture  # noqa: F401 - the session's exported artifact
    from test_tuned_dir import write

    from pfdeploy.exporters import get_artifact

    art = get_artifact("pf_vit_ti", "onnx")
    a = write(tmp_path / "a", art, variant="first")
    b = write(tmp_path / "b", art, variant="second")
    from conftest import invoke_cli

    db = tmp_path / "r.db"
    r = invoke_cli("ab", str(a), str(b), "--budget", "10", "--store", str(db), "--json", "--fail-on", "never")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert [s["kind"] for s in doc["sides"]] == ["tuned", "tuned"] and len(doc["cases"]) == 1
    store = open_store(db)
    base, head = store.results(doc["base_run_id"]), store.results(doc["head_run_id"])
    assert base[0].variant == "first" and head[0].variant == "second"
    assert base[0].ab.ab_id == head[0].ab.ab_id == doc["ab_id"]
    store.close()
    r = invoke_cli("ab", str(a), str(b), "--models", "resnet50", "--store", str(db))
    assert r.returncode == 2 and "--models" in r.stderr


def test_three_blocks_that_agree_by_chance_do_not_make_a_verdict():
    """Measured under load: three A/A blocks of noisy rounds (round ratios 0.75-1.67) whose medians
    agreed to 0.1% (0.9531, 0.9540, 0.9539); the interval must rest on the blocks' own sampling
    error, not on that chance agreement."""
    from pfdeploy.bench.stats.ab import block_stats

    rng = np.random.default_rng(3)
    rounds = [r for r in range(8) for _ in range(2)]
    vals, within = [], []
    for target in (0.9531, 0.9540, 0.9539):
        base = list(rng.lognormal(math.log(150e6), 0.2, size=16).astype(int))
        ratios = rng.lognormal(0, 0.25, size=8)
        ratios *= target / float(np.exp(np.median(np.log(ratios))))  # this block's median ratio is the target
        head = [int(base[i] * ratios[rounds[i]]) for i in range(16)]
        head = [int(h) for h in head]
        v, n, w = block_stats(base, rounds, head, rounds)
        vals.append(v)
        within.append(w)
    seq = Sequential(["dw"], max_blocks=3)
    seq.look({"dw": vals}, final=True, within={"dw": within})
    assert seq.verdicts["dw"] == "inconclusive", seq.estimates["dw"]
    seq = Sequential(["dw"], max_blocks=3)  # without the floor the same blocks make a verdict
    seq.look({"dw": [math.log(v) for v in (0.9531, 0.9540, 0.9539)]}, final=True)
    assert seq.verdicts["dw"] in ("improvement", "equivalent")


def test_compare_of_the_two_ab_runs_uses_their_block_pairing(tmp_path, inputs):
    from pfdeploy.compare import compare_runs

    store, policy, out, pair = _run(tmp_path, inputs, head_work=600, max_blocks=3)
    base, head = store.export_run(policy.base_run_id), store.export_run(policy.head_run_id)
    cmp = compare_runs(base, head)
    (c,) = cmp.cases
    assert c.resampled == "ab-blocks" and "paired by pfdeploy ab" in c.note
    rh = store.results(policy.head_run_id)[0]
    assert c.ratio == pytest.approx(rh.ab.ratio, rel=1e-6) and c.verdict == "regression"
    back = compare_runs(head, base).cases[0]  # the other way round: the ratio turns over
    assert back.ratio == pytest.approx(1 / c.ratio, rel=1e-6) and back.verdict == "improvement"
