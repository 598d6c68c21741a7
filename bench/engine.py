"""The case engine: plan cases, prepare artifacts and inputs, run every case in several fresh
worker processes with interleaved rounds, apply the stopping rule, store each finished case at once
(docs/method.md). One concern per module:

    plan.py      which cases, which skipped and why, which share a rotation
    prepare.py   params/MACs, inputs, torch weights, artifacts, PyTorch references (once each)
    rotation.py  one group measured in generations of worker processes, interleaved rounds
    rows.py      a case's result row and its warning rules
    model.py     the data: BenchConfig, Prepared, CaseRun, CaseResult, Outcome, Progress
    engine.py    the run itself: store bookkeeping, signals, cleanup

Ctrl-C, SIGTERM or SIGHUP (pfdeploy.signals) kill the workers, keep every finished case, mark the
run interrupted and remove the temporary directory; workers also die with the parent if it is
killed outright (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..backends.case import LOADGEN_SCENARIOS
from ..errors import UserError
from .model import (ROUND_TIME_S, THREAD_ENV, BenchConfig, CaseResult, CaseRun, Outcome, Prepared,  # noqa: F401
                    Progress)
from .plan import MAX_GROUP, groups, plan_cases, precisions_for  # noqa: F401
from .prepare import Preparer
from .rotation import Rotation, StopRulePolicy
from .rows import build_row


def load_timeout_s(backend: str) -> float:
    """How long a worker's load (runtime import, model load, first inference) may take: what the
    backend declares (`Backend.load_timeout_s`: 300 s, 900 s for torch-compile, which compiles at
    the first inference); $PFDEPLOY_LOAD_TIMEOUT_S overrides every backend."""
    raw = os.environ.get("PFDEPLOY_LOAD_TIMEOUT_S")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"PFDEPLOY_LOAD_TIMEOUT_S={raw!r} is not a number of seconds") from None
        if value <= 0:
            raise UserError(f"PFDEPLOY_LOAD_TIMEOUT_S must be positive, not {raw!r}")
        return value
    from ..backends import get_backend

    return get_backend(backend).load_timeout_s


def git_commit(cwd: str | None = None) -> str | None:
    """The commit under test: $GITHUB_SHA in CI, else `git rev-parse HEAD` of the working directory."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None




class Engine:
    """Runs one benchmark: `Engine(config, store).run(progress)` -> Outcome."""

    def __init__(self, config: BenchConfig, store, store_url: str = "", policy=None, grouping=None, launcher=None):
        """`policy`: the named policy that measures each rotation through the Rotation's public
        steps (default `StopRulePolicy`, bench's stopping rule; `pfdeploy tune` runs its race and
        final rotation, `pfdeploy ab` its blocks); `grouping(todo, interleave)`: how cases are
        split into rotations (default plan.groups); `launcher(case)`: how a case's worker process
        is started (default: this interpreter)."""
        if config.processes is not None:  # --processes: this many worker processes per case at least
            config.rule = config.rule.with_processes(config.processes)
        self.config = config
        if policy is None and config.scenario in LOADGEN_SCENARIOS:  # issue 31: LoadGen runs the case
            from .loadgen.group import LoadGenPolicy

            policy = LoadGenPolicy()
        self.policy = policy or StopRulePolicy()
        self.launcher = launcher
        self.grouping = grouping or groups
        self.store = store
        self.store_url = store_url
        self.live: dict[str, CaseRun] = {}  # cases with a live worker (killed on interrupt)
        self.failed: set[str] = set()
        self._results: list[CaseResult] = []
        self._progress = Progress()
        self._done_units = 0.0
        self._total_units = 0.0
        self._next_round = 0  # round ids are unique within the run: one id per rotation
        self.notes: list[str] = []
        self.oversubscribed: str | None = None

    # ------------------------------------------------------------------ planning (see plan.py)
    def plan(self, device, threads: int):
        return plan_cases(self.config, device, threads)

    def precisions_for(self, backend, device, available: bool = True) -> list[str]:
        return precisions_for(self.config, backend, device, available)

    # ------------------------------------------------------------------ the run
    def run(self, progress: Progress | None = None, prepared_cases: list | None = None) -> Outcome:
        """Plan, prepare and run every case; `prepared_cases` [(CaseSpec, Prepared)] replaces
        planning and preparation (the engine's own tests use it with the fake runner)."""
        from .. import __version__
        from ..backends import machine_metadata
        from ..devices import parse_device, physical_cores

        self._progress = progress or Progress()
        cfg = self.config
        t0 = time.monotonic()
        device = parse_device(cfg.device)  # UsageError (exit 2) for an unusable GPU
        cores = physical_cores()
        threads = cfg.threads or cores
        self.oversubscribed = None
        if threads > cores:
            self.oversubscribed = (f"{threads} threads on {cores} physical core(s): hyper-threads share a core's "
                                    f"units, so these figures measure contention as well as the runtime")
            self.notes.append(f"warning: {self.oversubscribed}")
        if prepared_cases is None:
            runnable, skipped = self.plan(device, threads)
        else:
            runnable, skipped = [c for c, _ in prepared_cases], []
        self._progress.phase("collecting machine metadata")
        meta = machine_metadata()
        self.run_meta = {
            "tag": cfg.tag, "git_commit": git_commit(), "suite": cfg.suite, "suite_version": cfg.suite_version,
            "machine_id": meta.get("machine_id"), "machine": meta, "tools": meta.get("tools", {}),
            "config": {**cfg.to_dict(), "threads": threads, "device": str(device),
                       "env": {k: os.environ[k] for k in sorted(os.environ) if k in THREAD_ENV}},
            "pfdeploy_version": __version__, "loadavg_before": _loadavg(),
        }
        run_id = self.store.begin_run(self.run_meta)
        self.run_id = run_id
        status = "failed"
        signum = None
        tmp = Path(tempfile.mkdtemp(prefix="pfdeploy-bench-"))
        begin = getattr(self.policy, "begin", None)
        try:
            if begin is not None:  # a policy that keeps runs of its own (ab's head run) begins them here
                begin(self)
            for spec, why in skipped:
                self.commit(CaseResult(spec, build_row(cfg, spec, Prepared(), "skipped", why,
                                                       **self._policy_records(spec, "skipped", why))))
            prepared = (Preparer(cfg, self._progress).prepare(runnable, tmp) if prepared_cases is None
                        else {c.key: p for c, p in prepared_cases})
            todo = []
            for spec in runnable:
                prep = prepared[spec.key]
                if prep.error:
                    self.commit(CaseResult(spec, build_row(cfg, spec, prep, "failed", prep.error,
                                                           **self._policy_records(spec, "failed", prep.error))))
                else:
                    todo.append((spec, prep))
            self._total_units = sum(self.case_units() for _ in todo)
            self._progress.plan(self._total_units)
            for group in self.grouping(todo, cfg.interleave):
                self.policy.run(Rotation(self, group, launcher=self.launcher))
            status = "finished"
        except KeyboardInterrupt as exc:  # pfdeploy.signals.Interrupted for SIGTERM/SIGHUP too
            status = "interrupted"
            signum = getattr(exc, "signum", None) or 2
        finally:
            from .. import signals

            with signals.deferred():  # a second signal must not cut the cleanup in half
                for case in list(self.live.values()):
                    if case.worker is not None:
                        case.worker.kill()
                        case.worker.cleanup()
                self.live.clear()
                shutil.rmtree(tmp, ignore_errors=True)
                end = getattr(self.policy, "end", None)
                if end is not None:
                    end(self, status)
                self.store.finish_run(run_id, status, loadavg_after=_loadavg())
        return Outcome(run_id, status, self._results, self.store_url, time.monotonic() - t0, self.notes,
                       signum=signum)

    def _policy_records(self, spec, status: str, why: str | None) -> dict:
        """The records the policy adds to a case the engine stores itself, before any rotation
        (skipped, or failed in preparation): e.g. tune's record of a candidate that never raced."""
        records = getattr(self.policy, "records", None)
        return records(spec, status, why) if records is not None else {}

    # ------------------------------------------------------------------ for the Rotation
    def case_units(self) -> float:
        """A case's share of the progress bar: each process's load and warm-up, and its measured time."""
        r = self.config.rule
        return r.processes * (r.warmup_time_s + 1.0) + r.min_time_s

    def load_timeout(self, backend: str) -> float:
        return load_timeout_s(backend)

    def next_round(self) -> int:
        rnd = self._next_round
        self._next_round += 1
        return rnd

    def label(self, spec) -> str:
        """The case as the progress line names it: precision and batch only where the run has
        several (the line must fit an 80-column terminal)."""
        parts = [spec.model, spec.backend]
        if len(self.config.precisions) > 1:
            parts.append(spec.precision)
        if len(self.config.batches) > 1:
            parts.append(f"b{spec.batch}")
        return "/".join(parts)

    def update(self, current: str) -> None:
        self._progress.update(current, self._done_units, self._total_units)

    def advance(self, units: float) -> None:
        self._done_units = min(self._total_units, self._done_units + units)

    def drop_units(self, units: float) -> None:
        self._total_units = max(self._done_units, self._total_units - units)

    def commit(self, done: CaseResult, run_id=None) -> None:
        """Store a finished case's typed result (its samples with it) at once, in this engine's run
        or in `run_id` (another run a policy began in the same store)."""
        run_id = run_id or self.run_id
        rid = self.store.add_result(run_id, done.result)
        done.result_id = rid
        done.result = done.result.model_copy(update={"id": rid, "run_id": run_id})
        self._results.append(done)
        self._progress.case_done(done)
