"""`pfdeploy capacity`: the highest target QPS at which LoadGen's server scenario is VALID within a
p99 latency bound, per deployment (docs/serving.md).

Every probe is a real LoadGen server test (PerformanceOnly) of the minimum the bound needs: at
least `min_duration_s` and the 460 queries LoadGen's early stopping needs to accept a p99 with no
query over the bound. A probe far above capacity issues at most what 1.5x the saturated throughput
serves in the duration (`LoadGenSettings.query_bound`), so it ends soon after its duration instead
of draining minutes of queue, and LoadGen still judges it.

The search spends its budget where the answer is. The first worker process measures the saturated
throughput S (a LoadGen Offline test); the first probe goes where an M/M/1 queue served at S would
meet the bound (within [0.3 S, 0.7 S]). While the rate is not bracketed yet, the next probe is
placed by the probes so far: their p99s fit p99(q) = a + c / (S - q) (a: just under the fastest
p50 seen; the fit through the probe whose p99 is nearest the bound) and the next probe goes where
that curve reaches 90% of the bound, kept inside safeguards: x1.1-x1.6 above the last VALID (never
past 1.05 S) while every probe was VALID, x0.5-x0.85 of the first INVALID while none was; where no
fit can be made (no p99, a rate at or above S) the steps are geometric (x1.25 up, x0.7 down). Once
both exist the bracket [last VALID, first INVALID] is bisected (geometric mean) until it is
narrower than `tolerance`: next to the answer one rate is VALID in one process and INVALID in
another, and a fitted point kept landing on the same side (10 probes for one deployment at a
200 ms bound).

A probe costs its 460 queries at the lower of its rate and the capacity: at 2 QPS that is 230 s.
No probe is planned below the floor `max(0.02 S, queries / MAX_PROBE_S)` (7.7 QPS for 460 queries
and 60 s): a deployment that is INVALID even there has capacity 0, "below the floor", with the
floor and the p50 seen there in the row's warning, instead of a search that descends into probes
of many minutes (issue 31: a 100 ms bound on 2 cores). Each further worker process re-probes the
last VALID rate and steps down where its verdict differs, so the answer carries the spread between
processes (a process that disagrees beyond a few steps searches afresh): capacity = the lowest
last-VALID QPS of any process (VALID in every process), bracket = [that, the highest first-INVALID
QPS of any process].

The search has a budget (`--budget`, default 12 minutes for all deployments of the command): each
deployment gets an equal share of what is left when its search starts (a deployment that finishes
early leaves its rest to the next), and the first process stops bisecting when the next probe and
the other processes' confirming probes would not fit its share. Bracketing is never cut (without a
VALID and an INVALID rate there is no answer) and neither is a confirming process (the capacity is
VALID in every process); a bracket left wider than the tolerance says so in the row.
"""
from __future__ import annotations

import math
import time

from ..model import CaseRun
from .group import LoadGenPolicy
from .settings import LoadGenSettings

START_SHARE = 0.7  # the first probe, as a share of the saturated throughput: at most
LOW_START_SHARE = 0.3  # and at least (the floor below still applies)
UP, DOWN = 1.25, 0.7  # bracketing steps
CEILING_SHARE = 1.05  # bracketing never probes above this share of the saturated throughput
MAX_PROBES = 12  # of the first process (bracketing and bisection together)
MAX_PROBE_S = 60.0  # no probe is planned whose minimum query count at its rate takes longer than this
AIM = 0.9  # a fitted probe aims at this share of the bound (just below: a VALID there moves the bracket up)
CONFIRM_STEPS = 3  # outward steps (of the tolerance) of a later process whose verdict differs at an end
FLOOR_SHARE = 0.02  # below this share of S no QPS meets the bound: capacity 0 (and see MAX_PROBE_S)
PROBE_EXTRA_S = 2.0  # a probe's cost beyond its queries at its rate, until one has been timed
KEEP_DETAIL = 2  # detail logs kept per process: the decisive probes (last VALID, first INVALID)


def first_probe(saturated: float, bound_ms: float) -> float:
    """Where the search starts: the rate at which an M/M/1 queue served at the saturated rate S has
    its p99 sojourn time at the bound (S - ln(100) / bound), kept within [LOW_START_SHARE x S,
    START_SHARE x S]: a probe costs its 460 queries at the lower of its rate and the capacity, so
    low starts are dear.
    Only a start: every verdict is LoadGen's."""
    guess = saturated - math.log(100) / (bound_ms / 1e3)
    return min(max(guess, LOW_START_SHARE * saturated), START_SHARE * saturated)


class CapacityPolicy(LoadGenPolicy):
    """Searches the capacity of each case of a rotation, one deployment after another, through the
    Rotation's public steps only."""

    name = "capacity"
    clock = staticmethod(time.monotonic)
    deadline: float | None = None  # of the case being searched (None: no budget)
    share_s: float | None = None

    def run(self, rot) -> None:
        self.measure_overhead(rot, None)
        self.bind(rot)
        cases = list(rot.pending())
        t0 = self.clock()
        for i, case in enumerate(cases):
            self.plan_share(t0, len(cases) - i)
            self.search(case)

    def plan_share(self, t0: float, left: int) -> None:
        """The next deployment's share of the budget: what is left of it, over the deployments left."""
        budget = self.budget_s
        if budget is None:
            self.deadline = self.share_s = None
            return
        now = self.clock()
        self.share_s = max(0.0, budget - (now - t0)) / max(left, 1)
        self.deadline = now + self.share_s

    def bind(self, rot) -> None:
        """Search the cases of `rot` (a Rotation: only its public steps are used)."""
        self.rot = rot
        self.cfg, self.rule, self.engine = rot.config, rot.rule, rot.engine

    # ------------------------------------------------------------------ settings
    @property
    def bound_ms(self) -> float:
        return float(self.cfg.loadgen["latency_bound_ms"])

    @property
    def tolerance(self) -> float:
        return float(self.cfg.loadgen.get("tolerance", 0.15))

    @property
    def budget_s(self) -> float | None:
        b = self.cfg.loadgen.get("budget_s")
        return None if b is None else float(b)

    def probe_cost(self, qps: float, state: dict) -> float:
        """What a probe at `qps` is expected to take: its queries at its rate plus what the probes so
        far took beyond theirs (LoadGen's start and end, the drain of the queue)."""
        extra = state.get("probe_extra_s") or []
        over = sorted(extra)[len(extra) // 2] if extra else PROBE_EXTRA_S
        return self.probe_settings(qps).expected_s() + max(over, 0.0)

    def over_budget(self, qps: float, lo: float, state: dict, process: int) -> bool:
        """True when a probe at `qps` in process `process`, then one confirming probe at `lo` in each
        later process (with its worker's start), would end past this deployment's share."""
        if self.deadline is None:
            return False
        later = self.rule.processes - process
        reserve = later * (self.probe_cost(lo, state) + state.get("start_s", 0.0))
        return self.clock() + self.probe_cost(qps, state) + reserve > self.deadline

    def probe_settings(self, qps: float) -> LoadGenSettings:
        lg = {k: v for k, v in self.cfg.loadgen.items() if k in ("min_duration_s", "min_queries", "samples")}
        return LoadGenSettings(scenario="capacity", target_qps=qps, latency_bound_ms=self.bound_ms,
                               seed=self.cfg.seed, **lg)

    # ------------------------------------------------------------------ the search
    def search(self, case: CaseRun) -> None:
        t0 = self.clock()
        state = {"probes_by_process": [], "curve": [], "saturated": None, "offline": None}
        for gen in range(self.rule.processes):
            t_start = self.clock()
            if case.spec.key in self.rot.failed or not self.start_worker(self.rot, case, gen):
                return
            if gen == 0:
                state["start_s"] = self.clock() - t_start
            proc = {"process": gen + 1, "pid": case.loads[-1].get("pid"), "probes": []}
            state["probes_by_process"].append(proc)
            if gen == 0:
                off = self.test(self.rot, case, LoadGenSettings(scenario="offline", seed=self.cfg.seed,
                                                      min_duration_s=self.cfg.loadgen.get("min_duration_s", 2.0)),
                                "offline (saturated throughput)")
                if off is None:
                    return
                state["offline"] = _slim(off[0], keep_detail=True)
                state["saturated"] = off[0].get("completed_qps")
                ok = self.first_search(case, proc, state)
            else:
                ok = self.confirm(case, proc, state)
            if not ok:
                return
            if not self.rot.close_worker(case):
                return
        self.finish(self.rot, case, self.answer(case, state, self.clock() - t0))

    def probe(self, case: CaseRun, proc: dict, state: dict, qps: float) -> bool | None:
        """One LoadGen server test at `qps`: True VALID, False INVALID, None the case failed."""
        t0 = self.clock()
        settings = self.probe_settings(qps)
        done = self.test(self.rot, case, settings, f"server at {qps:.1f} QPS")
        if done is None:
            return None
        state.setdefault("probe_extra_s", []).append(self.clock() - t0 - settings.expected_s())
        rec, samples = done
        valid = rec.get("validity") == "VALID"
        pct = rec.get("percentiles_ms") or {}
        p50, p99 = pct.get("p50"), pct.get("p99")
        state.setdefault("points", []).append((proc["process"], qps, p50, p99))  # for the fit and the floor
        p = {"target_qps": qps, "valid": valid, "achieved_qps": rec.get("completed_qps"),
             "p99_ms": p99, "p50_ms": p50, "reasons": rec.get("reasons"),
             "wall_s": rec.get("wall_s"), "query_bound": rec.get("query_bound"), "record": rec, "samples": samples}
        proc["probes"].append(p)
        state["curve"].append({k: p[k] for k in ("target_qps", "achieved_qps", "p50_ms", "p99_ms", "valid")}
                              | {"process": proc["process"]})
        return valid

    def floor(self, saturated: float) -> float:
        """The lowest rate a probe is planned at: FLOOR_SHARE x S, and no lower than the rate at
        which the probe's minimum query count takes MAX_PROBE_S seconds."""
        return max(FLOOR_SHARE * saturated, self.probe_settings(1.0).queries / MAX_PROBE_S)

    def first_search(self, case: CaseRun, proc: dict, state: dict) -> bool:
        s = float(state["saturated"] or 0) or 1.0
        floor = self.floor(s)
        lo, hi = None, None
        q = max(first_probe(s, self.bound_ms), floor)
        while len(proc["probes"]) < MAX_PROBES:
            v = self.probe(case, proc, state, q)
            if v is None:
                return False
            if v:  # every probe lies inside (lo, hi): the bracket only narrows
                lo = q
            else:
                hi = q
            fit = None if lo is not None and hi is not None else fitted_rate(
                [pt[1:] for pt in state["points"] if pt[0] == proc["process"]], s, AIM * self.bound_ms)
            if lo is not None and hi is not None:
                if hi / lo - 1 <= self.tolerance:
                    break
                # bisection (geometric): next to the answer the verdicts of one rate differ from
                # process to process, and a fitted point lands on one side again and again
                q = math.sqrt(lo * hi)
                if self.over_budget(q, lo, state, proc["process"]):
                    proc["budget_stop"] = True
                    break
            elif lo is not None:  # VALID so far: up, never far past saturation
                if lo >= CEILING_SHARE * s:
                    q = lo * 1.1
                else:
                    top = min(lo * 1.6, CEILING_SHARE * s)
                    q = _clamp(fit, min(lo * 1.1, top), top, min(lo * UP, CEILING_SHARE * s))
            else:  # INVALID so far: down, until the floor
                if hi <= floor * (1 + 1e-9):
                    proc["below_floor"] = floor
                    break
                q = max(_clamp(fit, hi * 0.5, hi * 0.85, hi * DOWN), floor)
        proc["lo"], proc["hi"] = lo, hi
        return True

    def confirm(self, case: CaseRun, proc: dict, state: dict) -> bool:
        first = state["probes_by_process"][0]
        lo, hi = first.get("lo"), first.get("hi")
        floor = self.floor(float(state["saturated"] or 0) or 1.0)
        if lo:
            for _ in range(CONFIRM_STEPS + 1):
                v = self.probe(case, proc, state, lo)
                if v is None:
                    return False
                if v:
                    break
                hi = lo if hi is None or lo < hi else hi
                lo = lo * (1 - self.tolerance)
                if lo < floor:
                    proc["below_floor"], lo = floor, None
                    break
            else:  # far from the first process's answer: this process searches afresh
                return self.first_search(case, proc, state)
        # the first INVALID is not re-probed: above capacity a probe costs as much as below it (460
        # queries at the rate the runtime drains them), and the answer is the last VALID
        proc["lo"], proc["hi"] = lo, (hi if any(not p["valid"] and p["target_qps"] == hi for p in proc["probes"])
                                      else None)
        return True

    # ------------------------------------------------------------------ the answer
    def answer(self, case: CaseRun, state: dict, wall_s: float) -> dict:
        procs = state["probes_by_process"]
        los = [p.get("lo") for p in procs]
        his = [p.get("hi") for p in procs if p.get("hi")]
        capacity = 0.0 if any(v is None for v in los) else min(los)
        at_capacity = []
        for i, p in enumerate(procs):  # the row's latencies: every process's probe at its last VALID rate
            rnd = self.engine.next_round()
            for probe in p["probes"]:
                if probe["valid"] and probe["target_qps"] == p.get("lo"):
                    s = probe["samples"]  # CaseRun.add_round would credit the last process: set it here
                    case.samples += s
                    case.rounds += [rnd] * len(s)
                    case.procs += [i] * len(s)
                    case.process_rounds[i].append(rnd)
                    case.measured_ns += sum(s)
                    at_capacity.append(probe["record"])
                    break
        saturated = state["saturated"]
        warnings = []
        floors = [p["below_floor"] for p in procs if p.get("below_floor")]
        if floors:
            p50 = [p50 for _, q, p50, _ in state.get("points", ()) if q <= min(floors) * 1.001 and p50 is not None]
            seen = f"; p50 there {min(p50):.0f} ms" if p50 else ""
            warnings.append(f"INVALID at {min(floors):.1f} QPS, the lowest rate probed (a probe below takes over "
                            f"{MAX_PROBE_S:g} s for its {self.probe_settings(1.0).queries} queries): capacity below "
                            f"that at p99 <= {self.bound_ms:g} ms{seen}")
        top = max(his) if his else None  # the bracket's upper end
        budget_spent = any(bool(p.get("budget_stop")) for p in procs)
        if budget_spent and capacity and top and top / capacity - 1 > self.tolerance:
            warnings.append(f"the bracket is {top / capacity - 1:.0%} wide, over the {self.tolerance:.0%} "
                            f"tolerance: this deployment's share of --budget ({self.share_s:.0f} s) was spent; "
                            "a larger --budget narrows it")
        if saturated and capacity > saturated:
            warnings.append(f"capacity {capacity:.1f} QPS above the saturated throughput {saturated:.1f}: "
                            "the machine's load changed between the tests")
        overhead = self.overhead or {}
        if overhead.get("offline_qps") and capacity > 0.5 * overhead["offline_qps"]:
            warnings.append("LoadGen's own rate is within 2x of this capacity: the generator may limit it")
        per_query = max([s.get("cpu_s_per_query") or 0 for s in overhead.get("server") or []], default=0)
        if per_query * capacity > 0.1:  # the generator and the SUT's callbacks alone take >10% of a core
            warnings.append(f"LoadGen and the SUT's callbacks take about {per_query * capacity:.0%} of a core at this "
                            "capacity: the capacity includes their cost")
        for p in procs:
            decisive = {p.get("lo"), p.get("hi")}
            kept = 0
            for probe in p["probes"]:
                keep = probe["target_qps"] in decisive and kept < KEEP_DETAIL
                kept += keep
                probe["record"] = _slim(probe.pop("record"), keep_detail=keep)
                probe.pop("samples", None)
        p99 = [r.get("percentiles_ms", {}).get("p99") for r in at_capacity]
        return {
            "scenario": "capacity", "loadgen_scenario": "Server", "latency_bound_ms": self.bound_ms,
            "capacity_qps": capacity, "bracket_qps": [capacity, top],
            "floor_qps": min(floors) if floors else None,
            "validity": "VALID" if capacity > 0 else "INVALID",
            "achieved_qps": capacity or None, "target_qps": capacity or None,
            "p99_at_capacity_ms": max([v for v in p99 if v is not None], default=None),
            "saturated_qps": saturated, "capacity_vs_saturated": capacity / saturated if saturated else None,
            "tolerance": self.tolerance, "budget_share_s": self.share_s,
            "budget_spent": budget_spent, "processes": procs, "offline": state["offline"],
            "curve": sorted(state["curve"], key=lambda c: (c["target_qps"], c["process"])),
            "probes": sum(len(p["probes"]) for p in procs), "search_wall_s": wall_s,
            "settings": self.probe_settings(capacity or 1.0).to_dict() | {"target_qps": None},
            "note": ("each probe a PerformanceOnly LoadGen server test of at least "
                     f"{self.probe_settings(1.0).min_duration_s:g} s and {self.probe_settings(1.0).queries} "
                     "queries (an MLPerf submission runs 600 s); capacity = the lowest last-VALID QPS of any "
                     "worker process"),
            "warnings_row": warnings,
        }


def _clamp(x: float | None, lo: float, hi: float, fallback: float) -> float:
    return fallback if x is None else min(max(x, lo), hi)


def fitted_rate(points: list[tuple], saturated: float, target_ms: float) -> float | None:
    """The rate at which p99(q) = a + c / (S - q) reaches `target_ms`, fitted through the probe
    whose p99 is nearest the target. `points`: one process's probes as (qps, p50 ms, p99 ms); a is
    0.9 x their smallest p50, a floor under any query's latency. None where no fit can be made (no
    p99 below S, or the target under `a`: even an idle queue misses it)."""
    pts = [(q, p99) for q, _, p99 in points if p99 and q < saturated]
    p50s = [p50 for _, p50, _ in points if p50]
    if not pts:
        return None
    a = 0.9 * min(p50s) if p50s else 0.0
    q, p99 = min(pts, key=lambda pt: abs(math.log(pt[1] / target_ms)))
    if p99 <= a or target_ms <= a:
        return None
    return saturated - (p99 - a) * (saturated - q) / (target_ms - a)


def _slim(rec: dict, keep_detail: bool) -> dict:
    """A probe's record for the row: the summary log always, the detail log only where it decides."""
    out = {k: v for k, v in rec.items() if k not in ("detail", "effective")}
    if keep_detail:
        out["detail"] = rec.get("detail")
    return out
