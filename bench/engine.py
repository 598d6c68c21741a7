"""The case engine: plan cases, prepare artifacts and inputs, run every case in its own worker
process, interleave rounds, apply the stopping rule, store each finished case at once.

    cases = models x backends x precisions x batches (at one device, thread count and scenario)

Isolation and interleaving together (METHOD.md sections 2 and 5): every case gets one fresh
worker process that lives for the whole comparison; the parent loads them one after another, warms
each up, then drives rounds A, B, C, A, B, C ... with exactly one worker running at a time while
the others wait on their pipe. A case leaves the rotation when its stopping rule says so; its
worker then reports its peak RSS and exits, and its result row is committed to the store.
A worker that dies (a runtime segfault) fails its own case with the exit signal recorded.
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..devices.cpuload import add_usage, row_record
from ..errors import UserError
from ..exporters.artifact import parity_verdict
from .config import CaseSpec, StopRule
from .stats import CV_WARN, summarize
from .timing import Decision, decide, round_size
from .worker import WorkerDied, WorkerError, WorkerProcess

ROUND_TIME_S = 0.25  # one interleaving round of a case lasts about this long
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
    from ..backends import Backend, get_backend

    return Backend.load_timeout_s if backend.startswith("_") else get_backend(backend).load_timeout_s  # _fake: tests
MAX_GROUP = 16  # at most this many worker processes alive at once
MEASURE_TIMEOUT_MIN_S = 60.0  # a worker silent for this long plus 20x its expected round time is hung
# environment variables that change how runtimes' thread pools behave; recorded with the run
_THREAD_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_AFFINITY", "OMP_PROC_BIND", "OMP_PLACES",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TBB_NUM_THREADS")


@dataclass
class BenchConfig:
    models: tuple[str, ...]
    backends: tuple[str, ...] | None = None  # None: every backend that runs on the device
    device: str = "cpu"
    precisions: tuple[str, ...] = ("fp32",)  # may hold "best": fp32 and each backend's fastest here
    optional_precisions: tuple[str, ...] = ()  # measured only where a backend supports them (no skipped rows)
    batches: tuple[int, ...] = (1,)
    threads: int | None = None  # None: the machine's physical cores
    scenario: str = "latency"
    rule: StopRule = field(default_factory=StopRule)
    interleave: bool = True
    tag: str | None = None
    suite: str | None = None
    suite_version: str | None = None
    seed: int = 0
    options: dict = field(default_factory=dict)  # backend -> runner options
    round_time_s: float = ROUND_TIME_S
    rewarm: int = 1  # discarded calls at the start of each round (caches evicted by other cases)
    cache_dir: str | None = None
    verify: bool = True
    allow_failed_parity: bool = False  # time artifacts whose parity failed (labelled failed in the row)
    # --weights as given (None: synthetic) and, once resolved, each model's weights
    # (pfdeploy.pretrained.plan_models: the first choice of the list that fits the model)
    weights: str | None = None
    model_weights: dict = field(default_factory=dict)
    images: str | None = None  # --images DIR: accuracy of each artifact measured on them before timing
    labels: str | None = None  # --labels FILE for --images
    # --processes: fresh worker processes ("generations") per case; None: the suite's / engine default
    processes: int | None = None

    def weights_for(self, model: str):
        """The ModelWeights of `model` (resolved on first use: release checkpoints are fetched)."""
        from ..pretrained import plan_models
        from ..zoo import canonical_name

        name = canonical_name(model)
        if name not in self.model_weights:  # the run's models, and a case prepared outside them
            self.model_weights.update(plan_models(list(dict.fromkeys([*self.models, name])), self.weights, self.seed))
        return self.model_weights[name]

    def to_dict(self) -> dict:
        return {"models": list(self.models), "backends": list(self.backends) if self.backends else None,
                "device": self.device, "precisions": list(self.precisions),
                "optional_precisions": list(self.optional_precisions), "batches": list(self.batches),
                "threads": self.threads, "scenario": self.scenario, "rule": self.rule.to_dict(),
                "interleave": self.interleave, "seed": self.seed, "options": self.options,
                "round_time_s": self.round_time_s, "rewarm": self.rewarm,
                "allow_failed_parity": self.allow_failed_parity, "weights": self.weights,
                "model_weights": {m: w.source for m, w in self.model_weights.items()},
                "accuracy_images": self.images, "accuracy_labels": self.labels}


@dataclass
class CaseResult:
    spec: CaseSpec
    row: dict
    samples_ns: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    result_id: object = None
    device_samples_ns: list[int] | None = None  # device-clock samples (CUDA events) of GPU backends


@dataclass
class Outcome:
    run_id: object
    status: str
    results: list[CaseResult]
    store_url: str
    wall_s: float
    notes: list[str] = field(default_factory=list)
    signum: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM, SIGHUP)


class Progress:
    """What the engine reports while it runs; the CLI draws it with rich. No-op by default."""

    def phase(self, text: str) -> None: ...

    def plan(self, total_units: float) -> None: ...

    def update(self, current: str, completed_units: float, total_units: float) -> None: ...

    def case_done(self, result: CaseResult) -> None: ...


@dataclass
class Prepared:
    family: str | None = None
    baselines: tuple[str, ...] = ()  # the baselines the model's zoo spec names (ModelSpec.baselines)
    params: int | None = None
    macs: int | None = None
    inputs: str | None = None
    model_file: str | None = None
    weights_file: str | None = None
    artifact_sha256: str | None = None
    artifact: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    error: str | None = None
    parity_inputs: str | None = None  # .npz of the inputs the timed runner is verified on
    parity_refs: list | None = None  # [(batch, PyTorch fp32 output, rounded-weights baseline or None)]
    accuracy: dict | None = None  # top-1/top-5 measured for exactly this artifact (its accuracy.json)


@dataclass
class _Live:
    spec: CaseSpec
    prep: Prepared
    worker: WorkerProcess
    load: dict = field(default_factory=dict)
    k: int = 1
    samples: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)
    h2d_ms: list[float] = field(default_factory=list)
    d2h_ms: list[float] = field(default_factory=list)
    measured_ns: int = 0
    cpu: dict | None = None  # CPU used by this worker / everyone else during the timed rounds
    warmup_n: int = 0
    budget_units: float = 0.0


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Engine:
    """Runs one benchmark: `Engine(config, store).run(progress)` -> Outcome."""

    def __init__(self, config: BenchConfig, store, store_url: str = ""):
        self.config = config
        self.store = store
        self.store_url = store_url
        self._live: dict[str, _Live] = {}
        self._results: list[CaseResult] = []
        self._progress = Progress()
        self._done_units = 0.0
        self._total_units = 0.0
        self._next_round = 0  # round ids are unique within the run: one id per rotation
        self.notes: list[str] = []

    # ------------------------------------------------------------------ planning
    def plan(self, device, threads: int) -> tuple[list[CaseSpec], list[tuple[CaseSpec, str]]]:
        """(runnable cases, [(skipped case, reason)]) for the config on `device`. Every reason
        comes from the backend: not installed (with the install hint), not on this device, a
        precision it cannot run here (probed), a scenario it does not implement."""
        from ..backends import BACKEND_NAMES, get_backend
        from ..zoo import canonical_name

        cfg = self.config
        if cfg.backends:
            backends = [get_backend(b) for b in cfg.backends]
        else:
            backends = [b for b in map(get_backend, BACKEND_NAMES) if device.kind in b.devices]
        runnable, skipped = [], []
        for model in [canonical_name(m) for m in cfg.models]:
            weights = cfg.weights_for(model).source  # part of the case key: never mixed across weights
            for backend in backends:
                why_backend = backend.unavailable(device) or backend.supports_scenario(cfg.scenario)
                for precision in self.precisions_for(backend, device, why_backend is None):
                    for batch in cfg.batches:
                        spec = CaseSpec(model=model, backend=backend.name, device=str(device), precision=precision,
                                        batch=batch, threads=threads, scenario=cfg.scenario, weights=weights,
                                        options=dict(cfg.options.get(backend.name, {})))
                        why = why_backend or backend.supports(device, precision)
                        (skipped.append((spec, why)) if why else runnable.append(spec))
        return runnable, skipped

    def precisions_for(self, backend, device, available: bool = True) -> list[str]:
        """The precisions a backend is measured at: the config's, with "best" expanded to fp32 and
        the backend's fastest precision on the device, and optional precisions kept only where
        the backend runs them here."""
        out: list[str] = []
        for p in self.config.precisions:
            for q in (["fp32", backend.best_precision(device)] if p == "best" and available else
                      ["fp32"] if p == "best" else [p]):
                if q not in out:
                    out.append(q)
        for p in self.config.optional_precisions:
            if available and p not in out and backend.supports(device, p) is None:
                out.append(p)
        return out

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
        self._oversubscribed = None
        if threads > cores:
            self._oversubscribed = (f"{threads} threads on {cores} physical core(s): hyper-threads share a core's "
                                    f"units, so these figures measure contention as well as the runtime")
            self.notes.append(f"warning: {self._oversubscribed}")
        if prepared_cases is None:
            runnable, skipped = self.plan(device, threads)
        else:
            runnable, skipped = [c for c, _ in prepared_cases], []
        self._progress.phase("collecting machine metadata")
        meta = machine_metadata()
        run_id = self.store.begin_run({
            "tag": cfg.tag, "git_commit": git_commit(), "suite": cfg.suite, "suite_version": cfg.suite_version,
            "machine_id": meta.get("machine_id"), "machine": meta, "tools": meta.get("tools", {}),
            "config": {**cfg.to_dict(), "threads": threads, "device": str(device),
                       "env": {k: os.environ[k] for k in sorted(os.environ) if k in _THREAD_ENV}},
            "pfdeploy_version": __version__, "loadavg_before": _loadavg(),
        })
        self.run_id = run_id
        status = "failed"
        signum = None
        tmp = Path(tempfile.mkdtemp(prefix="pfdeploy-bench-"))
        try:
            for spec, why in skipped:
                self._commit(CaseResult(spec, self._row(spec, Prepared(), "skipped", why)))
            prepared = (self._prepare(runnable, tmp) if prepared_cases is None
                        else {c.key: p for c, p in prepared_cases})
            todo = []
            for spec in runnable:
                prep = prepared[spec.key]
                if prep.error:
                    self._commit(CaseResult(spec, self._row(spec, prep, "failed", prep.error)))
                else:
                    todo.append((spec, prep))
            self._total_units = sum(self._case_units() for _ in todo)
            self._progress.plan(self._total_units)
            for group in self._groups(todo):
                self._run_group(group)
            status = "finished"
        except KeyboardInterrupt as exc:  # pfdeploy.signals.Interrupted for SIGTERM/SIGHUP too
            status = "interrupted"
            signum = getattr(exc, "signum", None) or 2
        finally:
            from .. import signals

            with signals.deferred():  # a second signal must not cut the cleanup in half
                for live in list(self._live.values()):
                    live.worker.kill()
                    live.worker.cleanup()
                self._live.clear()
                shutil.rmtree(tmp, ignore_errors=True)
                self.store.finish_run(run_id, status, loadavg_after=_loadavg())
        return Outcome(run_id, status, self._results, self.store_url, time.monotonic() - t0, self.notes,
                       signum=signum)

    def _case_units(self) -> float:
        r = self.config.rule
        return r.warmup_time_s + r.min_time_s + 1.0

    def _groups(self, todo):
        """Interleaving groups (rotations): one per precision and batch when it fits MAX_GROUP
        workers; otherwise clusters that must share a rotation (a model with its zoo baselines,
        per backend) are packed whole into groups (first fit,
        largest first), so every speedup of a model over its baselines stays paired. Only a
        cluster larger than MAX_GROUP itself is split (its cross-chunk ratios are then unpaired,
        and say so). `--no-interleave`: every case alone."""
        if not self.config.interleave:
            return [[t] for t in todo]
        by_key: dict[tuple, list] = {}
        for spec, prep in todo:  # one comparison per precision and batch
            by_key.setdefault((spec.precision, spec.batch), []).append((spec, prep))
        groups = []
        for items in by_key.values():
            if len(items) <= MAX_GROUP:
                groups.append(items)
                continue
            bins: list[list] = []
            for cluster in sorted(_clusters(items), key=len, reverse=True):
                for i in range(0, len(cluster), MAX_GROUP):
                    part = cluster[i:i + MAX_GROUP]
                    target = next((b for b in bins if len(b) + len(part) <= MAX_GROUP), None)
                    if target is None:
                        bins.append(list(part))
                    else:
                        target.extend(part)
            groups.extend(bins)
        return groups

    # ------------------------------------------------------------------ preparation
    def _prepare(self, cases: list[CaseSpec], tmp: Path) -> dict[str, Prepared]:
        """Params/MACs, seeded inputs, torch state dicts, exported artifacts and the PyTorch
        reference outputs for parity, once each."""
        import numpy as np

        from ..backends import get_backend
        from ..zoo import get_spec

        cfg = self.config
        out: dict[str, Prepared] = {c.key: Prepared() for c in cases}
        models: dict[str, dict] = {}
        for c in cases:
            models.setdefault(c.model, {"torch": False, "requests": {}, "batches": set(), "parity": set()})
            m = models[c.model]
            req = get_backend(c.backend).artifact_request(c.precision, c.batch)
            m["torch"] |= req is None
            if req is not None:
                m["requests"][_req_key(req)] = req
            m["batches"].add(c.batch)
            if cfg.verify and _needs_parity(c):
                m["parity"].add((c.batch, c.precision))
        per_model: dict[str, Prepared] = {}
        artifacts: dict[tuple, tuple] = {}
        parity: dict[tuple, tuple] = {}
        for name, need in models.items():
            base = Prepared()
            per_model[name] = base
            try:
                spec = get_spec(name)
                base.family = spec.family
                base.baselines = tuple(spec.baselines)
                source = _ModelSource(name, cfg.seed, self._progress, cfg.weights_for(name))
                if need["torch"]:
                    base.weights_file, base.params, base.macs = self._torch_weights(spec, source, tmp)
                else:
                    from ..complexity import complexity_of

                    cx = complexity_of(name)
                    base.params, base.macs = cx.params, cx.macs
                from ..weights import synthetic_images

                for b in need["batches"]:
                    x = synthetic_images(b, spec.input_size, spec.mean, spec.std, seed=cfg.seed)
                    np.save(tmp / f"{name}_b{b}.npy", x.numpy().astype(np.float32))
                for key, req in sorted(need["requests"].items()):
                    artifacts[(name, key)] = self._artifact(name, req, source)
                for b, precision in sorted(need["parity"]):
                    try:
                        parity[(name, b, precision)] = self._parity_refs(spec, source, b, precision, tmp)
                    except Exception as exc:  # noqa: BLE001 - the case runs; its parity says why it is missing
                        parity[(name, b, precision)] = f"{type(exc).__name__}: {exc}"
                source.release()
            except UserError as exc:
                base.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - fail this model's cases, keep the run
                base.error = f"preparing {name} failed: {type(exc).__name__}: {exc}"
        for c in cases:
            base = per_model[c.model]
            p = out[c.key]
            p.family, p.params, p.macs, p.error = base.family, base.params, base.macs, base.error
            p.baselines = base.baselines
            p.inputs = str(tmp / f"{c.model}_b{c.batch}.npy")
            req = get_backend(c.backend).artifact_request(c.precision, c.batch)
            if req is None:
                p.weights_file = base.weights_file
                p.accuracy = _torch_accuracy(c, [a for (m, _), a in artifacts.items() if m == c.model])
                if c.precision in get_backend(c.backend).reference_precisions:
                    p.parity = {"status": "reference",
                                "note": "PyTorch fp32 is the reference the artifacts are checked against"}
                p.artifact = {"source": "zoo", "weights": c.weights}
            elif not p.error:
                res = artifacts.get((c.model, _req_key(req)))
                if res is None:
                    p.error = "artifact was not prepared"
                elif isinstance(res, str):
                    p.error = res
                else:
                    p.model_file, p.artifact_sha256, p.artifact, p.parity, p.accuracy = res
            refs = parity.get((c.model, c.batch, c.precision)) if cfg.verify and _needs_parity(c) else None
            if isinstance(refs, tuple):
                p.parity_inputs, p.parity_refs = refs
            elif isinstance(refs, str):
                p.parity = {**p.parity, "runtime_check": f"not run: reference outputs failed: {refs}"}
        return out

    def _parity_refs(self, spec, source, batch: int, precision: str, tmp: Path) -> tuple[str, list]:
        """The parity inputs of a case at `batch` and `precision` (seeded, disjoint from calibration:
        2 batches, 12 for int8) written to an .npz for the worker, and [(batch, PyTorch fp32
        output, PyTorch-with-rounded-weights output or None)] for judging its outputs."""
        import numpy as np
        import torch

        from ..exporters.parity import EXTRA_BATCHES, rounded_copy
        from ..exporters.settings import PARITY_SEED
        from ..weights import synthetic_images

        self._progress.phase(f"{spec.name}: PyTorch reference outputs for {precision} parity at batch {batch}")
        n = 2 + EXTRA_BATCHES.get(precision, 0)
        xs = [synthetic_images(batch, spec.input_size, spec.mean, spec.std, PARITY_SEED + i) for i in range(n)]
        path = tmp / f"parity_{spec.name}_b{batch}_n{n}.npz"
        if not path.exists():
            np.savez(path, **{f"x{i}": x.numpy().astype(np.float32) for i, x in enumerate(xs)})
        model = source.model()
        cache = source.cache.setdefault(("ref", batch), [])
        rounded = source.cache.get(("rounded", precision))
        if rounded is None and precision != "fp32":
            rounded = source.cache[("rounded", precision)] = rounded_copy(model, precision)
        refs = []
        with torch.no_grad():
            for i, x in enumerate(xs):
                if i >= len(cache):
                    cache.append(model(x).float().numpy())
                base = rounded(x).float().numpy() if rounded is not None else None
                refs.append((batch, cache[i], base))
        return str(path), refs

    def _torch_weights(self, spec, source, tmp: Path) -> tuple[str, int, int]:
        """(state-dict path, params, MACs) of the calibrated synthetic model for the torch
        runners. Cached beside the artifacts, keyed on model, seed, torch version and the zoo's
        and weights' source code, so a warm run builds and calibrates nothing."""
        import hashlib
        import json

        import torch

        from .. import weights as weights_mod
        from .. import zoo as zoo_pkg
        from ..complexity import complexity
        from ..config import cache_dir

        h = hashlib.sha256()
        for f in sorted(Path(zoo_pkg.__file__).parent.glob("*.py")) + [Path(weights_mod.__file__)]:
            h.update(f.read_bytes())
        wsrc = source.source
        wtag = (f"seed{self.config.seed}" if wsrc.startswith("synthetic:")
                else "w" + hashlib.sha256(wsrc.encode()).hexdigest()[:12])  # release/file/pretrained weights
        key = f"{spec.name}-{wtag}-torch{torch.__version__}-{h.hexdigest()[:12]}".replace(":", "_")
        root = cache_dir(self.config.cache_dir) / "torch-weights"
        pt, meta = root / f"{key}.pt", root / f"{key}.json"
        if pt.is_file() and meta.is_file():
            try:
                m = json.loads(meta.read_text())
                return str(pt), int(m["params"]), int(m["macs"])
            except (OSError, ValueError, KeyError):
                pass
        model = source.model()
        cx = complexity(model, spec.input_size)
        try:
            root.mkdir(parents=True, exist_ok=True)
            part = root / f".{key}.{os.getpid()}.part"
            torch.save(model.state_dict(), part)
            os.replace(part, pt)  # the .json is written last: its presence means the .pt is whole
            part.write_text(json.dumps({"params": cx.params, "macs": cx.macs, "model": spec.name,
                                        "seed": self.config.seed, "weights": wsrc}))
            os.replace(part, meta)
            return str(pt), cx.params, cx.macs
        except OSError:  # an unwritable cache: keep the weights for this run only
            path = tmp / f"{spec.name}.pt"
            torch.save(model.state_dict(), path)
            return str(path), cx.params, cx.macs

    def _artifact(self, model: str, req: dict, source=None):
        """(model_file, sha256, exporter settings, parity) from the artifact cache, exported on
        demand; or the error message. `req`: a backend's artifact request (get_artifact kwargs)."""
        from ..exporters import get_artifact

        target, precision = req["target"], req["precision"]
        what = f"{target} {precision}" + (f" ({req['recipe']} recipe)" if req.get("recipe") else "")
        self._progress.phase(f"{model}: {what} artifact (exported on demand, cached)")

        def progress(msg, *args, **kwargs):
            self._progress.phase(f"{model}: {what}: {msg}")

        try:
            art = get_artifact(model, weights=source.weights if source else None, seed=self.config.seed,
                               cache_dir=self.config.cache_dir,
                               verify=self.config.verify, progress=progress, _source=source,
                               allow_failed=self.config.allow_failed_parity, **req)
        except UserError as exc:
            return f"export to {what} failed: {exc}"
        except Exception as exc:  # noqa: BLE001
            return f"export to {what} failed: {type(exc).__name__}: {exc}"
        man = art.manifest
        verdict = parity_verdict(man.get("parity")) if man.get("parity") else None
        if (man.get("status") == "failed" or verdict == "failed") and not self.config.allow_failed_parity:
            why = (man.get("parity") or {}).get("why") or "outside the tolerance"
            return (f"{what} artifact failed parity verification ({why}); not timed "
                    f"(--allow-failed-parity times it anyway)")
        settings = {"target": target, "precision": precision, "path": str(art.path), "exporter": man.get("exporter"),
                    "tools": man.get("tools"), "manifest_status": man.get("status"),
                    "weights": (man.get("weights") or {}).get("source")}
        from ..exporters import accuracy

        if self.config.images:
            self._progress.phase(f"{model}: {what}: accuracy on {self.config.images}")
            try:
                accuracy.measure_artifact(art, self.config.images, self.config.labels,
                                          model=source.model() if source else None)
            except UserError as exc:
                return f"accuracy of the {what} artifact on --images failed: {exc}"
        return str(art.model_file), man.get("sha256"), settings, man.get("parity") or {}, accuracy.for_artifact(art)

    # ------------------------------------------------------------------ running
    def _label(self, spec: CaseSpec) -> str:
        """The case as the progress line names it: precision and batch only where the run has
        several (the line must fit an 80-column terminal)."""
        parts = [spec.model, spec.backend]
        if len(self.config.precisions) > 1:
            parts.append(spec.precision)
        if len(self.config.batches) > 1:
            parts.append(f"b{spec.batch}")
        return "/".join(parts)

    def _run_group(self, group: list[tuple[CaseSpec, Prepared]]) -> None:
        cfg, rule = self.config, self.config.rule
        live: list[_Live] = []
        for spec, prep in group:  # load one at a time
            self._progress.update(f"loading {self._label(spec)}", self._done_units, self._total_units)
            w = WorkerProcess(spec.label)
            lv = _Live(spec, prep, w, budget_units=self._case_units())
            self._live[spec.key] = lv
            try:
                lv.load = w.call("load", timeout_s=load_timeout_s(spec.backend), case=spec.to_dict(), inputs=prep.inputs,
                                 model_file=prep.model_file, weights_file=prep.weights_file)
            except (WorkerDied, WorkerError) as exc:
                self._fail(lv, exc, "load")
                continue
            if prep.parity_inputs:
                try:
                    self._runtime_parity(lv, tmp_dir=Path(prep.parity_inputs).parent)
                except (WorkerDied, WorkerError) as exc:
                    self._fail(lv, exc, "parity check")
                    continue
            live.append(lv)
        for lv in list(live):  # warm up one at a time
            self._progress.update(f"warming up {self._label(lv.spec)}", self._done_units, self._total_units)
            try:
                reply = lv.worker.call("warmup", timeout_s=max(600, 20 * rule.max_time_s), rule=rule.to_dict(),
                                       max_time_s=max(rule.max_time_s, 10 * rule.warmup_time_s))
            except (WorkerDied, WorkerError) as exc:
                self._fail(lv, exc, "warm-up")
                live.remove(lv)
                continue
            lv.warmup_n = len(reply["samples_ns"])
            lv.k = round_size(reply["samples_ns"], cfg.round_time_s)
            self._advance(rule.warmup_time_s + 1.0)
        while live:
            # one rotation: every live case measures one round; all of them share this round id
            # (and only they: ids are never reused within the run, so two results share a round
            # id only when they ran in the same rotation, back to back)
            rnd = self._next_round
            self._next_round += 1
            for lv in list(live):
                self._progress.update(f"{self._label(lv.spec)} (round {len(set(lv.rounds)) + 1}, n={len(lv.samples)})",
                                      self._done_units, self._total_units)
                budget = int(rule.max_time_s * 1e9) - lv.measured_ns
                per_iter = (lv.measured_ns / len(lv.samples)) if lv.samples else 1e9
                timeout = MEASURE_TIMEOUT_MIN_S + 20 * (lv.k + cfg.rewarm) * per_iter / 1e9
                try:
                    reply = lv.worker.call("measure", timeout_s=timeout, iters=lv.k, budget_ns=budget,
                                           rewarm=cfg.rewarm)
                except (WorkerDied, WorkerError) as exc:
                    self._fail(lv, exc, f"measurement round {rnd + 1}")
                    live.remove(lv)
                    continue
                s = reply["samples_ns"]
                lv.samples += s
                lv.rounds += [rnd] * len(s)
                lv.device_ms += reply.get("device_ms") or []
                lv.h2d_ms += reply.get("h2d_ms") or []
                lv.d2h_ms += reply.get("d2h_ms") or []
                lv.measured_ns += sum(s)
                lv.cpu = add_usage(lv.cpu, reply.get("cpu"))
                self._advance(min(sum(s) / 1e9, max(0.0, rule.min_time_s - (lv.measured_ns - sum(s)) / 1e9)))
                decision = decide(rule, lv.samples, lv.measured_ns, rounds=lv.rounds)
                if decision.stop:
                    live.remove(lv)
                    self._finish(lv, decision)

    def _runtime_parity(self, lv: _Live, tmp_dir: Path) -> None:
        """Verify the case with the very runner object that is timed: it runs the parity inputs
        in its worker, the parent judges its outputs against PyTorch at the case's precision."""
        import numpy as np

        from ..exporters.parity import parity_record

        prep = lv.prep
        self._progress.update(f"parity check {self._label(lv.spec)}", self._done_units, self._total_units)
        out = tmp_dir / f"parity_out_{lv.worker.pid}.npz"
        lv.worker.call("parity", timeout_s=1800, inputs=prep.parity_inputs, outputs=str(out))
        with np.load(out) as data:
            outs = [data[f"y{i}"] for i in range(len(prep.parity_refs))]
        out.unlink(missing_ok=True)
        record = parity_record([(b, ref, o, base) for (b, ref, base), o in zip(prep.parity_refs, outs)],
                               lv.spec.precision, label="synthetic (the timed runner)")
        record["checked_by"] = "the timed runner object, in its worker, at the measured batch"
        artifact_parity = prep.parity or {}
        if artifact_parity.get("verdict") or artifact_parity.get("status"):
            record["artifact"] = {"verdict": parity_verdict(artifact_parity),
                                  "precision": artifact_parity.get("precision")}
        prep.parity = record

    def _advance(self, units: float) -> None:
        self._done_units = min(self._total_units, self._done_units + units)

    def _fail(self, lv: _Live, exc: Exception, when: str) -> None:
        if isinstance(exc, WorkerDied):
            msg = f"{exc.detail}"
            if exc.log_tail:
                msg += f"; last output: {exc.log_tail.splitlines()[-1][:300]}"
        else:
            msg = f"{when} failed: {exc}"
        lv.worker.kill()
        lv.worker.cleanup()
        self._live.pop(lv.spec.key, None)
        row = self._row(lv.spec, lv.prep, "failed", msg, live=lv)
        # the failed case's share of the progress bar is dropped from the total
        self._total_units = max(self._done_units, self._total_units - lv.budget_units)
        self._commit(CaseResult(lv.spec, row, lv.samples, lv.rounds))

    def _finish(self, lv: _Live, decision: Decision) -> None:
        try:
            final = lv.worker.close()
        except (WorkerDied, WorkerError) as exc:
            self._fail(lv, exc, "close")
            return
        finally:
            self._live.pop(lv.spec.key, None)
        row = self._row(lv.spec, lv.prep, "ok", None, live=lv, final=final, decision=decision)
        self._commit(CaseResult(lv.spec, row, lv.samples, lv.rounds,
                                device_samples_ns=[int(v * 1e6) for v in lv.device_ms] or None))

    def _commit(self, result: CaseResult) -> None:
        dev = result.device_samples_ns
        if dev and len(dev) != len(result.samples_ns):
            dev = None  # the store keeps device samples beside host samples one to one
        result.result_id = self.store.add_result(self.run_id, result.row, result.samples_ns, result.rounds,
                                                 device_samples_ns=dev or None)
        self._results.append(result)
        self._progress.case_done(result)

    # ------------------------------------------------------------------ result rows
    def _row(self, spec: CaseSpec, prep: Prepared, status: str, error: str | None, live: _Live | None = None,
             final: dict | None = None, decision: Decision | None = None) -> dict:
        warnings: list[str] = []
        if getattr(self, "_oversubscribed", None) and status == "ok":
            warnings.append(self._oversubscribed)
        summary = summarize(live.samples if (live and status == "ok") else [],
                            live.rounds if (live and status == "ok") else None)
        items_per_s = None
        if status == "ok" and summary.n and live.measured_ns:
            per_step = (final or {}).get("items_per_step") or spec.batch
            items_per_s = per_step * summary.n / (live.measured_ns / 1e9)
            if summary.cv is not None and summary.cv > CV_WARN:
                warnings.append(f"noisy: coefficient of variation {summary.cv:.1%} > {CV_WARN:.0%}")
            if decision is not None and decision.reason == "max_time":
                hw = decision.ci_halfwidth
                warnings.append(f"stopped at max-time ({self.config.rule.max_time_s:g} s measured) before the "
                                f"median's CI reached +-{self.config.rule.target_ci:.1%}"
                                + (f" (it is +-{hw:.1%})" if hw is not None else ""))
        cpu = row_record(live.cpu) if (live is not None and status == "ok") else None
        if cpu and cpu["other_share"] is not None and cpu["other_share"] > OTHER_CPU_WARN:
            warnings.append(f"other processes used {cpu['other_share']:.0%} of the machine's CPU while this case "
                            "was measured: its figures include their interference")
        if cpu and cpu["steal_share"] is not None and cpu["steal_share"] > OTHER_CPU_WARN:
            warnings.append(f"the hypervisor gave {cpu['steal_share']:.0%} of this VM's CPU time to other guests "
                            "while this case was measured (steal)")
        if status == "ok" and prep.parity and parity_verdict(prep.parity) == "failed":
            warnings.append("timed although its parity check FAILED (--allow-failed-parity): its outputs are not "
                            "what PyTorch computes")
        artifact = dict(prep.artifact)
        if live is not None and live.load:
            artifact["runner"] = live.load.get("describe")
            artifact["worker_pid"] = live.load.get("pid")
            thr = live.load.get("threads") or {}
            artifact["threads_applied"] = thr
            warnings += list(thr.get("warnings") or [])
            desc = live.load.get("describe") or {}
            if thr.get("flush_denormal") is False or desc.get("flush_denormal") is False:
                warnings.append("flush-to-zero is off (read back from the runtime)")
        if (prep.parity or {}).get("verdict") == "failed" and status == "ok":
            warnings.append(f"parity failed at {spec.precision}: {'; '.join(prep.parity.get('failures') or [])}")
        device_fields: dict = {}
        if live is not None and live.device_ms:
            dev_rounds = live.rounds if len(live.rounds) == len(live.device_ms) else None
            dev = summarize([int(v * 1e6) for v in live.device_ms], dev_rounds)
            device_fields = {"device_p50_ms": dev.p50_ms, "device_p50_ci_low_ms": dev.p50_ci_low_ms,
                             "device_p50_ci_high_ms": dev.p50_ci_high_ms, "device_n": dev.n,
                             "host_p50_ms": summary.p50_ms}
            artifact["device_clock"] = {"clock": "device (CUDA events, compute only, inputs on the device)",
                                        **dev.to_dict(),
                                        "h2d_p50_ms": summarize([int(v * 1e6) for v in live.h2d_ms]).p50_ms,
                                        "d2h_p50_ms": summarize([int(v * 1e6) for v in live.d2h_ms]).p50_ms}
        if final and final.get("runtime_peak_gpu_mb") is not None:
            artifact["runtime_peak_gpu_mb"] = final["runtime_peak_gpu_mb"]  # the runtime's own, narrower figure
        if live is not None:
            artifact["warmup_iters"] = live.warmup_n
            if decision is not None:
                artifact["stop_reason"] = decision.reason
        row = {
            "case_key": spec.key, "model": spec.model, "family": prep.family, "baselines": list(prep.baselines),
            "weights": spec.weights,
            "backend": spec.backend, "device": spec.device, "precision": spec.precision, "batch": spec.batch,
            "threads": spec.threads, "scenario": spec.scenario, "status": status, "error": error,
            **{k: v for k, v in summary.to_dict().items()},
            "items_per_s": items_per_s,
            "load_ms": live.load.get("load_ms") if live and live.load else None,
            "first_ms": live.load.get("first_ms") if live and live.load else None,
            "peak_rss_mb": (final or {}).get("peak_rss_mb"), "peak_gpu_mb": (final or {}).get("peak_gpu_mb"),
            "peak_gpu_source": (final or {}).get("peak_gpu_source"),
            # which clock each figure is: the main statistics (p50_ms ... cv) are always the host
            # clock (METHOD.md 1); "host+device": the row also carries device_* figures (CUDA events)
            "clock": "host+device" if device_fields else "host", **device_fields,
            # CPU that other processes (other_share) and other VMs (steal_share) took from the
            # machine while this case's rounds were timed (pfdeploy.devices.cpuload)
            "cpu_contention": cpu,
            "params": prep.params, "macs": prep.macs,
            "artifact_sha256": prep.artifact_sha256, "artifact": artifact, "parity": prep.parity or {},
            # top-1/top-5 measured for exactly this artifact (exporters/accuracy.py), None when never measured
            "accuracy": prep.accuracy,
            "warnings": warnings, "round_size": live.k if live else None, "created_at": _now(),
        }
        return row


OTHER_CPU_WARN = 0.10  # a row warns when others took more than this share of the machine's CPU


def _clusters(items: list) -> list[list]:
    """Cases that should share a rotation: per backend, each model linked with the baselines its
    zoo spec names (what the table and the claims compare it with; union-find over model names)."""
    from ..zoo import get_spec

    parent: dict = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        parent[find(a)] = find(b)

    present = {(s.backend, s.model) for s, _ in items}
    for backend, model in present:
        find((backend, model))
        try:
            spec = get_spec(model)
            links = list(spec.baselines)  # the baselines the claims compare it with
        except Exception:  # noqa: BLE001 - a model outside the zoo (the fake runner's): no links
            links = []
        for other in links:
            if (backend, other) in present:
                union((backend, model), (backend, other))
    out: dict = {}
    for spec, prep in items:
        out.setdefault(find((spec.backend, spec.model)), []).append((spec, prep))
    return list(out.values())


class _ModelSource:
    """The calibrated PyTorch model of one zoo entry, built at most once per run and shared by the
    torch runners' state dict, params/MACs and every export that needs it (the exporters' model
    source protocol: `.model()`, `.name`, `.weights`, `.seed`). A warm artifact cache needs none."""

    def __init__(self, name: str, seed: int, progress: Progress, weights=None):
        # weights: a pfdeploy.pretrained.ModelWeights (None: synthetic with `seed`)
        self.name, self.seed = name, seed
        self.weights = weights.choice if weights else None  # what get_artifact / create_model take
        self.source = weights.source if weights else f"synthetic:{seed}"
        self._model = None
        self._progress = progress
        self.cache: dict = {}  # reference outputs and rounded-weights copies for parity

    def model(self):
        if self._model is None:
            from ..zoo import create_model

            what = f"synthetic weights, seed {self.seed}" if self.weights is None else self.source
            self._progress.phase(f"{self.name}: building the model ({what})")
            self._model = create_model(self.name, weights=self.weights, seed=self.seed)
        return self._model

    def release(self):
        self._model = None
        self.cache = {}




def _torch_accuracy(case: CaseSpec, prepared: list) -> dict | None:
    """A PyTorch fp32 row's accuracy: the PyTorch top-1/top-5 measured beside an artifact of the
    same model and weights in this run (the torch backend at fp32 is that reference model)."""
    if case.precision != "fp32":
        return None
    for res in prepared:
        acc = res[4] if isinstance(res, tuple) else None
        if acc and acc.get("torch_top1") is not None:
            return {"top1": acc["torch_top1"], "top5": acc.get("torch_top5"), "n": acc.get("n"),
                    "images_sha256": acc.get("images_sha256"), "images": acc.get("images"),
                    "weights": acc.get("weights"), "measured_at": acc.get("measured_at"),
                    "source": f"PyTorch fp32, measured beside artifact {str(acc.get('artifact_sha256'))[:12]}"}
    return None


def _req_key(req: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in req.items()))


def _needs_parity(case: CaseSpec) -> bool:
    """Every case is verified by its own runner, except PyTorch fp32 (the reference itself) and
    the engine's test runners."""
    from ..backends import get_backend

    if case.backend.startswith("_"):
        return False
    return case.precision not in get_backend(case.backend).reference_precisions
