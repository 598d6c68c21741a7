"""`pfdeploy capacity`'s search (bracketing, bisection, the bracket over processes) against a
deployment whose verdicts are known, and the bad input of the LoadGen verbs through the CLI: one
line, exit 2, nothing timed."""
from __future__ import annotations

import pytest

from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.engine import BenchConfig, Prepared
from pfdeploy.bench.loadgen.capacity import CapacityPolicy
from pfdeploy.bench.model import CaseRun


class _Engine:
    def __init__(self, processes):
        self.config = BenchConfig(models=(), rule=StopRule(processes=processes), scenario="capacity",
                                  loadgen={"latency_bound_ms": 50.0, "min_duration_s": 1.0, "tolerance": 0.1})
        self.failed, self.live, self.oversubscribed = set(), {}, None
        self._round = 0

    def update(self, *a):
        pass

    def advance(self, *a):
        pass

    def next_round(self):
        self._round += 1
        return self._round


class _Rotation:
    """The Rotation's public steps the policy uses, with no worker behind them."""

    def __init__(self, engine):
        self.engine, self.config, self.rule, self.failed = engine, engine.config, engine.config.rule, engine.failed

    def close_worker(self, case):
        return True


class _Fake(CapacityPolicy):
    """Verdicts from a rule instead of LoadGen: VALID at or below `capacity[process]`."""

    def __init__(self, capacity, saturated=100.0):
        super().__init__()
        self.overhead = {"offline_qps": 1e5}
        self.capacity, self.saturated, self.calls, self.done = capacity, saturated, [], None

    def start_worker(self, rot, case, gen):
        case.process_rounds.append([])
        case.loads.append({"pid": 1000 + gen})
        return True

    def test(self, rot, case, settings, what=""):
        proc = len(case.process_rounds) - 1
        if settings.scenario == "offline":
            return {"validity": "VALID", "completed_qps": self.saturated, "summary": "s", "detail": "d"}, [1]
        self.calls.append((proc, settings.target_qps))
        ok = settings.target_qps <= self.capacity[proc]
        p99 = 10.0 if ok else 500.0
        return ({"validity": "VALID" if ok else "INVALID", "completed_qps": settings.target_qps,
                 "percentiles_ms": {"p50": 5.0, "p99": p99}, "reasons": [] if ok else ["Performance constraints"],
                 "summary": "s", "detail": "d"}, [int(p99 * 1e6)] * 5)

    def finish(self, rot, case, record):
        self.done, self.case = record, case


def _search(capacity, saturated=100.0):
    eng = _Engine(len(capacity))
    runner = _Fake(capacity, saturated)
    runner.bind(_Rotation(eng))
    case = CaseRun(CaseSpec(model="m", backend="onnxruntime", scenario="capacity"), Prepared())
    runner.search(case)
    return runner, runner.done


def test_bracketing_then_bisection_finds_the_capacity_within_the_tolerance():
    runner, rec = _search([62.0, 62.0])
    lo, hi = rec["bracket_qps"]
    assert lo <= 62.0 < hi and hi / lo - 1 <= 0.1 + 1e-9  # the test's tolerance
    assert rec["capacity_qps"] == lo and rec["saturated_qps"] == 100.0 and rec["capacity_qps"] <= rec["saturated_qps"]
    assert runner.calls[0] == (0, pytest.approx(30.0))  # bound 50 ms: M/M/1 says 8 QPS; never below 0.3 x S
    # the second process only re-probes the last VALID rate
    assert [q for p, q in runner.calls if p == 1] == [lo]
    assert len(rec["curve"]) == len(runner.calls) and all("p99_ms" in c for c in rec["curve"])
    assert rec["validity"] == "VALID" and rec["p99_at_capacity_ms"] == 10.0
    case = runner.case
    assert sorted(set(case.procs)) == [0, 1] and all(len(r) == 1 for r in case.process_rounds)


def test_a_process_that_disagrees_widens_the_bracket():
    runner, rec = _search([80.0, 60.0])
    first = rec["processes"][0]
    assert first["lo"] <= 80.0 < first["hi"]
    second = rec["processes"][1]
    assert second["lo"] <= 60.0 and rec["capacity_qps"] == second["lo"] < first["lo"]
    assert second["hi"] is not None and second["hi"] > 60.0  # its own first INVALID
    assert rec["bracket_qps"][1] >= first["hi"]


def test_the_first_probe_follows_the_bound():
    from pfdeploy.bench.loadgen.capacity import first_probe

    assert first_probe(100.0, 1000.0) == pytest.approx(70.0)  # generous bound: capped at 0.7 S
    assert first_probe(100.0, 100.0) == pytest.approx(100.0 - 46.0517, rel=1e-4)
    assert first_probe(20.0, 10.0) == pytest.approx(6.0)  # tight bound: never below 0.3 S


def test_nothing_meets_the_bound_is_capacity_zero():
    runner, rec = _search([0.0])
    assert rec["capacity_qps"] == 0.0 and rec["validity"] == "INVALID"
    assert len(runner.calls) <= 12


def test_nothing_meets_the_bound_stops_at_the_floor_with_a_warning():
    """Issue 31: a tight bound once sent the search down x0.7 at a time into probes of minutes (460
    queries at 2 QPS: 230 s) until a worker call timed out. No probe is planned below the floor,
    where 460 queries take MAX_PROBE_S; INVALID there is capacity 0, below the floor, said in a warning."""
    from pfdeploy.bench.loadgen.capacity import MAX_PROBE_S

    runner, rec = _search([0.0, 0.0], saturated=30.0)
    floor = 460 / MAX_PROBE_S
    assert all(q >= floor * (1 - 1e-9) for _, q in runner.calls)
    assert rec["capacity_qps"] == 0.0 and rec["floor_qps"] == pytest.approx(floor)
    assert len([c for c in runner.calls if c[0] == 0]) <= 4  # 15, then straight down to the floor
    assert any("the lowest rate probed" in w and "capacity below that" in w for w in rec["warnings_row"])


class _Queue(_Fake):
    """A deployment whose p99 follows a queue: p99(q) = 30 + 400 / (S - q) ms, VALID where it is
    within the 50 ms bound (capacity 0.8 S)."""

    def test(self, rot, case, settings, what=""):
        if settings.scenario == "offline":
            return super().test(rot, case, settings, what)
        proc, q, s = len(case.process_rounds) - 1, settings.target_qps, self.saturated
        self.calls.append((proc, q))
        p99 = 30 + 400 / (s - q) if q < s else 5000.0
        ok = p99 <= 50.0
        return ({"validity": "VALID" if ok else "INVALID", "completed_qps": min(q, s),
                 "percentiles_ms": {"p50": 30 + 100 / (s - q) if q < s else 2000.0, "p99": p99},
                 "reasons": [] if ok else ["Performance constraints"], "summary": "s", "detail": "d"},
                [int(p99 * 1e6)] * 5)


def _queue_search():
    eng = _Engine(1)
    runner = _Queue([0.0], saturated=100.0)
    runner.bind(_Rotation(eng))
    runner.search(CaseRun(CaseSpec(model="m", backend="onnxruntime", scenario="capacity"), Prepared()))
    return runner


def test_probes_follow_the_fitted_p99_curve(monkeypatch):
    """The probes' p99s place the bracketing probes (where the fitted queue reaches 90% of the
    bound): the answer within the tolerance in fewer probes than with x1.25 steps alone."""
    import pfdeploy.bench.loadgen.capacity as capacity

    fitted = _queue_search()
    lo, hi = fitted.done["bracket_qps"]
    assert lo <= 80.0 < hi and hi / lo - 1 <= 0.1 + 1e-9
    monkeypatch.setattr(capacity, "fitted_rate", lambda *a: None)
    stepped = _queue_search()
    lo, hi = stepped.done["bracket_qps"]
    assert lo <= 80.0 < hi and hi / lo - 1 <= 0.1 + 1e-9
    assert len(fitted.calls) <= 6 and len(fitted.calls) < len(stepped.calls), (fitted.calls, stepped.calls)


def test_a_slow_probe_gets_the_time_its_queries_need():
    from pfdeploy.bench.loadgen.group import LOADGEN_TIMEOUT_MIN_S, call_timeout
    from pfdeploy.bench.loadgen.settings import LoadGenSettings

    fast = LoadGenSettings(scenario="capacity", target_qps=100.0, latency_bound_ms=50.0, min_duration_s=2.0)
    slow = LoadGenSettings(scenario="capacity", target_qps=2.0, latency_bound_ms=50.0, min_duration_s=2.0)
    assert fast.expected_s() == 4.6 and slow.expected_s() == 230.0
    assert call_timeout(slow) - call_timeout(fast) == pytest.approx(2 * (230.0 - 4.6))
    assert call_timeout(slow) > 230.0 + LOADGEN_TIMEOUT_MIN_S


class _Timed(_Fake):
    """A fake whose probes take their queries' time on a clock of its own (one more second each)."""

    def __init__(self, capacity, saturated=100.0, budget_s=None):
        super().__init__(capacity, saturated)
        self.now, self.budget = 0.0, budget_s
        self.clock = lambda: self.now

    def bind(self, rot):
        super().bind(rot)
        self.cfg.loadgen["budget_s"] = self.budget

    def test(self, rot, case, settings, what=""):
        self.now += settings.expected_s() + 1.0
        return super().test(rot, case, settings, what)


def _timed(capacity, budget_s, cases=1):
    eng = _Engine(len(capacity))
    eng.config.loadgen["min_queries"] = 460  # a probe at q QPS takes 460 / q s
    runner = _Timed(capacity, 100.0, budget_s)
    rot = _Rotation(eng)
    specs = [CaseRun(CaseSpec(model=f"m{i}", backend="onnxruntime", scenario="capacity"), Prepared())
             for i in range(cases)]
    rot.pending = lambda: specs
    shares, done = [], []
    search = runner.search

    def spy(case):
        shares.append(runner.share_s)
        search(case)
        done.append(runner.done)

    runner.search = spy
    runner.run(rot)
    return runner, done, shares


def test_without_a_budget_share_the_bisection_reaches_the_tolerance():
    runner, (rec,), shares = _timed([62.0, 62.0], None)
    lo, hi = rec["bracket_qps"]
    assert shares == [None] and not rec["budget_spent"] and hi / lo - 1 <= 0.1 + 1e-9
    assert not any("--budget" in w for w in rec["warnings_row"])


def test_a_spent_budget_stops_the_bisection_not_the_bracketing_or_the_confirmation():
    """`--budget`: the first process stops bisecting when the next probe and the confirming probes
    would not fit the deployment's share; the answer is still bracketed and VALID in every process,
    and the row says the bracket is wider than the tolerance because of the budget."""
    full, (whole,), _ = _timed([62.0, 62.0], None)
    cut, (rec,), shares = _timed([62.0, 62.0], 40.0)
    lo, hi = rec["bracket_qps"]
    assert lo <= 62.0 < hi and rec["budget_spent"] and rec["budget_share_s"] == shares[0] == 40.0
    assert len(cut.calls) < len(full.calls)
    assert [q for p, q in cut.calls if p == 1] == [lo]  # the second process still confirms
    assert hi / lo - 1 > 0.1 and any("over the 10% tolerance" in w and "--budget" in w for w in rec["warnings_row"])
    tiny, (rec0,), _ = _timed([62.0, 62.0], 1.0)  # no time at all: bracketing still ends with an answer
    lo0, hi0 = rec0["bracket_qps"]
    assert lo0 <= 62.0 < hi0 and rec0["capacity_qps"] == lo0 > 0


def test_each_deployment_gets_its_share_of_what_is_left():
    runner, done, shares = _timed([62.0, 62.0], 600.0, cases=3)
    assert shares[0] == pytest.approx(200.0)
    spent = [r["search_wall_s"] for r in done]
    assert shares[1] == pytest.approx((600.0 - spent[0]) / 2, rel=1e-6)
    assert shares[2] == pytest.approx((600.0 - spent[0] - spent[1]), rel=1e-6)


def test_above_saturation_stays_bounded():
    runner, rec = _search([1000.0])  # never INVALID: the probes stop at the ceiling's steps
    assert len(runner.calls) <= 12 and all(q <= 1000.0 for _, q in runner.calls)


# ----------------------------------------------------------------------------- bad input
BAD = [
    (["capacity", "resnet50", "--latency-bound", "0ms"], "--latency-bound must be a positive duration"),
    (["capacity", "resnet50", "--latency-bound", "abc"], "--latency-bound must be a positive duration"),
    (["capacity", "resnet50"], "needs --latency-bound"),
    (["capacity", "resnet50", "--latency-bound", "15ms", "--backends", "torch"], "torch cannot serve LoadGen"),
    (["capacity", "resnet50", "--latency-bound", "15ms", "--tolerance", "-1"], "--tolerance must be a positive"),
    (["capacity", "resnet50", "--latency-bound", "15ms", "--budget", "soon"], "expected a duration such as 900s"),
    (["capacity", "resnet50", "--latency-bound", "15ms", "--images", "/nonexistent-pfdeploy-images"],
     "--images folder not found"),
    (["capacity", "resnet50", "--latency-bound", "15ms", "--budget", "0m"], "must be more than 0"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "0", "--latency-bound", "15ms"],
     "--target-qps must be a positive number"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "x", "--latency-bound", "15ms"],
     "--target-qps must be a positive number"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "10", "--latency-bound", "-5ms"],
     "--latency-bound must be a positive duration"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--latency-bound", "15ms"], "needs --target-qps"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "10"], "needs --latency-bound"),
    (["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "10", "--latency-bound", "15ms",
      "--backends", "torch"], "torch cannot serve LoadGen"),
    (["bench", "--models", "resnet50", "--scenario", "multistream", "--backends", "tensorrt"], "cannot serve LoadGen"),
    (["bench", "--models", "resnet50", "--target-qps", "10"], "apply to the LoadGen scenarios"),
    (["bench", "--models", "resnet50", "--scenario", "offline", "--batch", "8"], "--batch 1"),
]


@pytest.mark.parametrize("args,message", BAD)
def test_bad_input_is_one_line_exit_2_nothing_timed(cli, args, message, tmp_path):
    store = tmp_path / "r.db"
    r = cli(*args, "--store", str(store))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not store.exists()  # nothing opened, nothing timed


@pytest.mark.parametrize("verb", [["capacity", "resnet50", "--latency-bound", "15ms"],
                                  ["bench", "--models", "resnet50", "--scenario", "server", "--target-qps", "5",
                                   "--latency-bound", "15ms"]])
def test_loadgen_not_installed_is_one_line_exit_2(cli, verb, tmp_path, monkeypatch):
    import pfdeploy.bench.loadgen as lg

    monkeypatch.setattr(lg, "is_installed", lambda mod: mod != "mlperf_loadgen")
    store = tmp_path / "r.db"
    r = cli(*verb, "--store", str(store))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "LoadGen is not installed" in r.stderr and "pfdeploy[loadgen]" in r.stderr
    assert not store.exists()


def test_capacity_of_a_tuned_deployment_keeps_its_settings(tmp_path, artifact_cache):
    from test_tuned_dir import write  # the tuned-directory helper; pf_vit_ti's export is cached per session

    from pfdeploy.cli.capacity import tuned_capacity_config
    from pfdeploy.exporters import get_artifact

    art = get_artifact("pf_vit_ti", "onnx")
    d = write(tmp_path / "t", art, variant="ort-seq")
    cfg = tuned_capacity_config((str(d),), "tag", 2)
    (case,) = cfg.cases
    assert case.scenario == "capacity" and case.variant == "ort-seq" and case.backend == "onnxruntime"
    assert case.options["artifact"]["file"].endswith("model.onnx") and cfg.scenario == "capacity"


def test_capacity_needs_models_or_tuned(cli, tmp_path):
    r = cli("capacity", "--latency-bound", "15ms", "--store", str(tmp_path / "r.db"))
    assert r.returncode == 2 and "MODEL[,MODEL...] or --tuned DIR" in r.stderr


def test_the_capacity_table_shows_each_answer_its_bracket_and_the_budget_warning():
    """`pfdeploy capacity`'s answers and table from stored rows: the bracket, a capacity below the
    floor as "< floor", and the row's warnings (a spent budget share) under the table."""
    from types import SimpleNamespace

    from rich.console import Console

    from pfdeploy.cli.capacity import answer, print_capacity

    def row(model, lg, warnings=()):
        return SimpleNamespace(model=model, backend="openvino", precision="fp32", status="ok", error=None,
                               loadgen={"latency_bound_ms": 500.0, **lg}, warning_texts=list(warnings))

    spent = "the bracket is 47% wide, over the 15% tolerance: this deployment's share of --budget (128 s) was spent"
    answers = [answer(row("resnet50", {"capacity_qps": 10.2, "bracket_qps": [10.2, 14.9], "saturated_qps": 19.4,
                                       "p99_at_capacity_ms": 399.1, "probes": 3, "search_wall_s": 133.0,
                                       "budget_share_s": 128.0, "budget_spent": True}, [spent])),
               answer(row("tight", {"capacity_qps": 0.0, "bracket_qps": [0.0, 7.7], "floor_qps": 7.7,
                                    "saturated_qps": 20.0, "probes": 2, "search_wall_s": 118.0}))]
    assert answers[0]["budget_spent"] is True and answers[0]["budget_share_s"] == 128.0
    con = Console(record=True, width=200)
    print_capacity(con, answers, SimpleNamespace(run_id="r1", status="finished", wall_s=300.0, store_url="s.db"),
                   wide=True)
    text = con.export_text()
    assert "[10.2, 14.9]" in text and "0.53" in text and "< 7.7" in text and "[0.0, 7.7]" in text
    assert f"warning: resnet50/openvino: {spent}" in " ".join(text.split())
