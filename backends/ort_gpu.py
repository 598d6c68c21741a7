"""ONNX Runtime on NVIDIA GPUs: loading the CUDA libraries, the provider list, and the checks that
keep a GPU measurement from running on the CPU unseen. Small functions, each tested with fakes
(tests/test_gpu_paths.py); the onnxruntime backend calls them.

- `preload_gpu_libraries`: onnxruntime-gpu finds CUDA/cuDNN from the pip wheels (nvidia-*) only
  through `onnxruntime.preload_dlls()` (ONNX Runtime >= 1.21) unless torch was imported first;
  pfdeploy's ONNX Runtime workers never import torch, so the worker calls it. For the TensorRT
  provider it imports `tensorrt` first, whose package loads libnvinfer from its pip wheel.
- `gpu_providers`: TensorRT -> CUDA -> CPU for the TensorRT provider (subgraphs TensorRT rejects
  go to the CUDA provider, not straight to the CPU), CUDA -> CPU for the CUDA provider.
- `check_providers`: every provider asked for must be in the session, in that order (ONNX Runtime
  only warns when one cannot be created).
- `check_placement`: which nodes each provider got (`session.record_ep_graph_assignment_info`,
  ONNX Runtime >= 1.24). Nodes on the CPU provider fail the case unless they are shape
  computations (ONNX Runtime's CUDA provider places those on the CPU on purpose) or the backend
  option `allow_cpu_nodes` is set. With an older ONNX Runtime, `session.disable_cpu_ep_fallback`
  makes session creation fail instead when any node would run on the CPU.
"""
from __future__ import annotations

from collections import Counter

from ..errors import UserError

TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
RECORD_PLACEMENT = "session.record_ep_graph_assignment_info"
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
# Operators of shape computations: ONNX Runtime's CUDA provider leaves them on the CPU by design
# (their inputs and outputs are small int64 shape tensors); anything else on the CPU is compute.
SHAPE_OPS = frozenset({"Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast",
                       "Range", "ConstantOfShape", "Reshape", "Identity", "Constant"})
GPU_HINT = ("install onnxruntime-gpu for your CUDA: pip install 'pfdeploy[gpu]' (CUDA 13) or "
            "'pfdeploy[gpu-cu12]' (CUDA 12); see docs/gpu.md")


def preload_gpu_libraries(ort, provider: str) -> dict:
    """Load the CUDA/cuDNN (and for TensorRT, libnvinfer) libraries from their pip wheels before a
    GPU session is created. Returns what was done, for the row's runner description."""
    done: dict = {}
    if provider == TRT_EP:
        try:
            import tensorrt  # noqa: F401 - its __init__ loads libnvinfer from the tensorrt_libs wheel

            done["tensorrt"] = getattr(tensorrt, "__version__", "imported")
        except Exception as exc:  # noqa: BLE001 - not installed, or a broken install
            done["tensorrt"] = f"not imported ({type(exc).__name__}: {exc})"
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        done["preload_dlls"] = f"not available in onnxruntime {getattr(ort, '__version__', '?')} (< 1.21)"
        return done
    try:
        preload()
        done["preload_dlls"] = "called"
    except Exception as exc:  # noqa: BLE001 - a failed preload shows up as a missing provider next
        done["preload_dlls"] = f"failed: {type(exc).__name__}: {exc}"
    return done


def gpu_providers(provider: str, available: list[str], options: dict) -> list:
    """The provider list for a GPU session: [(TRT, opts), (CUDA, opts), CPU] or [(CUDA, opts), CPU].
    `options`: provider name -> its options. UserError when a needed provider is not built in."""
    names = [TRT_EP, CUDA_EP] if provider == TRT_EP else [CUDA_EP]
    missing = [n for n in names if n not in available]
    if missing:
        raise UserError(f"ONNX Runtime has no {', '.join(missing)} here (available: {', '.join(available)}); "
                        f"{GPU_HINT}")
    return [(n, dict(options.get(n, {}))) for n in names] + [CPU_EP]


def provider_names(providers: list) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def check_providers(requested: list, actual: list[str]) -> None:
    """Every requested provider must be in the session, in the requested order."""
    want = provider_names(requested)
    if list(actual) != want:
        lost = [p for p in want if p not in actual]
        why = f"{', '.join(lost)} could not be created" if lost else "the session's providers differ"
        raise UserError(f"ONNX Runtime session providers are {', '.join(actual) or 'none'}, not "
                        f"{', '.join(want)}: {why}; refusing to measure a silent fallback "
                        "(the worker log has ONNX Runtime's reason)")


def configure_session(ort, so) -> str:
    """Ask the session to record node placement (>= 1.24) or, where it cannot, to refuse any node
    on the CPU. Returns the mode: "record" or "strict"."""
    if hasattr(ort.InferenceSession, "get_provider_graph_assignment_info"):
        so.add_session_config_entry(RECORD_PLACEMENT, "1")
        return "record"
    so.add_session_config_entry(DISABLE_CPU_FALLBACK, "1")
    return "strict"


def session_providers(providers: list, mode: str) -> list:
    """With `session.disable_cpu_ep_fallback`, ONNX Runtime refuses an explicitly listed CPU
    provider (it adds the CPU provider itself): drop it from the list given to the session."""
    return [p for p in providers if p != CPU_EP] if mode == "strict" else providers


def placement_counts(session) -> dict[str, Counter]:
    """{provider: Counter(op_type)} of the nodes each provider got."""
    out: dict[str, Counter] = {}
    for sub in session.get_provider_graph_assignment_info():
        c = out.setdefault(sub.ep_name, Counter())
        for node in sub.get_nodes():
            c[node.op_type] += 1
    return out


def check_placement(session, mode: str, allow_cpu_nodes: bool = False) -> dict:
    """Node placement as {"nodes": {provider: count}, "cpu_ops": {op: count}}; UserError when
    compute nodes would run on the CPU and `allow_cpu_nodes` is not set."""
    if mode != "record":
        return {"nodes": None, "check": "session.disable_cpu_ep_fallback (no node may run on the CPU)"}
    counts = placement_counts(session)
    if not counts:
        raise UserError("ONNX Runtime recorded no node placement for this session; cannot check that the "
                        "graph runs on the GPU")
    cpu = counts.get(CPU_EP, Counter())
    compute = {op: n for op, n in cpu.items() if op not in SHAPE_OPS}
    info = {"nodes": {ep: sum(c.values()) for ep, c in counts.items()}, "cpu_ops": dict(sorted(cpu.items()))}
    if compute and not allow_cpu_nodes:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(compute.items()))
        raise UserError(f"{sum(compute.values())} compute node(s) would run on the CPU provider ({ops}): the GPU "
                        f"providers cannot run them; refusing to measure a mixed GPU/CPU graph unseen "
                        f"(backend option allow_cpu_nodes measures it anyway, with the placement recorded)")
    if compute:
        info["warning"] = f"{sum(compute.values())} compute node(s) on the CPU provider (allow_cpu_nodes)"
    return info


def strict_failure(exc: Exception) -> UserError | None:
    """ONNX Runtime's refusal under `session.disable_cpu_ep_fallback`, as a clear UserError."""
    if "fallback to CPU EP has been explicitly disabled" in str(exc):
        return UserError("some nodes would run on the CPU provider (the GPU providers cannot run them) and this "
                         "ONNX Runtime (< 1.24) cannot say which; refusing to measure a mixed GPU/CPU graph unseen. "
                         "A newer onnxruntime-gpu records the placement and lets shape computations stay on the CPU")
    return None
