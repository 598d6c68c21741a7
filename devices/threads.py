"""Thread and denormal control, applied identically to every runtime (docs/method.md section 2).

`apply_thread_settings` runs in a fresh worker process before any runtime is loaded: the OpenMP
and MKL pools read their environment variables once, at first use. Runtimes with their own pools
(ONNX Runtime session options, OpenVINO INFERENCE_NUM_THREADS) take the same numbers in their own
backend module (`backends/<runtime>.py`), which also reads them back from the live runtime; this
module names no runtime's options.
"""
from __future__ import annotations

import os

from ..errors import UsageError

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _check(threads, interop):
    for name, v in (("threads", threads), ("interop", interop)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"{name} must be a positive integer, got {v!r}")


def apply_thread_settings(threads: int, interop: int = 1) -> dict:
    """Set this process's thread counts: OMP/MKL/OpenBLAS environment variables (for pools not
    yet started), torch.set_num_threads(threads) and torch.set_num_interop_threads(interop).
    Call it in a fresh process before loading a runtime. Returns what was applied, including
    `torch_threads`/`torch_interop` as torch reports them afterwards and any `warnings`
    (set_num_interop_threads fails once inter-op work has started)."""
    _check(threads, interop)
    env = {}
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
        env[var] = str(threads)
    applied = {"threads": threads, "interop": interop, "env": env, "warnings": []}
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(interop)
    except RuntimeError as exc:
        applied["warnings"].append(f"torch inter-op threads not set: {exc}")
    applied["torch_threads"] = torch.get_num_threads()
    applied["torch_interop"] = torch.get_num_interop_threads()
    if applied["torch_threads"] != threads:
        applied["warnings"].append(f"torch uses {applied['torch_threads']} threads, not {threads}")
    return applied


def set_flush_denormal() -> bool:
    """Turn on flush-to-zero/denormals-are-zero for torch's CPU kernels in this process.
    Returns True when the CPU supports it (x86 with SSE3, ARM with FZ), False otherwise."""
    import torch

    return bool(torch.set_flush_denormal(True))


def torch_denormals_flushed() -> bool:
    """Read back whether torch's CPU arithmetic flushes denormals in this process: a denormal
    (1e-40) times 1 is 0 when denormals-are-zero is on."""
    import torch

    return bool((torch.tensor([1e-40], dtype=torch.float32) * 1.0).item() == 0.0)
