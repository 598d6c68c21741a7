"""Each parameter-free model against the baselines its zoo spec names, and the paper's claims
checked against stored runs (docs/claims.md).

    comparisons(rows) -> [comparison]        every PF row x every baseline its spec names
    check_claims(docs) -> {"claims", "verdicts", "machines", "rule"}

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

PF_FAMILY = "parameter-free"
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
