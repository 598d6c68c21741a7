"""The base class of an export target, and what the pipeline hands a target.

A target module (exporters/targets/onnx.py, openvino.py, tensorrt.py, or a plugin's, through the
entry-point group `pfdeploy.targets`) defines a `Target` subclass and exposes the instance as
`TARGET`. It declares everything about its artifact format:

- `name`, `aliases`, `description`; `model_file` (the file its runtime loads) and `precisions`;
- `tools(precision)`: the tools whose versions are part of the artifact's cache key;
- `int8_recipe(precision, requested)`: the int8 recipe recorded in the key (or a UsageError);
- `parent(plan)`: the artifact it is derived from (get_artifact keyword arguments: an ONNX file of
  some precision and batch), or None when it is exported from the torch model itself;
- `prepare(plan)`: checks before anything is exported (a missing toolchain, with its hint) and
  extra facts that belong in the key (TensorRT: its version and the GPU);
- `export(ctx) -> dict`: writes the artifact's files into `ctx.tmp` and returns the exporter's
  settings, recorded in the manifest;
- verification: `verify_backend` (the backend whose Runner computes its outputs; default: the
  first backend registered for the target), `verify_device`, `verify_setup(artifact, backend)`
  (precision and runner options) and `check_runnable(artifact)` (refuse before loading);
  `reverify_cached` (re-run parity on a cached artifact whose verdict is missing or stale).

The pipeline (exporters/pipeline.py) does the rest for every target alike: the cache and its key,
the temporary directory and the atomic rename, the manifest, parity, `--out`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...errors import UsageError


@dataclass
class ExportPlan:
    """What is asked, before the cache is looked at: the model's spec, the weights' identity, the
    precision, batch, calibration and int8 recipe, the cache root, and `artifact_dir_of` (the cache
    directory of another request: `(target, precision, batch, recipe) -> Path`, for hints).
    `extra_tools`: what `Target.prepare` adds to the cache key; `facts`: anything else it found
    (for its own `export`)."""

    spec: Any
    weights_source: str
    precision: str
    batch: Any  # settings.BatchSpec
    calib: Any  # settings.CalibSpec | None
    recipe: str | None
    root: Path
    artifact_dir_of: Callable[..., Path]
    extra_tools: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)


@dataclass
class ExportContext:
    """What `Target.export` works with: the request (its `key()` addresses the cache), the plan,
    the temporary directory to write into (`tmp`), the final directory it will be renamed to
    (`final`), the parent artifact (or None) and `model()`, the PyTorch model (built once)."""

    request: Any  # settings.ExportRequest
    plan: ExportPlan
    tmp: Path
    final: Path
    parent: Any  # artifact.Artifact | None
    model: Callable[[], Any]
    progress: Callable[[str], None]

    @property
    def spec(self):
        return self.plan.spec


class Target:
    """An export target. Subclasses set the class attributes and implement `export`."""

    name = "base"
    aliases: tuple[str, ...] = ()
    description = ""
    model_file = "model"
    precisions: tuple[str, ...] = ("fp32",)
    core_tools: tuple[str, ...] = ("torch", "onnx", "onnxscript", "timm")  # every export uses them
    verify_backend: str | None = None  # None: the first backend registered for this target
    verify_device = "cpu"
    reverify_cached = True

    # --- what is asked --------------------------------------------------------------------
    def check_precision(self, precision: str) -> str:
        p = str(precision).strip().lower()
        if p not in self.precisions:
            raise UsageError(f"precision {precision!r} is not supported for --to {self.name}; "
                             f"choose from {', '.join(self.precisions)}{self.precision_note(p)}")
        return p

    def precision_note(self, precision: str) -> str:
        """More words for a refused precision (appended to the error)."""
        return ""

    def int8_recipe(self, precision: str, requested: str | None) -> str | None:
        """The int8 recipe recorded in the artifact's key; `requested`: --int8-recipe."""
        if requested is not None:
            raise UsageError("--int8-recipe only applies to --to onnx --precision int8 "
                             "(TensorRT engines use the tensorrt recipe, OpenVINO NNCF)")
        return None

    def tools(self, precision: str) -> tuple[str, ...]:
        """Tools whose installed versions are part of the cache key of an artifact at `precision`."""
        return self.core_tools

    # --- how it is made -------------------------------------------------------------------
    def prepare(self, plan: ExportPlan) -> None:
        """Checks before the cache is looked at; may add to `plan.extra_tools` / `plan.facts`."""

    def parent(self, plan: ExportPlan) -> dict | None:
        """get_artifact keyword arguments of the artifact this one is derived from, or None."""
        return None

    def progress_message(self, plan: ExportPlan) -> str:
        return f"exporting {plan.spec.name} to {self.name} {plan.precision} ({plan.batch.describe()})"

    def export(self, ctx: ExportContext) -> dict:
        """Write the artifact's files into `ctx.tmp`; return the exporter settings for the manifest."""
        raise NotImplementedError

    def files(self, tmp: Path) -> list[str]:
        """The artifact's files (digested and listed in the manifest): every visible file written."""
        return sorted(p.name for p in Path(tmp).iterdir() if p.is_file() and not p.name.startswith("."))

    # --- how it is verified ---------------------------------------------------------------
    def check_runnable(self, artifact) -> None:
        """Raise a UserError when the artifact cannot run here (before a runtime loads it)."""

    def verify_setup(self, artifact, backend) -> tuple[str, dict]:
        """(precision, runner options) the artifact is verified at on `verify_device`."""
        return artifact.precision, {}

    def __repr__(self) -> str:
        return f"<export target {self.name}>"
