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
from .config import CaseSpec
from .model import CaseResult, CaseRun, Prepared
from .rows import build_row
from .stats import ci_halfwidth_rel
from .timing import Decision, decide, round_size
from .worker import WorkerDied, WorkerError, WorkerProcess

MEASURE_TIMEOUT_MIN_S = 60.0  # a worker silent for this long plus 20x its expected round time is hung


class GroupRunner:
    """Runs one group for an Engine (its config, progress, store commit, live-worker registry and
    round counter)."""

    def __init__(self, engine):
        self.engine = engine
        self.cfg = engine.config
        self.rule = engine.config.rule

    # ------------------------------------------------------------------ the generations
    def run(self, group: list[tuple[CaseSpec, Prepared]]) -> None:
        pending = [CaseRun(spec, prep, budget_units=self.engine.case_units()) for spec, prep in group]
        self.done: set[str] = set()
        gen = 0
        while pending:
            live = self._start_generation(pending, gen)
            self._rotate(live)  # a case whose last process closes is judged (and stored) at once
            gen += 1
            pending = [c for c in pending if c.spec.key not in self.done and c.spec.key not in self.engine.failed]

    def process_share_s(self) -> float:
        """Measured time of each worker process of this generation (subclasses reallocate it)."""
        return self.rule.process_time_s()

    def process_share_rounds(self) -> int:
        return self.rule.process_rounds()

    def _judge(self, case: CaseRun) -> None:
        """After a process of `case` closed: with at least `rule.processes` processes, apply the
        stopping rule to everything measured and store the case when it stops (so a finished case
        is committed while the others of its group go on)."""
        if len(case.process_rounds) < self.rule.processes and case.measured_ns < self.rule.max_time_s * 1e9:
            return
        decision = decide(self.rule, case.samples, case.measured_ns, rounds=case.rounds, procs=case.procs)
        if not decision.stop and len(case.process_rounds) >= self.rule.max_processes:
            hw = decision.ci_halfwidth
            if hw is None and len(case.samples) >= 2:  # stopped short of min_iters: say how wide it is
                hw = ci_halfwidth_rel(case.samples, case.rounds, procs=case.procs)
            decision = Decision(True, "max_processes", hw)
        if decision.stop:
            self.done.add(case.spec.key)
            self._finish(case, decision)

    def _start_generation(self, cases: list[CaseRun], gen: int) -> list[CaseRun]:
        eng, rule = self.engine, self.rule
        started: list[CaseRun] = []
        for case in cases:  # load one at a time
            spec, prep = case.spec, case.prep
            eng.update(f"loading {eng.label(spec)}" + (f" (process {gen + 1})" if gen else ""))
            case.worker = WorkerProcess(spec.label)
            case.process_rounds.append([])
            case.proc_measured_ns = 0
            eng.live[spec.key] = case
            try:
                load = case.worker.call("load", timeout_s=eng.load_timeout(spec.backend), case=spec.to_dict(),
                                        inputs=prep.inputs, model_file=prep.model_file,
                                        weights_file=prep.weights_file)
            except (WorkerDied, WorkerError) as exc:
                self._fail(case, exc, "load")
                continue
            case.load = case.load or load
            case.loads.append({"pid": load.get("pid"), "load_ms": load.get("load_ms"),
                               "first_ms": load.get("first_ms")})
            if gen == 0 and prep.parity_inputs:
                try:
                    self._runtime_parity(case, tmp_dir=Path(prep.parity_inputs).parent)
                except (WorkerDied, WorkerError) as exc:
                    self._fail(case, exc, "parity check")
                    continue
            started.append(case)
        live = []
        for case in started:  # warm up one at a time
            eng.update(f"warming up {eng.label(case.spec)}")
            try:
                reply = case.worker.call("warmup", timeout_s=max(600, 20 * rule.max_time_s), rule=rule.to_dict(),
                                         max_time_s=max(rule.max_time_s, 10 * rule.warmup_time_s))
            except (WorkerDied, WorkerError) as exc:
                self._fail(case, exc, "warm-up")
                continue
            if gen == 0:  # every process measures rounds of the same size
                case.warmup_n = len(reply["samples_ns"])
                case.k = round_size(reply["samples_ns"], self.cfg.round_time_s)
            case.loads[-1]["warmup_n"] = len(reply["samples_ns"])
            eng.advance(rule.warmup_time_s + 1.0)
            live.append(case)
        return live

    def _rotate(self, live: list[CaseRun]) -> None:
        eng, rule, cfg = self.engine, self.rule, self.cfg
        share_ns = self.process_share_s() * 1e9
        share_rounds = self.process_share_rounds()
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
                    self._fail(case, exc, f"measurement round {rnd + 1}")
                    live.remove(case)
                    continue
                s = case.add_round(rnd, reply)
                case.cpu = add_usage(case.cpu, reply.get("cpu"))
                before = case.proc_measured_ns - sum(s)
                eng.advance(min(sum(s) / 1e9, max(0.0, share_ns - before) / 1e9))
                if (case.measured_ns >= rule.max_time_s * 1e9
                        or (case.proc_measured_ns >= share_ns and len(case.process_rounds[-1]) >= share_rounds)):
                    live.remove(case)
                    if self._close_worker(case):
                        self._judge(case)

    # ------------------------------------------------------------------ one worker
    def _runtime_parity(self, case: CaseRun, tmp_dir: Path) -> None:
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

    def _close_worker(self, case: CaseRun) -> bool:
        try:
            case.finals.append(case.worker.close())
        except (WorkerDied, WorkerError) as exc:
            self._fail(case, exc, "close")
            return False
        finally:
            self.engine.live.pop(case.spec.key, None)
        case.worker = None
        return True

    def _fail(self, case: CaseRun, exc: Exception, when: str) -> None:
        eng = self.engine
        if isinstance(exc, WorkerDied):
            msg = f"{exc.detail}"
            if exc.log_tail:
                msg += f"; last output: {exc.log_tail.splitlines()[-1][:300]}"
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
        row = build_row(self.cfg, case.spec, case.prep, "failed", msg, live=case, oversubscribed=eng.oversubscribed)
        eng.drop_units(case.budget_units)  # the failed case's share of the progress bar
        eng.commit(CaseResult(case.spec, row, case.samples, case.rounds))

    def _finish(self, case: CaseRun, decision: Decision) -> None:
        final = merge_finals(case.finals)
        row = build_row(self.cfg, case.spec, case.prep, "ok", None, live=case, final=final, decision=decision,
                        oversubscribed=self.engine.oversubscribed)
        self.engine.commit(CaseResult(case.spec, row, case.samples, case.rounds,
                                      device_samples_ns=[int(v * 1e6) for v in case.device_ms] or None))


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
