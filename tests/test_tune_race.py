"""The race of `pfdeploy tune` (pfdeploy/tune/race.py): the policy on simulated benchmarks (per
process levels, drifting machine) and the glue through the engine with the fake runner in real
worker processes. No duration is asserted: the simulated ones are data, the fake runner's are
busy-waits whose order (2x apart) survives any machine."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
from pfdeploy.store import open_store
from pfdeploy.tune.race import Entrant, Measured, Race, RacePolicy, RaceSettings


def simulate(levels: dict[str, float], generations: int, rng, process_sd=0.03, noise=0.05, rounds=3, per_round=8,
             start_round=0):
    """Samples of candidates measured in `generations` generations of fresh processes, in
    shared rotations: each process has its own level (process_sd), each rotation a shared
    machine drift, each sample its own noise."""
    data = {k: ([], [], []) for k in levels}
    rnd = start_round
    for g in range(generations):
        proc = {k: np.exp(rng.normal(0, process_sd)) for k in levels}
        for _ in range(rounds):
            drift = np.exp(rng.normal(0, 0.05))
            for k, lvl in levels.items():
                x = lvl * proc[k] * drift * np.exp(rng.normal(0, noise, per_round))
                s, r, p = data[k]
                s += [int(v * 1e6) for v in x]
                r += [rnd] * per_round
                p += [g] * per_round
            rnd += 1
    return {k: Measured(*v) for k, v in data.items()}


def race_of(levels, default="a"):
    return Race([Entrant(key=k, name=k, default=(k == default)) for k in levels])


def run_race(levels, rng, max_gen=6):
    race = race_of(levels)
    for g in range(1, max_gen + 1):
        race.look(simulate(levels, g, np.random.default_rng(rng)))  # the same data, one more generation
        if race.decided():
            break
    return race, race.finish(simulate(levels, race.generation, np.random.default_rng(rng)), "test")


def test_a_clearly_faster_candidate_wins_and_every_slower_one_is_eliminated_by_an_interval():
    levels = {"a": 10.0, "b": 5.0, "c": 14.0, "d": 10.2}
    race, shipped = run_race(levels, 1)
    assert shipped.name == "b" and shipped.status == "winner"
    for name in ("c", "d"):
        e = race.entrants[name]
        assert e.status == "eliminated" and e.eliminated_by == "b"
        assert e.elimination["ci_low"] > 1.0  # every elimination is a paired interval excluding 1
    assert race.entrants["b"].vs_default["ratio"] == pytest.approx(2.0, rel=0.1)
    assert race.entrants["b"].vs_default["ci_low"] > 1.0


def test_nothing_is_eliminated_before_two_generations():
    levels = {"a": 10.0, "b": 5.0}
    race = race_of(levels)
    assert race.look(simulate(levels, 1, np.random.default_rng(0))) == []
    assert {e.status for e in race.entrants.values()} == {"racing"}


@pytest.mark.parametrize("seed", range(6))
def test_equal_candidates_end_in_a_tie_not_a_winner(seed):
    """A/A: candidates that are the same setting must not be separated (at most rarely: the
    error rate is alpha per look); the tie is shipped at the safest setting."""
    levels = {"a": 10.0, "b": 10.0, "c": 10.0}
    race, shipped = run_race(levels, 100 + seed)
    statuses = sorted(e.status for e in race.entrants.values())
    assert statuses.count("eliminated") <= 1
    if "winner" not in statuses:
        assert shipped.default  # all fp32: the runtime's default is the safest pick of a tie
        assert shipped.status == "tied" and set(shipped.tied_with) <= {"b", "c"}


def test_a_tie_is_shipped_at_the_highest_precision():
    race = Race([Entrant("a", "default", "bf16", default=True), Entrant("b", "fp32", "fp32"),
                 Entrant("c", "int8", "int8")])
    levels = {"a": 10.0, "b": 10.0, "c": 10.0}
    shipped = race.finish(simulate(levels, 2, np.random.default_rng(3)), "test")
    assert shipped.name == "fp32" and shipped.shipped and shipped.status == "tied"


def test_the_default_is_measured_to_the_end_even_when_eliminated():
    levels = {"a": 20.0, "b": 5.0, "c": 5.05}
    race = race_of(levels)
    race.look(simulate(levels, 1, np.random.default_rng(5)))
    race.look(simulate(levels, 2, np.random.default_rng(5)))
    assert race.entrants["a"].status == "eliminated"
    assert "a" in race.measured_keys()


def test_the_elimination_uses_the_process_level():
    """Rounds alone would separate two settings whose processes differ by chance; with one
    process-level difference per generation, two generations do not."""
    rng = np.random.default_rng(11)
    levels = {"a": 10.0, "b": 10.0}
    data = simulate(levels, 2, rng, process_sd=0.08, noise=0.005, rounds=10)
    sp = Race.compare(data["a"], data["b"], 0.95)
    assert sp["processes"] == 2
    assert sp["ci_low"] < 1.0 < sp["ci_high"]


# ------------------------------------------------------------------ the glue, with real workers
RULE = StopRule(min_iters=1, min_time_s=0.02, max_time_s=60, warmup_iters=2, warmup_time_s=0.01,
                target_ci=0.5, min_samples=1, min_rounds=2, processes=1, max_processes=1)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "r.db")
    yield s
    s.close()


@pytest.fixture
def inputs(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((1, 3, 4, 4), np.float32))
    return str(p)


def candidate(name, inputs, work_us, parity=None):
    spec = CaseSpec(model="m", backend="fake", threads=1, options={"work_us": work_us}, variant=name)
    return spec, Prepared(inputs=inputs, family="conv", parity=parity or {})


def race_engine(store, cases, **settings):
    s = RaceSettings(process_s=0.03, max_process_s=0.06, max_generations=4, **settings)
    cfg = BenchConfig(models=(), rule=RULE, round_time_s=0.005, suite="tune")
    eng = Engine(cfg, store, store.url, policy=RacePolicy(s),
                 grouping=lambda todo, interleave: [todo])
    return eng.run(prepared_cases=cases), s


def test_race_through_the_engine_stores_every_candidate_with_its_fate(store, inputs):
    cases = [candidate("default", inputs, 1200), candidate("fast", inputs, 300), candidate("slow", inputs, 2400)]
    from pfdeploy.backends import Candidate

    cands = {cases[0][0].key: Candidate("default", "fp32", default=True, note="the runtime's default")}
    out, s = race_engine(store, cases, candidates=cands)
    assert out.status == "finished"
    rows = {r.variant: r for r in store.results(out.run_id)}
    assert set(rows) == {"default", "fast", "slow"}
    assert rows["fast"].tune.runtime_winner and rows["fast"].tune.status in ("winner", "tied")
    assert rows["fast"].tune.vs_default["ratio"] > 1.5
    assert rows["slow"].tune.status in ("eliminated", "tied")
    # the case keys differ by variant only
    assert len({r.case_key for r in rows.values()}) == 3
    assert all(r.case_key.endswith("|" + v) for v, r in rows.items())
    # the default was measured in every generation the race had
    gens = max(len(r.process_rounds) for r in rows.values())
    assert len(rows["default"].process_rounds) == gens


def test_a_candidate_that_failed_parity_never_wins(store, inputs):
    failed = {"verdict": "failed", "failures": ["batch 1: max abs diff 3.1 > 0.05"]}
    cases = [candidate("default", inputs, 1200), candidate("broken-int8", inputs, 100, parity=failed),
             candidate("fp32", inputs, 1100)]
    out, s = race_engine(store, cases)
    rows = {r.variant: r for r in store.results(out.run_id)}
    assert rows["broken-int8"].status == "failed"
    assert "parity" in rows["broken-int8"].error
    assert not rows["broken-int8"].tune.runtime_winner
    assert any(r.tune.runtime_winner for v, r in rows.items() if v != "broken-int8")


def test_a_candidate_the_runtime_refuses_is_dropped_with_the_reason(store, inputs):
    spec, prep = candidate("refused", inputs, 100)
    spec = CaseSpec(model="m", backend="fake", threads=1, options={"fail": "load"}, variant="refused")
    out, s = race_engine(store, [candidate("default", inputs, 500), (spec, prep)])
    rows = {r.variant: r for r in store.results(out.run_id)}
    assert rows["refused"].status == "failed" and "refused to load" in rows["refused"].error
    assert rows["default"].tune.runtime_winner


# ------------------------------------------------------------------ the final rotation and the CLI
def final_case(model, backend, variant, precision, data: Measured, items_per_step=1):
    from pfdeploy.bench.model import CaseRun

    c = CaseRun(CaseSpec(model=model, backend=backend, precision=precision, variant=variant), Prepared())
    c.samples, c.rounds, c.procs = list(data.samples), list(data.rounds), list(data.procs)
    c.finals = [{"items_per_step": items_per_step}]
    return c


def test_the_overall_winner_needs_an_interval_that_excludes_every_other_runtime():
    from pfdeploy.tune.final import decide_overall

    d = simulate({"ov": 5.0, "ort": 9.0, "torch": 20.0}, 4, np.random.default_rng(2))
    cases = [final_case("m", "openvino", "bf16", "bf16", d["ov"]), final_case("m", "onnxruntime", "int8", "int8", d["ort"]),
             final_case("m", "torch", "default", "fp32", d["torch"])]
    ov = decide_overall(cases, 0.05)
    assert ov.status == "winner" and ov.key == cases[0].spec.key
    assert ov.vs_runner_up["ci_low"] > 1.0 and ov.runner_up == "onnxruntime/int8"


def test_an_overall_tie_is_shipped_at_the_highest_precision():
    from pfdeploy.tune.final import decide_overall

    d = simulate({"ov": 10.0, "ort": 10.0}, 3, np.random.default_rng(4))
    cases = [final_case("m", "openvino", "int8", "int8", d["ov"]), final_case("m", "onnxruntime", "fp32", "fp32", d["ort"])]
    ov = decide_overall(cases, 0.05)
    assert ov.status == "tied" and ov.key == cases[1].spec.key and ov.tied_with == ["openvino/int8"]


def test_throughput_candidates_compare_per_item():
    """A step of 4 requests in flight that takes 3x as long is faster per item."""
    from pfdeploy.tune.final import decide_overall

    d = simulate({"a": 30.0, "b": 10.0}, 4, np.random.default_rng(6))
    cases = [final_case("m", "openvino", "nireq4", "fp32", d["a"], items_per_step=4),
             final_case("m", "onnxruntime", "default", "fp32", d["b"], items_per_step=1)]
    assert decide_overall(cases, 0.05).key == cases[0].spec.key


def test_the_budget_is_shared_among_the_races_left():
    import time as _time

    from pfdeploy.tune.race import Budget

    b = Budget(100.0, 4, reserve_s=20.0)
    first = b.start_race() - _time.monotonic()
    assert 19.0 < first <= 20.0  # (100 - 20) / 4
    assert Budget(None, 3).start_race() is None


@pytest.mark.parametrize("text,seconds", [("900", 900), ("900s", 900), ("15m", 900), ("1.5h", 5400)])
def test_budget_durations(text, seconds):
    from pfdeploy.cli.tune import parse_budget

    assert parse_budget(None, None, text) == seconds


@pytest.mark.parametrize("args,msg", [(["m"], "unknown model"), (["resnet50", "--budget", "soon"], "duration"),
                                      (["resnet50", "--budget", "0"], "more than 0"),
                                      (["resnet50", "--backends", "nope"], "nope")])
def test_bad_tune_input_is_one_line_and_exit_2(args, msg, tmp_path):
    from conftest import invoke_cli

    r = invoke_cli("tune", *args, "--store", str(tmp_path / "r.db"))
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr.lower() and "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "r.db").exists()


def test_the_accuracy_gate():
    from pfdeploy.tune.race import accuracy_gate

    acc = {"n": 500, "top1": 0.752, "torch_top1": 0.768}
    assert accuracy_gate(acc, None) is None
    assert accuracy_gate(acc, 0.02) is None
    assert "1.60% below" in accuracy_gate(acc, 0.01)
    assert "no accuracy measured" in accuracy_gate(None, 0.01)


@pytest.mark.parametrize("text,value", [("1%", 0.01), ("0.5%", 0.005), ("0.02", 0.02)])
def test_max_drop_values(text, value):
    from pfdeploy.cli.tune import parse_drop

    assert parse_drop(None, None, text) == pytest.approx(value)


def test_the_tune_table_fits_100_columns():
    """A real tune's JSON shape (the longest names the spaces declare) printed as a file would
    get it: every line within 100 columns."""
    from rich.console import Console

    from pfdeploy.cli.tune import print_tune

    def cand(v, p, status, shipped=False, tied=()):
        return {"variant": v, "precision": p, "default": v == "default", "status": status, "shipped": shipped,
                "p50_ms": 123.456, "p50_ci_low_ms": 118.123, "p50_ci_high_ms": 131.987, "tied_with": list(tied),
                "vs_default": {"ratio": 12.34, "ci_low": 10.12, "ci_high": 14.56}}

    rts = []
    for b, win, other in (("onnxruntime", "int8-pertensor", "int8"), ("openvino", "int8-async-shared", "int8"),
                          ("torch-compile", "max-autotune", "bf16")):
        cands = [cand("default", "fp32", "eliminated"), cand(other, "int8", "tied", tied=[win]),
                 cand(win, "int8", "tied", True, [other])]
        rts.append({"backend": b, "shipped": cands[-1], "candidates": cands, "generations": 6})
    doc = {"models": [{"model": "pf_resnet50_hybrid", "runtimes": rts, "skipped": [],
                       "overall": {"backend": "openvino", "variant": "int8-async-shared", "precision": "int8",
                                   "status": "winner", "vs_runner_up": {"ratio": 1.97, "ci_low": 1.77, "ci_high": 2.19},
                                   "runner_up": "onnxruntime/int8-pertensor", "tied_with": [], "dir": "tuned/x"}}],
           "runs": ["7e82de62f2464c4685d49afe92198f89"], "final_run": "0764c7f51d8d46f386f9f720e683317f",
           "store": "pfdeploy-results.db", "notes": []}
    out = Console(width=100, record=True, force_terminal=False)
    print_tune(out, doc)
    text = out.export_text()
    flat = " ".join(text.split())
    assert "int8-async-shared" in flat and "tied: int8-pertensor ~ int8" in flat
    assert max(len(line) for line in text.splitlines()) <= 100


def test_a_candidate_that_fails_before_the_race_is_stored_with_its_tune_record(store, inputs):
    """docs/tune.md: every row of a tune run has a tune record, also a candidate whose artifact
    failed to export or verify (the engine stores it before any rotation; the policy says why)."""
    spec, prep = candidate("broken-int8", inputs, 300)
    prep.error = "int8 parity failed"
    cases = [candidate("default", inputs, 600), candidate("fast", inputs, 300), (spec, prep)]
    out, _ = race_engine(store, cases)
    rows = {r.variant: r for r in store.results(out.run_id)}
    assert set(rows) == {"default", "fast", "broken-int8"}
    broken = rows["broken-int8"]
    assert broken.status == "failed" and broken.tune is not None and broken.tune.status == "failed"
    assert "int8 parity failed" in broken.tune.reason
    assert all(r.tune is not None for r in rows.values())
