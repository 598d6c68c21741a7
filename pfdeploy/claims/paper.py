"""The paper's claims ("R50-max is faster than ResNet-50", ...) and their verdicts from stored runs:
per machine and configuration, the newest run that measured both models of a claim decides
(docs/claims.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..result import Result
from .docs import RunInfo, results_of, started
from .pairs import CONFIG_FIELDS, VERDICT_RULE, Comparison, config_of, pair, usable

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


@dataclass(frozen=True)
class ClaimVerdict(Comparison):
    """A claim's verdict in one configuration of one machine: the comparison of the newest run
    that measured both models there (`run`: None when none did)."""

    claim: str = ""
    statement: str = ""
    machine_id: str = "unknown"
    run: RunInfo | None = None
    info: Claim | None = field(default=None, repr=False, compare=False)  # the claim itself

    def to_dict(self) -> dict:
        run = self.run
        return {"claim": self.claim, "statement": self.statement, "machine_id": self.machine_id,
                **super().to_dict(), "run_id": run.id if run else None, "run_tag": run.tag if run else None,
                "started_at": run.started if run else None}

    @property
    def run_id(self):
        return self.run.id if self.run else None

    @property
    def run_tag(self):
        return self.run.tag if self.run else None


@dataclass(frozen=True)
class ClaimsCheck:
    """`check_claims`: every claim's verdict per machine and configuration (`pfdeploy claims`)."""

    claims: tuple[Claim, ...]
    machines: dict[str, str]  # machine id -> label
    verdicts: list[ClaimVerdict]
    rule: str = VERDICT_RULE
    orientation: str = "speedup = baseline p50 / model p50; above 1 the model is faster"

    def to_dict(self) -> dict:
        """The JSON of `pfdeploy claims --json` and the report's claims.json."""
        return {"rule": self.rule, "orientation": self.orientation, "claims": [c.to_dict() for c in self.claims],
                "machines": self.machines, "verdicts": [v.to_dict() for v in self.verdicts]}


def check_claims(docs: Sequence[dict], claims: Sequence[Claim] = CLAIMS) -> ClaimsCheck:
    """Every claim in every configuration the documents measured anything in: machine id, device,
    runtime (backend), precision, batch, threads, scenario. A verdict comes from the newest run
    that measured both models of the claim in that configuration; "not measured" otherwise."""
    docs = sorted(docs, key=started, reverse=True)
    runs = [RunInfo.of(d) for d in docs]
    machines: dict[str, str] = {}
    # (machine id, *config, model) -> {index of the doc, newest first: its successful result}
    found: dict[tuple, dict[int, Result]] = {}
    for i, (doc, run) in enumerate(zip(docs, runs)):
        machines.setdefault(run.machine_id, run.machine)
        for r in results_of(doc):
            if usable(r):
                found.setdefault((run.machine_id, *config_of(r), r.model), {}).setdefault(i, r)
    configs = sorted({k[:-1] for k in found}, key=lambda k: tuple(str(x) for x in k))
    verdicts = [_check_one(claim, key, runs, found) for claim in claims for key in configs]
    return ClaimsCheck(claims=tuple(claims), machines=machines, verdicts=verdicts)


def _check_one(claim: Claim, key: tuple, runs: Sequence[RunInfo], found: dict) -> ClaimVerdict:
    mid, cfg = key[0], key[1:]
    model, base = found.get((*key, claim.model), {}), found.get((*key, claim.baseline), {})
    both = [i for i in model if i in base]  # doc indices in insertion order: newest first
    if both:
        c, run = pair(model[both[0]], base[both[0]]), runs[both[0]]
    else:
        missing = [m for m, rows in ((claim.model, model), (claim.baseline, base)) if not rows]
        c = Comparison(model=claim.model, baseline=claim.baseline, **dict(zip(CONFIG_FIELDS, cfg)),
                       reason=(f"{' and '.join(missing)} not measured here" if missing
                               else "never measured in the same run"))
        run = None
    return ClaimVerdict(**c.as_kwargs(), claim=claim.id, statement=claim.statement, machine_id=mid, run=run,
                        info=claim)
