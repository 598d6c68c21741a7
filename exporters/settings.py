"""What an export is asked to produce, validated up front (standard library only).

`ExportRequest` is the frozen description of one artifact: model, weights source, target,
precision, batch settings and calibration (which targets exist and what precisions each exports
is the targets' to say: exporters/targets/). Its `key()` is the content address of the artifact in
the cache: the sha256 of every setting that changes the bytes produced, plus the versions of the
tools that produce them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..errors import UsageError

OPSET = 18  # inside TensorRT's ONNX parser range (9-24 for 10.x) and the 17-20 the issue asks for
FORMAT_VERSION = 1  # bump when an exporter change makes old cached artifacts wrong

DEFAULT_DYNAMIC = (1, 8, 64)  # min:opt:max of the dynamic batch axis (TensorRT profile)
DEFAULT_CALIB_SIZE = 64  # synthetic calibration images for int8
CALIB_SEED = 20_000  # synthetic calibration images use seeds CALIB_SEED + i
PARITY_SEED = 7_000_000  # parity inputs: a disjoint seed range, never used for calibration
MAX_BATCH = 4096


@dataclass(frozen=True)
class BatchSpec:
    """Static batch (min == opt == max, dynamic False) or a dynamic batch axis with a range."""

    dynamic: bool
    min: int
    opt: int
    max: int

    @property
    def example(self) -> int:
        """Batch of the example input given to the exporter. Never 1 for a dynamic axis: an
        example batch of 1 lets the tracer specialise reshapes to batch 1 (the ViT trap)."""
        if not self.dynamic:
            return self.min
        return 2 if self.min <= 2 <= self.max else self.min

    def parity_batches(self) -> list[int]:
        """Two batch sizes to verify at, at least one different from the example batch."""
        if not self.dynamic:
            return [self.min]
        picks = [b for b in (1, 3) if self.min <= b <= self.max]
        for b in (self.min, self.max, self.opt):
            if len(picks) >= 2:
                break
            if b not in picks:
                picks.append(b)
        return sorted(picks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["example"] = self.example
        return d

    def describe(self) -> str:
        return f"dynamic {self.min}:{self.opt}:{self.max}" if self.dynamic else f"static {self.min}"


def parse_batch(batch=None, dynamic_batch=None) -> BatchSpec:
    """`batch=N` -> static N; `dynamic_batch='MIN:OPT:MAX'` (or a 3-tuple) -> dynamic; neither ->
    dynamic DEFAULT_DYNAMIC. Both -> UsageError."""
    if batch is not None and dynamic_batch is not None:
        raise UsageError("give either --batch N (static) or --dynamic-batch MIN:OPT:MAX, not both")
    if batch is not None:
        try:
            n = int(batch)
        except (TypeError, ValueError):
            raise UsageError(f"--batch must be a positive integer, got {batch!r}") from None
        if not 1 <= n <= MAX_BATCH:
            raise UsageError(f"--batch must be between 1 and {MAX_BATCH}, got {n}")
        return BatchSpec(False, n, n, n)
    if dynamic_batch is None:
        lo, opt, hi = DEFAULT_DYNAMIC
    else:
        parts = dynamic_batch.split(":") if isinstance(dynamic_batch, str) else list(dynamic_batch)
        try:
            lo, opt, hi = (int(p) for p in parts)
        except (TypeError, ValueError):
            raise UsageError(f"--dynamic-batch must be MIN:OPT:MAX (three integers), got {dynamic_batch!r}") from None
    if not 1 <= lo <= opt <= hi <= MAX_BATCH:
        raise UsageError(f"--dynamic-batch needs 1 <= MIN <= OPT <= MAX <= {MAX_BATCH}, got {lo}:{opt}:{hi}")
    if hi < 2:
        raise UsageError("a dynamic batch axis needs MAX >= 2; for batch 1 only use --batch 1")
    return BatchSpec(True, lo, opt, hi)


@dataclass(frozen=True)
class CalibSpec:
    """Calibration set for int8: synthetic images (seeded) or a folder of images."""

    source: str  # "synthetic" or "images"
    size: int
    seed: int = CALIB_SEED
    folder: str | None = None
    digest: str | None = None  # sha256 over the folder's image files (content, not names)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ExportRequest:
    model: str  # canonical zoo name
    weights_source: str  # 'synthetic:<seed>' or 'sha256:<hex>'
    target: str
    precision: str
    batch: BatchSpec
    opset: int = OPSET
    calib: CalibSpec | None = None
    tools: dict = field(default_factory=dict)
    pfdeploy_version: str = ""
    recipe: str | None = None  # int8 recipe (exporters.quantize.RECIPES); None for float artifacts

    def key_material(self) -> dict:
        extra = {"recipe": self.recipe} if self.recipe else {}  # float artifacts keep their keys
        return {**extra,
            "format": FORMAT_VERSION, "model": self.model, "weights": self.weights_source,
            "target": self.target, "precision": self.precision, "batch": asdict(self.batch),
            "opset": self.opset, "calib": self.calib.to_dict() if self.calib else None,
            "tools": dict(sorted(self.tools.items())), "pfdeploy": self.pfdeploy_version,
        }

    def key(self) -> str:
        blob = json.dumps(self.key_material(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def dirname(self) -> str:
        safe = self.model.replace(":", "-").replace("/", "-")
        return f"{safe}-{self.precision}-{self.key()[:16]}"
