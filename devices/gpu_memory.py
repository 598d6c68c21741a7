"""Peak GPU memory with one definition for every backend.

A result row's `peak_gpu_mb` is the largest amount of device memory that NVML attributes to the
case's worker process (`nvmlDeviceGetComputeRunningProcesses`, its `usedGpuMemory`, summed over
the GPUs), sampled by the worker after loading, after the first inference, after warm-up and after
every measurement round. It therefore counts everything the process holds on the device, whatever
the runtime: the CUDA context, the libraries' handles and workspaces (cuBLAS, cuDNN), the
framework's allocator pools (torch's caching allocator, ONNX Runtime's arena), TensorRT's engine
weights and activation memory, the input/output buffers. The row says so in `peak_gpu_source`.

Why not the frameworks' own counters: torch's `max_memory_allocated` sees only torch's allocator,
TensorRT's `device_memory_size` only the activations, ONNX Runtime exposes nothing; three different
quantities cannot be compared. The frameworks' figures are still recorded, as detail, in the row's
`artifact.gpu_memory`.

NVML must see the worker's process id: inside a container without the host's PID namespace NVML
lists host pids, the worker is not found, and the row carries no figure and the reason instead.
"""
from __future__ import annotations

import os

SOURCE = ("NVML per-process used GPU memory of the worker (context, libraries, allocator pools, "
          "engine), the largest of {n} samples: after load, first inference, warm-up and every round")


class GpuMemorySampler:
    """Samples the device memory NVML attributes to one process. `nvml`: the `pynvml` module
    (injected by tests); None imports it on first use."""

    def __init__(self, pid: int | None = None, nvml=None):
        self.pid = os.getpid() if pid is None else pid
        self._nvml = nvml
        self._ready = False
        self._failed = False  # NVML could not start: not retried
        self.peak_bytes: int | None = None
        self.samples = 0
        self.reason: str | None = None  # why there is no figure (set when a sample finds none)

    def _init(self):
        if self._ready:
            return self._nvml
        if self._failed:
            return None
        self._failed = True
        nv = self._nvml
        if nv is None:
            try:
                import pynvml as nv
            except ImportError:
                self.reason = "pynvml is not installed (pip install nvidia-ml-py)"
                return None
        try:
            nv.nvmlInit()
        except Exception as exc:  # pynvml.NVMLError_* (no driver, no library)
            self.reason = f"NVML could not start: {exc}"
            return None
        self._nvml, self._ready, self._failed = nv, True, False
        return nv

    def sample(self) -> int | None:
        """One sample (bytes held by the process now, summed over GPUs), or None with `reason` set."""
        nv = self._init()
        if nv is None:
            return None
        total, seen, unknown = 0, False, False
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid != self.pid:
                        continue
                    used = getattr(proc, "usedGpuMemory", None)
                    if used is None:  # NVML_VALUE_NOT_AVAILABLE (MIG without privileges, WDDM)
                        unknown = True
                        continue
                    total += int(used)
                    seen = True
        except Exception as exc:  # an NVMLError while listing
            self.reason = f"NVML could not list the GPU's processes: {exc}"
            return None
        if not seen:
            self.reason = ("NVML reports no per-process memory on this system" if unknown else
                           f"NVML lists no GPU process with this worker's pid {self.pid} (a container "
                           "without the host's PID namespace hides it)")
            return None
        self.samples += 1
        self.peak_bytes = total if self.peak_bytes is None else max(self.peak_bytes, total)
        return total

    def result(self) -> dict:
        """{"peak_gpu_mb", "peak_gpu_source"} for the result row."""
        if self.peak_bytes is None:
            return {"peak_gpu_mb": None, "peak_gpu_source": f"not measured: {self.reason or 'no sample taken'}"}
        return {"peak_gpu_mb": self.peak_bytes / 2**20, "peak_gpu_source": SOURCE.format(n=self.samples)}

    def close(self) -> None:
        if self._ready:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down is best effort
                pass
            self._ready = False
