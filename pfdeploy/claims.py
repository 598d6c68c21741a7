"""Each parameter-free model against the baselines its zoo spec names, and the paper's claims
checked against stored runs (docs/claims.md).

    comparisons(rows) -> [comparison]        every PF row x every baseline its spec names
    check_claims(docs) -> {"claims", "verdicts", "machines", "rule"}
    best_claims(docs) -> {"runs", "comparisons", "machines", "rule"}   each model at its best
        deployment: the newest `pfdeploy tune` final run per machine (`claims --at best`)

Pure functions of result rows / run documents (the run-file format of Store.export_run: rows
with "samples_ns" and "sample_rounds"). Every ratio is `bench.stats.speedup`: baseline p50 /
model p50, **above 1 the parameter-free model is faster**, paired over shared rounds when the
two cases ran in the same rotation. No torch: the baselines come from the rows themselves
(the engine records the spec's `baselines` in every row); only run files written before that
fall back to the zoo, which imports timm.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Sequence

from .labels import machine_label, ratio_text  # noqa: F401 - ratio_text: part of this module's API
from .zoo.spec import PF_FAMILY  # noqa: F401 - one definition; claims.PF_FAMILY kept

# a comparison pairs two cases that differ only in the model
CONFIG_FIELDS = ("device", "backend", "precision", "batch", "threads", "scenario")
VERDICTS = ("yes", "no", "inconclusive", "not measured")
VERDICT_RULE = ("yes: the whole 95% CI of the speedup (baseline p50 / model p50) is above 1; "
                "no: the whole CI is at or below 1 (\"slower\" when it is entirely below 1); "
                "inconclusive: the CI contains 1, or there is no CI; "
                "not measured: the store has no run with both models in that configuration")


# --------------------------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------------------------

def verdict(ci_low: float | None, ci_high: float | None) -> tuple[str, bool]:
    """(verdict, slower) of "the model is faster than the baseline" from the speedup's CI."""
    if ci_low is None or ci_high is None:
        return "inconclusive", False
    if ci_low > 1.0:
        return "yes", False
    if ci_high <= 1.0:
        return "no", ci_high < 1.0
    return "inconclusive", False


def verdict_text(v: dict) -> str:
    """'yes (1.71x [1.65, 1.78])', 'no, slower (0.93x [0.91, 0.95])', 'not measured'."""
    if v.get("verdict") == "not measured" or v.get("ratio") is None:
        return "not measured"
    word = "no, slower" if v.get("slower") else str(v["verdict"])
    return f"{word} ({ratio_text(v)})"


# --------------------------------------------------------------------------------------------
# every parameter-free model against its named baselines
# --------------------------------------------------------------------------------------------

def named_baselines(row: dict) -> tuple[str, ...]:
    """The baselines the row's model spec names: from the row itself (recorded by the engine),
    else, for a parameter-free row of an older run file, from the zoo."""
    if row.get("baselines") is not None:
        return tuple(str(b) for b in row["baselines"])
    if row.get("family") != PF_FAMILY or not row.get("model"):
        return ()
    return _zoo_baselines(str(row["model"]))


@functools.lru_cache(maxsize=None)
def _zoo_baselines(model: str) -> tuple[str, ...]:
    try:
        from .zoo import get_spec  # imports timm (seconds); only for rows without "baselines"

        return tuple(get_spec(model).baselines)
    except Exception:  # noqa: BLE001 - an unknown or foreign model simply names no baseline
        return ()


def config_of(row: dict) -> tuple:
    return tuple(row.get(f) for f in CONFIG_FIELDS)


def _ok(row: dict | None) -> bool:
    return bool(row) and row.get("status") == "ok" and (
        bool(row.get("samples_ns")) or isinstance(row.get("p50_ms"), (int, float)))


def _rounds(row: dict):
    """The row's round ids when there is one per sample, else None (then nothing is paired)."""
    r = row.get("sample_rounds")
    return r if r is not None and len(r) == len(row.get("samples_ns") or ()) else None


def pair(model_row: dict, base_row: dict | None, baseline: str | None = None) -> dict:
    """One comparison: the model row against the row of `baseline` in the same configuration
    (None: the run lacks it)."""
    from .bench.stats import row_speedup

    out = {"model": model_row.get("model"), "baseline": base_row.get("model") if base_row else baseline,
           **{f: model_row.get(f) for f in CONFIG_FIELDS},
           "model_p50_ms": model_row.get("p50_ms"), "model_params": model_row.get("params"),
           "model_macs": model_row.get("macs"), "baseline_p50_ms": None, "baseline_params": None,
           "baseline_macs": None, "ratio": None, "ci_low": None, "ci_high": None, "paired": False,
           "rounds": 0, "verdict": "not measured", "slower": False, "reason": None}
    if base_row is not None:
        out.update(baseline_p50_ms=base_row.get("p50_ms"), baseline_params=base_row.get("params"),
                   baseline_macs=base_row.get("macs"))
    if not _ok(model_row):
        out["reason"] = f"{model_row.get('model')} has no successful result"
        return out
    if not _ok(base_row):
        out["reason"] = (f"{base_row.get('model')} {base_row.get('status')}" if base_row
                         else "baseline not in this run")
        return out
    if not (base_row.get("samples_ns") and model_row.get("samples_ns")):
        # a row without raw samples (an imported summary): the ratio of the medians, no CI
        b, m = base_row.get("p50_ms"), model_row.get("p50_ms")
        res = ({"ratio": b / m, "ci_low": None, "ci_high": None, "paired": False, "rounds": 0}
               if isinstance(b, (int, float)) and isinstance(m, (int, float)) and m > 0 else None)
    else:
        res = row_speedup(base_row, model_row)  # paired by rotation, hierarchical over worker processes
    if res is None:
        out["reason"] = "no samples to compare"
        return out
    out.update(ratio=res["ratio"], ci_low=res["ci_low"], ci_high=res["ci_high"], paired=bool(res["paired"]),
               rounds=int(res["rounds"]))
    out["verdict"], out["slower"] = verdict(res["ci_low"], res["ci_high"])
    return out


def comparisons(rows: Iterable[dict]) -> list[dict]:
    """Every successful row whose spec names baselines, against each of them, within one run's
    rows: the baseline row of the same device, backend, precision, batch, threads and scenario
    (a "not measured" entry when the run lacks it or it failed)."""
    rows = list(rows)
    index = {(config_of(r), r.get("model")): r for r in rows}
    out = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        for base in named_baselines(r):
            out.append(pair(r, index.get((config_of(r), base)), base))
    return out


# --------------------------------------------------------------------------------------------
# the paper's claims
# --------------------------------------------------------------------------------------------

RELEASE = "PfLayer release README (naver-ai/PfLayer; ../shared/pflayer/MODELS.md)"


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    model: str
    baseline: str
    release: str  # what the release publishes about this pair
    release_model_ms: float | None = None  # the release's GPU latency, batch 1 (GPU and precision not published)
    release_baseline_ms: float | None = None

    @property
    def release_speedup(self) -> float | None:
        if self.release_model_ms and self.release_baseline_ms:
            return self.release_baseline_ms / self.release_model_ms
        return None

    @property
    def release_gpu(self) -> str:
        """The release's GPU figures as one cell: '1.28x (6.8 / 8.7 ms)', '6.8 / - ms' or '-'."""
        if self.release_model_ms is None:
            return "-"
        base = "-" if self.release_baseline_ms is None else f"{self.release_baseline_ms:g}"
        ms = f"{self.release_model_ms:g} / {base} ms"
        return f"{self.release_speedup:.2f}x ({ms})" if self.release_speedup else ms

    def to_dict(self) -> dict:
        return {"id": self.id, "statement": self.statement, "model": self.model, "baseline": self.baseline,
                "release": self.release, "release_model_ms": self.release_model_ms,
                "release_baseline_ms": self.release_baseline_ms, "release_speedup": self.release_speedup,
                "release_gpu": self.release_gpu}


_NO_DW = ("the release publishes no depthwise ResNet-50 (pfdeploy's controlled baseline); the paper's "
          "point: depthwise conv saves parameters and FLOPs but little real time")
CLAIMS: tuple[Claim, ...] = (
    Claim("r50max-vs-r50", "R50-max is faster than ResNet-50", "pf_resnet50_max", "resnet50",
          "GPU latency 6.8 vs 8.7 ms (batch 1; GPU, precision and timing not published)", 6.8, 8.7),
    Claim("r50hybrid-vs-r50", "R50-hybrid is faster than ResNet-50", "pf_resnet50_hybrid", "resnet50",
          "GPU latency 7.3 vs 8.7 ms (batch 1; GPU, precision and timing not published)", 7.3, 8.7),
    Claim("r50max-vs-dw", "R50-max is faster than the depthwise ResNet-50", "pf_resnet50_max", "dw_resnet50",
          "GPU latency 6.8 ms; " + _NO_DW, 6.8),
    Claim("r50hybrid-vs-dw", "R50-hybrid is faster than the depthwise ResNet-50", "pf_resnet50_hybrid",
          "dw_resnet50", "GPU latency 7.3 ms; " + _NO_DW, 7.3),
    Claim("vits-vs-deits", "ViT-S-max is faster than DeiT-S", "pf_vit_s", "deit_small_patch16_224",
          "throughput 763 / 96 (units not stated; R50 962 / 112 in the same table); no DeiT-S figure"),
    Claim("pits-vs-pits", "PiT-S-max is faster than PiT-S", "pf_pit_s", "pit_s_224",
          "throughput 1000 / 92 (units not stated; R50 962 / 112 in the same table); no PiT-S figure"),
)


def _started(doc: dict) -> str:
    return str((doc.get("run") or {}).get("started_at") or "")


def check_claims(docs: Sequence[dict], claims: Sequence[Claim] = CLAIMS) -> dict:
    """Every claim in every configuration the documents measured anything in: machine id, device,
    runtime (backend), precision, batch, threads, scenario. A verdict comes from the newest run
    that measured both models of the claim in that configuration; "not measured" otherwise."""
    docs = sorted(docs, key=_started, reverse=True)
    machines: dict[str, str] = {}
    # (machine id, *config, model) -> {index of the doc, newest first: its successful row}
    found: dict[tuple, dict[int, dict]] = {}
    for i, doc in enumerate(docs):
        run = doc.get("run") or {}
        mid = str(run.get("machine_id") or "unknown")
        machines.setdefault(mid, machine_label(run))
        for row in doc.get("results") or []:
            if _ok(row):
                found.setdefault((mid, *config_of(row), row.get("model")), {}).setdefault(i, row)
    configs = sorted({k[:-1] for k in found}, key=lambda k: tuple(str(x) for x in k))
    verdicts = [_check_one(claim, key, docs, found) for claim in claims for key in configs]
    return {"rule": VERDICT_RULE, "orientation": "speedup = baseline p50 / model p50; above 1 the model is faster",
            "claims": [c.to_dict() for c in claims], "machines": machines, "verdicts": verdicts}


def _check_one(claim: Claim, key: tuple, docs: Sequence[dict], found: dict) -> dict:
    mid, cfg = key[0], key[1:]
    model, base = found.get((*key, claim.model), {}), found.get((*key, claim.baseline), {})
    both = [i for i in model if i in base]  # doc indices in insertion order: newest first
    if both:
        run = docs[both[0]].get("run") or {}
        v = pair(model[both[0]], base[both[0]])
        v.update(run_id=run.get("id"), run_tag=run.get("tag"), started_at=run.get("started_at"))
    else:
        v = pair({"model": claim.model, **dict(zip(CONFIG_FIELDS, cfg))}, None, claim.baseline)
        missing = [m for m, rows in ((claim.model, model), (claim.baseline, base)) if not rows]
        v.update(run_id=None, run_tag=None, started_at=None,
                 reason=(f"{' and '.join(missing)} not measured here" if missing
                         else "never measured in the same run"))
    return {"claim": claim.id, "statement": claim.statement, "machine_id": mid, **v}


# --------------------------------------------------------------------------------------------
# each model at its best deployment (`pfdeploy claims --at best`, issue 23 item 6)
# --------------------------------------------------------------------------------------------

TUNE_FINAL_SUITE = "tune-final"  # the run in which every model's runtime winners ran in one rotation
ANY_RUNTIME = "any runtime"  # the runtime label of an across-runtimes comparison
# a deployment: what a tune-final row names (the rest of the row stays in the store)
DEPLOYMENT_FIELDS = ("backend", "precision", "variant", "batch", "threads", "scenario", "options")
TUNE_FIELDS = ("candidate", "default", "note", "status", "runtime_winner", "overall_winner", "tied_with",
               "vs_default")
BEST_RULE = VERDICT_RULE.replace("the store has no run with both models in that configuration",
                                  "the tune run has no successful deployment of one of the two there")
BEST_ORIENTATION = ("speedup = baseline p50 / parameter-free p50, each at its own best deployment "
                    "(per item when the two batches differ); above 1 the parameter-free model is faster")


def no_tune_results(store: str) -> str:
    """The one message for a store without a `pfdeploy tune` final run."""
    return f"no `pfdeploy tune` results in {store}: run `pfdeploy tune MODELS` first"


def is_tune_final(doc: dict) -> bool:
    return str((doc.get("run") or {}).get("suite") or "") == TUNE_FINAL_SUITE


def tune_final_docs(docs: Sequence[dict]) -> list[dict]:
    """The newest finished tune-final run document of each machine, device, scenario and batch
    (newest first; an interrupted one only where there is no finished one): a throughput tune of
    one model does not hide the latency tune of three."""
    out: dict[tuple, dict] = {}
    finished = lambda d: (d.get("run") or {}).get("status") == "finished"  # noqa: E731
    for doc in sorted((d for d in docs if is_tune_final(d)), key=lambda d: (finished(d), _started(d)), reverse=True):
        run = doc.get("run") or {}
        cfg = run.get("config") or {}
        key = (str(run.get("machine_id") or "unknown"), str(cfg.get("device")), str(cfg.get("scenario")),
               str(cfg.get("batches")))
        out.setdefault(key, doc)
    return list(out.values())


def _tune(row: dict) -> dict:
    t = row.get("tune")
    return t if isinstance(t, dict) else {}


def _p50(row: dict) -> float:
    v = row.get("p50_ms")
    return float(v) if isinstance(v, (int, float)) else float("inf")


def _pick(rows: Sequence[dict], flag: str | None = None) -> dict | None:
    """The row that stands for a set of winners: a successful one first; among them the one the
    tune marked (`flag`: "overall_winner"), then the declared winner over a tied one, then the
    lowest p50."""
    if not rows:
        return None

    def rank(r):
        t = _tune(r)
        return (not _ok(r), not (flag and t.get(flag)), t.get("status") != "winner", _p50(r))

    return min(rows, key=rank)


def deployment(row: dict | None) -> dict | None:
    """What a side of a best-deployment comparison ran: backend, precision, variant, batch,
    threads, scenario, options, its p50 with CI and the tune's record (status, tied set, speedup
    over the runtime's default)."""
    if row is None:
        return None
    t = _tune(row)
    return {**{f: row.get(f) for f in DEPLOYMENT_FIELDS},
            "variant": row.get("variant") or t.get("candidate") or "",
            "p50_ms": row.get("p50_ms"), "p50_ci_low_ms": row.get("p50_ci_low_ms"),
            "p50_ci_high_ms": row.get("p50_ci_high_ms"), "n": row.get("n"), "processes": row.get("processes"),
            "status": row.get("status"), "params": row.get("params"), "macs": row.get("macs"),
            "tune": {f: t.get(f) for f in TUNE_FIELDS}}


def deployment_text(d: dict | None, with_backend: bool = True, compact: bool = False) -> str:
    """'openvino · int8 · int8-s8s8': '(default)' (compact: '*') marks the runtime's own default,
    'b8' a batch other than 1, '(tied)' a winner the tune could not separate from other settings."""
    if not d:
        return "-"
    parts = ([str(d.get("backend"))] if with_backend else []) + [str(d.get("precision"))]
    tune = d.get("tune") or {}
    variant = str(d.get("variant") or "")
    mark = ("*" if compact else " (default)") if tune.get("default") else ""
    if variant:
        parts.append(variant + mark)
    elif mark:
        parts.append("default" if not compact else "*")
    if d.get("batch") not in (None, 1):
        parts.append(f"b{d['batch']}")
    text = " · ".join(parts)
    return text + " (tied)" if tune.get("status") == "tied" else text


def _per_item(row: dict) -> dict:
    """The row with its samples as time per item (samples / batch): how two deployments of
    different batch are compared (a throughput ratio)."""
    b = row.get("batch") if isinstance(row.get("batch"), int) and row.get("batch") > 0 else 1
    return {**row, "samples_ns": [s / b for s in row.get("samples_ns") or ()],
            "p50_ms": row["p50_ms"] / b if isinstance(row.get("p50_ms"), (int, float)) else row.get("p50_ms")}


def best_pair(kind: str, model_row: dict | None, base_row: dict | None, model: str, baseline: str,
              device, scenario, backend: str, missing: str | None = None) -> dict:
    """One best-deployment comparison: row_speedup(baseline row, model row), paired over the
    shared rounds of the final rotation, hierarchical over worker-process generations."""
    from .bench.stats import row_speedup

    out = {"kind": kind, "model": model, "baseline": baseline, "device": device, "scenario": scenario,
           "runtime": backend, "model_deployment": deployment(model_row),
           "baseline_deployment": deployment(base_row),
           "model_p50_ms": model_row.get("p50_ms") if model_row else None,
           "baseline_p50_ms": base_row.get("p50_ms") if base_row else None,
           "per_item": False, "ratio": None, "ci_low": None, "ci_high": None, "paired": False, "rounds": 0,
           "processes": None, "how": None, "verdict": "not measured", "slower": False, "reason": None}
    if model_row is None or base_row is None:
        out["reason"] = missing or "not measured"
        return out
    for row in (model_row, base_row):
        if not _ok(row):
            out["reason"] = f"{row.get('model')} {row.get('status')}: {row.get('error') or 'no result'}"
            return out
    m, b = model_row, base_row
    if m.get("batch") != b.get("batch"):
        m, b = _per_item(m), _per_item(b)
        out["per_item"] = True
    if not (m.get("samples_ns") and b.get("samples_ns")):  # rows without raw samples: medians, no CI
        bp, mp = b.get("p50_ms"), m.get("p50_ms")
        res = ({"ratio": bp / mp, "ci_low": None, "ci_high": None, "paired": False, "rounds": 0,
                "processes": None, "how": "ratio of the stored medians (no samples)"}
               if isinstance(bp, (int, float)) and isinstance(mp, (int, float)) and mp > 0 else None)
    else:
        res = row_speedup(b, m)
    if res is None:
        out["reason"] = "no samples to compare"
        return out
    out.update({k: res.get(k) for k in ("ratio", "ci_low", "ci_high", "processes", "how")},
               paired=bool(res.get("paired")), rounds=int(res.get("rounds") or 0))
    out["verdict"], out["slower"] = verdict(out["ci_low"], out["ci_high"])
    return out


def best_comparisons(doc: dict) -> list[dict]:
    """Every parameter-free model of one tune-final run against each baseline its rows name:
    per runtime (each side's winner on that runtime, kind "runtime") and across runtimes (each
    side's overall winner, kind "overall"), per device and scenario."""
    rows = [r for r in doc.get("results") or [] if r.get("model")]
    run = doc.get("run") or {}
    # (device, scenario) -> model -> backend -> [rows the tune kept for that runtime]
    where: dict[tuple, dict[str, dict[str, list]]] = {}
    for r in rows:
        t = _tune(r)
        if t and not t.get("runtime_winner", True):
            continue  # a tune-final run holds winners only; anything else is not a deployment
        where.setdefault((r.get("device"), r.get("scenario")), {}).setdefault(
            str(r["model"]), {}).setdefault(str(r.get("backend")), []).append(r)
    out = []
    for (device, scenario), models in where.items():
        for model in sorted(models):
            backends = models[model]
            anyrow = next(r for rs in backends.values() for r in rs)
            for base in named_baselines(anyrow):
                theirs = models.get(base, {})
                runtimes = sorted(set(backends) | set(theirs))
                for backend in runtimes:
                    m, b = _pick(backends.get(backend, [])), _pick(theirs.get(backend, []))
                    missing = (None if m and b else
                               f"{model if m is None else base} has no tuned deployment on {backend} in this run")
                    out.append(best_pair("runtime", m, b, model, base, device, scenario, backend, missing))
                m = _pick([r for rs in backends.values() for r in rs], "overall_winner")
                b = _pick([r for rs in theirs.values() for r in rs], "overall_winner")
                out.append(best_pair("overall", m, b, model, base, device, scenario, ANY_RUNTIME,
                                     None if b else f"{base} was not tuned in this run"))
    for c in out:
        c.update(run_id=run.get("id"), run_tag=run.get("tag"), started_at=run.get("started_at"),
                 machine_id=str(run.get("machine_id") or "unknown"))
    return out


def best_claims(docs: Sequence[dict], newest_only: bool = True) -> dict:
    """Each parameter-free model against its baselines at each one's best deployment, from the
    newest tune-final run of every machine among `docs` (`newest_only=False`: every tune-final
    run of `docs`, e.g. runs named on the command line; other runs are ignored):
    {"at": "best", "rule", "orientation", "runs", "machines", "comparisons"}; "runs" is empty when
    there is no tune-final run."""
    finals = (tune_final_docs(docs) if newest_only
              else sorted((d for d in docs if is_tune_final(d)), key=_started, reverse=True))
    runs, machines, comps = [], {}, []
    for doc in finals:
        run = doc.get("run") or {}
        mid = str(run.get("machine_id") or "unknown")
        machines[mid] = machine_label(run)
        runs.append({"id": run.get("id"), "tag": run.get("tag"), "started_at": run.get("started_at"),
                     "machine_id": mid, "suite": run.get("suite"), "git_commit": run.get("git_commit")})
        comps += best_comparisons(doc)
    return {"at": "best", "rule": BEST_RULE, "orientation": BEST_ORIENTATION, "runs": runs,
            "machines": machines, "comparisons": comps}
