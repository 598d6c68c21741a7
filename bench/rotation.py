"""Measuring one interleaving group in generations of fresh worker processes (docs/method.md,
"Isolation, interleaving and several processes per case").

A generation starts one worker per case of the group, loads them one after another, warms each
up, then drives rotations A, B, C, A, B, C ... with exactly one worker running at a time while the
others wait on their pipe; every rotation has its own round id, shared by the cases that ran in
it. A worker leaves the rotation once it has measured its share (`StopRule.process_time_s` and
`process_rounds`) and is closed (its peak memory recorded). Then the next generation starts new
workers. After `rule.processes` generations each case's stopping rule is applied to everything
its processes measured (the hierarchical CI); a case whose CI is still wider than the target gets
another generation, up to `rule.max_processes` processes and `rule.max_time_s` measured time.

Only the first generation's runner is verified against PyTorch (the parity check); later
generations load the same artifact with the same settings. A worker that dies fails its case
(the samples measured so far are kept in the failed row).
"""
from __future__ import annotations

from pathlib import Path

from ..devices.cpuload import add_usage
from ..exporters.artifact import parity_verdict
from ..result import Result
from .config import CaseSpec
from .model import CaseResult, CaseRun, Prepared
from .rows import build_row
from .stats import ci_halfwidth_rel
from .timing import Decision, decide, round_size
from .worker import WorkerDied, WorkerError, WorkerProcess

MEASURE_TIMEOUT_MIN_S = 60.0  # a worker silent for this long plus 20x its expected round time is hung


class Rotation:
    """One interleaving group of cases measured for an Engine, exposed as public steps that a
    policy composes (bench/policy.py: the stop rule, tune's race and final rotation, `ab`'s
    blocks). The Rotation owns the workers, the round ids and the commit; the policy decides which
    cases get a fresh worker process next, how long each process measures and when a case is
    stored."""

    def __init__(self, engine, group: list[tuple[CaseSpec, Prepared]], launcher=None):
        """`launcher(case) -> WorkerProcess`: how a case's worker process is started (default: this
        interpreter; `ab` starts each side's worker with that side's interpreter)."""
        self.engine = engine
        self.config = engine.config
        self.rule = engine.config.rule
        self.launcher = launcher or (lambda case: WorkerProcess(case.spec.label))
        self.cases: dict[str, CaseRun] = {spec.key: CaseRun(spec, prep, budget_units=engine.case_units())
                                          for spec, prep in group}
        self.stored: set[str] = set()  # decided: no further process (committed, or held by the policy)
        self.committed: set[str] = set()

    # ------------------------------------------------------------------ state
    @property
    def failed(self) -> set[str]:
        return self.engine.failed

    def pending(self) -> list[CaseRun]:
        """Cases neither stored nor failed, in the group's order."""
        return [c for k, c in self.cases.items() if k not in self.stored and k not in self.engine.failed]

    # ------------------------------------------------------------------ the public steps
    def start_generation(self, cases: list[CaseRun], gen: int, warm: bool = True) -> list[CaseRun]:
        """Start one fresh worker process per case (in the given order), load, verify (the first
        generation), warm up (`warm=False`: no warm-up, a policy whose test warms up itself, e.g.
        LoadGen's); returns the cases whose worker is ready to measure."""
        eng, rule = self.engine, self.rule
        started: list[CaseRun] = []
        for case in cases:  # load one at a time
            spec, prep = case.spec, case.prep
            eng.update(f"loading {eng.label(spec)}" + (f" (process {len(case.process_rounds) + 1})"
                                                       if case.process_rounds else ""))
            case.process_rounds.append([])
            case.proc_measured_ns = 0
            eng.live[spec.key] = case
            try:
                case.worker = self.launcher(case)
            except OSError as exc:  # the interpreter of a side could not be started
                self.fail(case, f"could not start its worker process: {exc}")
                continue
            try:
                load = case.worker.call("load", timeout_s=eng.load_timeout(spec.backend), case=spec.to_dict(),
                                        inputs=prep.inputs, model_file=prep.model_file,
                                        weights_file=prep.weights_file)
            except (WorkerDied, WorkerError) as exc:
                self.fail(case, exc, "load")
                continue
            case.load = case.load or load
            case.loads.append({"pid": load.get("pid"), "load_ms": load.get("load_ms"),
                               "first_ms": load.get("first_ms")})
            if len(case.process_rounds) == 1 and prep.parity_inputs:
                try:
                    self.runtime_parity(case, tmp_dir=Path(prep.parity_inputs).parent)
                except (WorkerDied, WorkerError) as exc:
                    self.fail(case, exc, "parity check")
                    continue
            started.append(case)
        if not warm:
            return started
        live = []
        for case in started:  # warm up one at a time
            eng.update(f"warming up {eng.label(case.spec)}")
            try:
                reply = case.worker.call("warmup", timeout_s=max(600, 20 * rule.max_time_s), rule=rule.to_dict(),
                                         max_time_s=max(rule.max_time_s, 10 * rule.warmup_time_s))
            except (WorkerDied, WorkerError) as exc:
                self.fail(case, exc, "warm-up")
                continue
            if not case.warmup_n:  # every process measures rounds of the same size (the first's)
                case.warmup_n = len(reply["samples_ns"])
                case.k = round_size(reply["samples_ns"], self.config.round_time_s)
            case.loads[-1]["warmup_n"] = len(reply["samples_ns"])
            eng.advance(rule.warmup_time_s + 1.0)
            live.append(case)
        return live

    def rotate(self, live: list[CaseRun], share_s: float, share_rounds: int, on_close=None) -> None:
        """Interleaved rounds A, B, C, A, B, C ... over the `live` cases (in this order), one
        worker running at a time, until each process has measured `share_s` seconds and
        `share_rounds` rounds; each worker is then closed and `on_close(case)` called."""
        eng, rule, cfg = self.engine, self.rule, self.config
        live = list(live)
        share_ns = share_s * 1e9
        while live:
            # one rotation: every live case measures one round; all of them share this round id
            # (and only they: ids are never reused within the run, so two results share a round
            # id only when they ran in the same rotation, back to back)
            rnd = eng.next_round()
            for case in list(live):
                eng.update(f"{eng.label(case.spec)} (process {case.process + 1}, "
                           f"round {len(case.process_rounds[-1]) + 1}, n={len(case.samples)})")
                budget = int(rule.max_time_s * 1e9) - case.measured_ns
                per_iter = (case.measured_ns / len(case.samples)) if case.samples else 1e9
                timeout = MEASURE_TIMEOUT_MIN_S + 20 * (case.k + cfg.rewarm) * per_iter / 1e9
                try:
                    reply = case.worker.call("measure", timeout_s=timeout, iters=case.k, budget_ns=budget,
                                             rewarm=cfg.rewarm)
                except (WorkerDied, WorkerError) as exc:
                    self.fail(case, exc, f"measurement round {rnd + 1}")
                    live.remove(case)
                    continue
                s = case.add_round(rnd, reply)
                case.cpu = add_usage(case.cpu, reply.get("cpu"))
                before = case.proc_measured_ns - sum(s)
                eng.advance(min(sum(s) / 1e9, max(0.0, share_ns - before) / 1e9))
                if (case.measured_ns >= rule.max_time_s * 1e9
                        or (case.proc_measured_ns >= share_ns and len(case.process_rounds[-1]) >= share_rounds)):
                    live.remove(case)
                    if self.close_worker(case) and on_close is not None:
                        on_close(case)

    def store(self, case: CaseRun, decision: Decision | None = None, status: str = "ok", error: str | None = None,
              run_id=None, **records) -> CaseResult | None:
        """Build the case's typed result from everything its processes measured (samples, device
        samples, per-process fields) and commit it: the one place a case is stored. `records`:
        what the policy adds (`tune=`, `ab=`); `run_id`: another run of this engine's store (`ab`
        stores its head side in a run of its own). A case is stored once (None the second time)."""
        if case.spec.key in self.committed or case.spec.key in self.engine.failed:
            return None
        return self.commit(case, self.result(case, decision, status, error, **records), run_id=run_id)

    def result(self, case: CaseRun, decision: Decision | None = None, status: str = "ok", error: str | None = None,
               **records) -> Result:
        """The case's typed result as `store` builds it, not committed: for a policy that adjusts it
        (`result.but(...)`) before `commit`."""
        return build_row(self.config, case.spec, case.prep, status, error, live=case, final=merge_finals(case.finals),
                         decision=decision, oversubscribed=self.engine.oversubscribed if status == "ok" else None,
                         **records)

    def commit(self, case: CaseRun, result: Result, run_id=None) -> CaseResult | None:
        """Commit `result` as the case's one stored result (None: already stored or failed)."""
        if case.spec.key in self.committed or case.spec.key in self.engine.failed:
            return None
        self.stored.add(case.spec.key)
        self.committed.add(case.spec.key)
        done = CaseResult(case.spec, result)
        self.engine.commit(done, run_id=run_id)
        return done

    def call(self, case: CaseRun, op: str, timeout_s: float, what: str = "", **payload) -> dict | None:
        """One command `op` in the case's live worker: its reply, or None when the worker died or
        failed (the case is then failed, `what` naming the step)."""
        try:
            return case.worker.call(op, timeout_s=timeout_s, **payload)
        except (WorkerDied, WorkerError) as exc:
            self.fail(case, exc, what or op)
            return None

    def fail(self, case: CaseRun, exc: Exception | str, when: str = "", run_id=None, **records) -> None:
        """Fail the case: kill its worker, store a failed result with what it measured so far."""
        eng = self.engine
        if isinstance(exc, WorkerDied):
            msg = f"{exc.detail}"
            if exc.log_tail:
                msg += f"; last output: {exc.log_tail.splitlines()[-1][:300]}"
        elif isinstance(exc, str):
            msg = exc
        else:
            msg = f"{when} failed: {exc}"
        if case.process > 0:
            msg += f" (worker process {case.process + 1} of the case)"
        if case.worker is not None:
            case.worker.kill()
            case.worker.cleanup()
            case.worker = None
        eng.live.pop(case.spec.key, None)
        eng.failed.add(case.spec.key)
        eng.drop_units(case.budget_units)  # the failed case's share of the progress bar
        if case.spec.key not in self.committed:
            self.stored.add(case.spec.key)
            self.committed.add(case.spec.key)
            eng.commit(CaseResult(case.spec, build_row(self.config, case.spec, case.prep, "failed", msg, live=case,
                                                       **records)), run_id=run_id)

    def close_worker(self, case: CaseRun) -> bool:
        try:
            case.finals.append(case.worker.close())
        except (WorkerDied, WorkerError) as exc:
            self.fail(case, exc, "close")
            return False
        finally:
            self.engine.live.pop(case.spec.key, None)
        case.worker = None
        return True

    # ------------------------------------------------------------------ one worker
    def runtime_parity(self, case: CaseRun, tmp_dir: Path) -> None:
        """Verify the case with the very runner object that is timed: it runs the parity inputs
        in its worker, the parent judges its outputs against PyTorch at the case's precision."""
        import numpy as np

        from ..exporters.parity import parity_record

        eng, prep = self.engine, case.prep
        eng.update(f"parity check {eng.label(case.spec)}")
        out = tmp_dir / f"parity_out_{case.worker.pid}.npz"
        case.worker.call("parity", timeout_s=1800, inputs=prep.parity_inputs, outputs=str(out))
        with np.load(out) as data:
            outs = [data[f"y{i}"] for i in range(len(prep.parity_refs))]
        out.unlink(missing_ok=True)
        record = parity_record([(b, ref, o, base) for (b, ref, base), o in zip(prep.parity_refs, outs)],
                               case.spec.precision, label="synthetic (the timed runner)")
        record["checked_by"] = "the timed runner object, in its worker, at the measured batch"
        artifact_parity = prep.parity or {}
        if artifact_parity.get("verdict") or artifact_parity.get("status"):
            record["artifact"] = {"verdict": parity_verdict(artifact_parity),
                                  "precision": artifact_parity.get("precision")}
        prep.parity = record


class StopRulePolicy:
    """`pfdeploy bench`'s policy: generations of fresh worker processes, each measuring
    `rule.process_time_s()`; after `rule.processes` processes a case is judged by its stopping rule
    on everything measured (the hierarchical CI) and stored as soon as it stops, while the others
    of its group go on; a case still too wide gets another process, up to `rule.max_processes`."""

    name = "stop-rule"

    def run(self, rot: Rotation, on_stop=None) -> None:
        """Measure the rotation; a case that stops is stored at once, or handed to
        `on_stop(case, decision)` (a policy that stores its cases together, e.g. tune's final
        rotation)."""
        rule = rot.rule

        def judge(case: CaseRun) -> None:
            if len(case.process_rounds) < rule.processes and case.measured_ns < rule.max_time_s * 1e9:
                return
            decision = decide(rule, case.samples, case.measured_ns, rounds=case.rounds, procs=case.procs)
            if not decision.stop and len(case.process_rounds) >= rule.max_processes:
                hw = decision.ci_halfwidth
                if hw is None and len(case.samples) >= 2:  # stopped short of min_iters: say how wide it is
                    hw = ci_halfwidth_rel(case.samples, case.rounds, procs=case.procs)
                decision = Decision(True, "max_processes", hw)
            if decision.stop:
                if on_stop is None:
                    rot.store(case, decision)
                else:
                    rot.stored.add(case.spec.key)  # decided: no further process
                    on_stop(case, decision)

        gen = 0
        pending = rot.pending()
        while pending:
            live = rot.start_generation(pending, gen)
            rot.rotate(live, rule.process_time_s(), rule.process_rounds(), on_close=judge)
            gen += 1
            pending = rot.pending()


def merge_finals(finals: list[dict]) -> dict:
    """The close replies of a case's processes as one: peak memory is the largest of any process
    (with the source of that figure), items per step the first process's."""
    if not finals:
        return {}
    out = dict(finals[0])
    for key in ("peak_rss_mb", "peak_gpu_mb", "runtime_peak_gpu_mb"):
        vals = [f.get(key) for f in finals if isinstance(f.get(key), (int, float))]
        if vals:
            out[key] = max(vals)
    return out
