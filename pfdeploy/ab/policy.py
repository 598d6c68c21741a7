"""`pfdeploy ab BASE HEAD`: base and head measured together in one interleaved run (docs/ab.md,
docs/method.md 8b).

A side is a path, told apart by what is there:

* a Python interpreter, or a virtual environment (its bin/python): that side's worker processes
  run it, so its pfdeploy, its runtimes and its runner code are what is timed (two checkouts with
  two venvs: the CI case). The artifacts are exported once, by this pfdeploy, into the run's
  cache, and both sides load the same files;
* an artifact cache directory (what PFDEPLOY_CACHE_DIR names; empty, or holding pfdeploy's own
  cache folders): that side's artifacts come from it, a missing one is exported into it;
* a tuned directory (`pfdeploy tune`'s output, with tuned.json): that side runs its tuned case.

The same path on both sides is an A/A, the calibration of a runner. The run is planned and
checked before anything is timed: a side that is none of the three, a side whose pfdeploy cannot
speak this worker protocol, a backend asked for by name that one side cannot run: one line each,
exit 2. A case only one side has is listed as not compared.

The measuring is the engine's (a Rotation of fresh worker processes with interleaved rounds) under
the `ABPolicy`: each block starts, for every undecided case, a fresh base and a fresh head worker
(order alternating from block to block: ABBA), measures ROUNDS_PER_BLOCK rounds in which the base
and the head of a case take adjacent slots, and closes them; after each block the sequential test
of bench/stats/ab.py looks at every case. Both sides are stored as runs of their own (tags
`--tag-base`, `--tag-head`), each result carrying its `ab` record: the other run, the block of
every process, the verdict and its interval.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError, path_problem
from ..bench.stats.ab import ALPHA, MIN_BLOCKS, Sequential, block_stats
from ..bench.timing import Decision

ROUNDS_PER_BLOCK = 8  # rounds of each process in a block (~0.25 s each): the within-block pairs
DEFAULT_BUDGET_S = 600.0
DEFAULT_THRESHOLD = 0.05
CACHE_ENTRIES = {"onnx", "openvino", "trt", "tensorrt", "probes", "torch-weights", "weights", "calibration", "tmp"}
SIDES = ("base", "head")


@dataclass
class Side:
    """One side of an A/B run: the path as given and what it is."""

    name: str  # base | head
    path: str
    kind: str  # interpreter | cache | tuned
    python: str = sys.executable
    cache_dir: str | None = None
    tuned: dict | None = None

    def describe(self) -> dict:
        return {"side": self.name, "path": self.path, "kind": self.kind, "python": self.python,
                "cache_dir": self.cache_dir, "tuned_case": (self.tuned or {}).get("case_key")}


def _venv_python(d: Path) -> Path | None:
    for cand in (d / "bin" / "python", d / "bin" / "python3", d / "Scripts" / "python.exe"):
        if cand.exists():
            return cand
    return None


def classify(path: str, name: str) -> Side:
    """What the path is (UsageError when it is none of the three)."""
    p = Path(path).expanduser()
    why = path_problem(p)
    if why not in (None, "not found"):  # a loop of links is not "does not exist"
        raise UsageError(f"{name.upper()} {path!r} {why}")
    if not p.exists():
        raise UsageError(f"{name.upper()} {path!r} does not exist (an interpreter, a virtual environment, an artifact "
                         "cache directory or a tuned directory)")
    if p.is_file():
        if os.access(p, os.X_OK):
            return Side(name, path, "interpreter", python=str(p.absolute()))
        raise UsageError(f"{name.upper()} {path!r} is a file that is not executable: not a Python interpreter")
    if not p.is_dir():
        raise UsageError(f"{name.upper()} {path!r} is neither a file nor a directory")
    if (p / "pyvenv.cfg").exists() or _venv_python(p) is not None:
        py = _venv_python(p)
        if py is None:
            raise UsageError(f"{name.upper()} {path!r} has a pyvenv.cfg but no bin/python")
        return Side(name, path, "interpreter", python=str(py.absolute()))
    if (p / "tuned.json").exists():
        from ..tune.artifact import read_tuned

        return Side(name, path, "tuned", tuned=read_tuned(p))  # a broken tuned.json: one line
    entries = {e.name for e in p.iterdir() if not e.name.startswith(".")}
    if entries <= CACHE_ENTRIES:
        return Side(name, path, "cache", cache_dir=str(p.absolute()))
    raise UsageError(f"{name.upper()} {path!r} is none of: a Python interpreter, a virtual environment (bin/python), an "
                     f"artifact cache directory (holds only {', '.join(sorted(CACHE_ENTRIES))}), a tuned directory "
                     f"(tuned.json); it holds {', '.join(sorted(entries)[:5])}")


_PROBE = r"""
import json, sys
out = {"python": sys.version.split()[0]}
try:
    from pfdeploy.bench.worker import WORKER_PROTOCOL
    import pfdeploy
    out["protocol"] = WORKER_PROTOCOL
    out["pfdeploy"] = pfdeploy.__version__
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out)); sys.exit(0)
from pfdeploy.backends import get_backend
from pfdeploy.devices import parse_device
dev = parse_device(sys.argv[1])
back = {}
for name in sys.argv[2:]:
    try:
        b = get_backend(name)
        back[name] = b.unavailable(dev)
    except Exception as exc:
        back[name] = f"{type(exc).__name__}: {exc}"
out["backends"] = back
print(json.dumps(out))
"""


def probe(side: Side, device: str, backends: list[str]) -> dict:
    """Ask an interpreter side what it is: its pfdeploy, its worker protocol, which of `backends`
    it can run on `device` (UsageError when it cannot speak this version's worker protocol)."""
    from ..bench.worker import WORKER_PROTOCOL

    try:
        out = subprocess.run([side.python, "-c", _PROBE, device, *backends], capture_output=True, text=True,
                             timeout=180, env={**os.environ, "PYTHONNOUSERSITE": "1"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{side.name.upper()} {side.path!r}: could not run it as a Python interpreter: {exc}") from None
    try:
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"{side.name.upper()} {side.path!r} is not a Python interpreter pfdeploy can use "
                         f"({tail[0][:200]})") from None
    if "error" in info:
        raise UsageError(f"{side.name.upper()} {side.path!r}: its pfdeploy cannot speak this version's worker "
                         f"protocol {WORKER_PROTOCOL} ({info['error'][:200]}); install this pfdeploy there")
    if info.get("protocol") != WORKER_PROTOCOL:
        raise UsageError(f"{side.name.upper()} {side.path!r}: its pfdeploy {info.get('pfdeploy')} speaks worker "
                         f"protocol {info.get('protocol')}, this one {WORKER_PROTOCOL}")
    return info


@dataclass
class Pair:
    """One compared case: its identity and the two rotation cases (base, head)."""

    case_key: str
    label: str
    base_key: str
    head_key: str
    variant: str | None = None
    head_case_key: str | None = None  # tuned directories: each side keeps its own case (its variant)
    head_variant: str | None = None
    values: list = field(default_factory=list)  # block log ratios
    within: list = field(default_factory=list)  # each block's own sampling variance of its value
    blocks: list = field(default_factory=list)  # the block of each value
    order: list = field(default_factory=list)  # per block: base-first | head-first


class ABPolicy:
    """Blocks of one fresh base and one fresh head worker per case, ABBA order, adjacent slots in
    every round, the sequential test after each block; both sides stored, each in its own run."""

    name = "ab"

    def __init__(self, pairs: list[Pair], budget_s: float = DEFAULT_BUDGET_S, threshold: float = DEFAULT_THRESHOLD,
                 alpha: float = ALPHA, tag_head: str | None = None, rounds: int = ROUNDS_PER_BLOCK,
                 max_blocks: int | None = None, on_block=None):
        self.pairs = pairs
        self.budget_s = budget_s
        self.threshold = threshold
        self.alpha = alpha
        self.tag_head = tag_head
        self.rounds = rounds
        self.fixed_max_blocks = max_blocks
        self.on_block = on_block
        self.ab_id = uuid.uuid4().hex[:16]
        self.head_run_id = None
        self.base_run_id = None
        self.seq: Sequential | None = None
        self.block_s: list[float] = []

    # ------------------------------------------------------------------ the runs
    def begin(self, engine) -> None:
        meta = dict(engine.run_meta)
        meta["tag"] = self.tag_head
        meta["config"] = {**(meta.get("config") or {}), "ab": {"id": self.ab_id, "side": "head",
                                                               "other_run_id": engine.run_id}}
        self.base_run_id = engine.run_id
        self.head_run_id = engine.store.begin_run(meta)

    def end(self, engine, status: str) -> None:
        if self.head_run_id is not None:
            engine.store.finish_run(self.head_run_id, status)

    # ------------------------------------------------------------------ the blocks
    def run(self, rot) -> None:
        t0 = time.monotonic()
        pairs = [p for p in self.pairs if p.base_key in rot.cases and p.head_key in rot.cases]
        self.seq = seq = Sequential([p.case_key for p in pairs], max_blocks=self.fixed_max_blocks or 10**6,
                                    alpha=self.alpha, threshold=self.threshold)
        block = 0
        while True:
            active = [p for p in pairs if p.case_key not in seq.verdicts
                      and p.base_key not in rot.failed and p.head_key not in rot.failed]
            if not active:
                break
            head_first = block % 2 == 1  # ABBA: base, head | head, base | base, head ...
            order = []
            for p in active:
                first, second = (p.head_key, p.base_key) if head_first else (p.base_key, p.head_key)
                order += [rot.cases[first], rot.cases[second]]
            tb = time.monotonic()
            live = rot.start_generation(order, block)
            live_keys = {c.spec.key for c in live}
            for p in active:  # a side that failed to start fails its pair: nothing to pair it with
                for k, other in ((p.base_key, p.head_key), (p.head_key, p.base_key)):
                    if k not in live_keys and other in live_keys:
                        c = rot.cases[other]
                        rot.fail(c, f"the other side ({'head' if k == p.head_key else 'base'}) failed in block "
                                    f"{block + 1}: nothing to pair it with", **self._records(p, c, rot))
                        live = [x for x in live if x.spec.key != other]
            rot.rotate(live, 0.0, self.rounds)
            for p in active:
                if p.base_key in rot.failed or p.head_key in rot.failed:
                    continue
                b, h = rot.cases[p.base_key], rot.cases[p.head_key]
                v, _n, w = block_stats(*_last_process(b), *_last_process(h))
                p.values.append(v)
                p.within.append(w)
                p.blocks.append(block)
                p.order.append("head-first" if head_first else "base-first")
            block += 1
            self.block_s.append(time.monotonic() - tb)
            left = self.budget_s - (time.monotonic() - t0)
            # the next block takes about as long as the last (the first also verified every case)
            last_block_s = self.block_s[-1]
            if self.fixed_max_blocks is None:  # the information the rest of the budget buys
                seq.max_blocks = max(MIN_BLOCKS, block + int(max(0.0, left) / max(1e-3, last_block_s)))
            final = block >= seq.max_blocks or left < last_block_s
            seq.look(*_look_data(pairs)[:1], final=final, within=_look_data(pairs)[1])
            if self.on_block:
                self.on_block(self, block)
            if final:
                break
        if any(p.case_key not in seq.verdicts for p in pairs):
            seq.look(*_look_data(pairs)[:1], final=True, within=_look_data(pairs)[1])
        for p in pairs:
            for key in (p.base_key, p.head_key):
                case = rot.cases[key]
                if key in rot.failed:
                    continue
                est = seq.estimates.get(p.case_key)
                hw = None if est is None or est.ci_low is None else (est.ci_high - est.ci_low) / 2
                rot.store(case, Decision(True, f"ab: {seq.verdicts.get(p.case_key, 'inconclusive')}", hw),
                          run_id=self.head_run_id if key == p.head_key else None, **self._records(p, case, rot))

    def _records(self, p: Pair, case, rot) -> dict:
        side = "head" if case.spec.key == p.head_key else "base"
        seq = self.seq
        est = seq.estimates.get(p.case_key) if seq else None
        ab = {"ab_id": self.ab_id, "side": side,
              "other_run_id": self.base_run_id if side == "head" else self.head_run_id,
              "blocks": list(range(len(case.process_rounds))), "order": list(p.order),
              "block_ratios": [None if v is None else float(math.exp(v)) for v in p.values],
              "block_within": list(p.within),
              "verdict": seq.verdicts.get(p.case_key) if seq else None, "threshold": self.threshold,
              "alpha": self.alpha}
        if est is not None:
            ab.update(ratio=est.ratio, ci_low=est.ci_low, ci_high=est.ci_high, confidence=est.confidence,
                      detectable=est.detectable, blocks_needed=est.blocks_needed)
        # the stored case is the ordinary case (so `compare` of the two runs matches it), not the
        # rotation's side-tagged one; two tuned directories keep their own variants
        if side == "head" and p.head_case_key:
            return {"ab": ab, "case_key": p.head_case_key, "variant": p.head_variant}
        return {"ab": ab, "case_key": p.case_key, "variant": p.variant}


def _look_data(pairs: list[Pair]) -> tuple[dict, dict]:
    """({case: block values}, {case: their within-block variances}) of the blocks measured."""
    values = {p.case_key: [v for v in p.values if v is not None] for p in pairs}
    within = {p.case_key: [w for v, w in zip(p.values, p.within) if v is not None] for p in pairs}
    return values, within


def _last_process(case) -> tuple[list[int], list[int]]:
    """The samples and rounds of the case's current (last) worker process."""
    i = case.process
    s = [x for x, pr in zip(case.samples, case.procs) if pr == i]
    r = [x for x, pr in zip(case.rounds, case.procs) if pr == i]
    return s, r


def side_spec(spec, side: str):
    """The rotation's case of one side: the case with the side in its variant (so the two are two
    cases of one rotation); its stored result gets the ordinary case key back."""
    v = f"{spec.variant}@{side}" if spec.variant else f"@{side}"
    return dataclasses.replace(spec, variant=v)
