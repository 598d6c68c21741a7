"""Named suites (standard library only). A suite fixes models, backends, precisions, batches,
scenario and stopping rule; its version is recorded with every run so that results of different
suite definitions are never mistaken for each other."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .config import StopRule


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    models: tuple[str, ...]
    backends: tuple[str, ...] | None  # None: every backend that runs on the device
    precisions: tuple[str, ...] = ("fp32",)
    optional_precisions: tuple[str, ...] = ()  # measured where a backend runs them natively here
    batches: tuple[int, ...] = (1,)
    scenario: str = "latency"
    rule: StopRule = field(default_factory=StopRule)


_PAPER_MODELS = (
    "pf_resnet50_max", "pf_resnet50_hybrid", "resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0",
    "pf_vit_ti", "deit_tiny_patch16_224", "pf_vit_s", "deit_small_patch16_224", "pf_vit_b", "deit_base_patch16_224",
    "pf_pit_ti", "pit_ti_224", "pf_pit_s", "pit_s_224", "pf_pit_b", "pit_b_224",
)

SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("default", "7",
          "The parameter-free ResNet-50s against ResNet-50, the depthwise ResNet-50 and MobileNetV2 through every "
          "installed CPU runtime (torch eager, ONNX Runtime, OpenVINO; torch-compile on request), batch 1, fp32, "
          "plus bf16 for the runtimes that run it natively on this CPU (AVX512-BF16/AMX).",
          ("pf_resnet50_max", "pf_resnet50_hybrid", "resnet50", "dw_resnet50", "mobilenetv2_100"),
          ("torch", "onnxruntime", "openvino"), optional_precisions=("bf16",),
          # 3 worker processes per case, each warmed up for 1 s and measured for 2 rounds (docs/bench.md,
          # "Several processes per case", measured on a 2-core AMX VM: 4 processes took 381 s for the 25
          # cases, over the 5-minute budget; a 0.5 s warm-up doubled the spread between processes)
          rule=StopRule(min_iters=64, min_time_s=1.5, max_time_s=8.0, target_ci=0.10, processes=3,
                        max_processes=3)),
    Suite("paper", "2",
          "Every released parameter-free model with its baselines through every backend that runs on the device.",
          _PAPER_MODELS, None, rule=StopRule(min_iters=64, min_time_s=3.0, max_time_s=30.0, processes=4,
                                             max_processes=8)),
    Suite("quick", "2",
          "CI smoke run: one parameter-free model against its two baselines through ONNX Runtime, short "
          "measurement (percentiles above p50 are not reported with so few samples).",
          ("pf_resnet50_max", "resnet50", "dw_resnet50"), ("onnxruntime",),
          rule=StopRule(min_iters=10, min_time_s=0.5, max_time_s=2.0, target_ci=0.10, min_samples=10, processes=3,
                        max_processes=3)),
)}

# The table's speedup columns are no longer fixed here: each parameter-free model is compared with
# the baselines its zoo spec names (pfdeploy.claims.comparisons, cli/bench.speedup_columns).


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UsageError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    return SUITES[name]
