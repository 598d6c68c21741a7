"""Machine metadata recorded with every run, and the stable machine id (docs/method.md section 9).

Everything here reads files and asks libraries for versions; nothing is changed. Heavy modules
are not imported: versions come from importlib.metadata, torch's CUDA version from its
version.py, GPU facts from NVML (`pynvml`, from nvidia-ml-py) when it is installed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import sys

from ..versions import dist_version
from .parse import _torch_cuda_version, nvidia_driver_version

# CPU flags worth recording: vector ISA and matrix extensions decide which kernels runtimes pick.
_FLAG_RE = re.compile(r"^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx_vnni|avx_vnni_int8|avx_ne_convert|"
                      r"avx512\w*|amx\w*|neon|asimd\w*|sve\w*|sme(?!p)\w*|bf16|i8mm|fp16|asimdhp)$")

# The core tools: tool name -> distribution names that provide it (first installed one wins).
# Each runtime declares its own (`Backend.tools`); `pfdeploy.backends.tool_distributions()` joins
# the two tables, `pfdeploy.backends.machine_metadata()` adds the runtimes' versions.
CORE_TOOLS = {
    "pfdeploy": ("pfdeploy",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "timm": ("timm",),
    "onnx": ("onnx",),
    "onnxscript": ("onnxscript",),
    "numpy": ("numpy",),
    "sqlalchemy": ("sqlalchemy",),
}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def tool_versions() -> dict:
    """{tool: version or None} of the core tools (pfdeploy, torch, timm, onnx, numpy and friends),
    plus torch_cuda (torch's CUDA build), nvidia_driver and python. Imports none of them. The
    runtimes' tools are their backends' (`pfdeploy.backends.tool_versions()`)."""
    out = {}
    for tool, dists in CORE_TOOLS.items():
        out[tool] = dist_version(dists)
    if out["pfdeploy"] is None:
        from .. import __version__

        out["pfdeploy"] = __version__
    out["torch_cuda"] = _torch_cuda_version() if out["torch"] else None
    out["nvidia_driver"] = nvidia_driver_version()
    out["python"] = platform.python_version()
    return out


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cgroup_cpu_limit() -> float | None:
    """CPU quota of this container (cgroup v2 cpu.max or v1 cfs), None when unlimited."""
    text = _read("/sys/fs/cgroup/cpu.max")
    if text:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                return int(parts[0]) / int(parts[1])
            except (ValueError, ZeroDivisionError):
                return None
        return None
    q, p = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    try:
        if q and p and int(q) > 0:
            return int(q) / int(p)
    except (ValueError, ZeroDivisionError):
        pass
    return None


def _physical_cores_of(cpus: list[int]) -> int | None:
    """Distinct (package, core) pairs among `cpus` from sysfs topology, None when unreadable."""
    cores = set()
    for c in cpus:
        base = f"/sys/devices/system/cpu/cpu{c}/topology/"
        core, pkg = _read(base + "core_id"), _read(base + "physical_package_id")
        if core is None or pkg is None:
            return None
        cores.add((pkg.strip(), core.strip()))
    return len(cores) or None


def physical_cores() -> int:
    """Physical cores this process may use: cores (not hyper-threads) among the CPUs in its
    affinity mask, capped by a container CPU quota. The default intra-op thread count."""
    cpus = _affinity()
    n = _physical_cores_of(cpus)
    if n is None:
        try:
            import psutil

            total_phys = psutil.cpu_count(logical=False) or len(cpus)
            total_log = psutil.cpu_count(logical=True) or len(cpus)
            n = max(1, round(len(cpus) * total_phys / total_log))
        except Exception:
            n = len(cpus)
    quota = _cgroup_cpu_limit()
    if quota:
        import math

        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


@functools.lru_cache(maxsize=1)
@functools.lru_cache(maxsize=1)
def usable_cpus() -> int:
    """Logical CPUs this process may run on: its affinity mask, capped by a container quota."""
    import math

    n = len(_affinity())
    quota = _cgroup_cpu_limit()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def cpu_flags() -> frozenset:
    """The CPU's feature flags (/proc/cpuinfo `flags` on x86, `Features` on ARM); empty when unknown."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


# Native bf16 arithmetic: AVX512-BF16 or AMX-BF16 (x86), the BF16 extension (ARMv8.6 `bf16`).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# Native fp16 arithmetic on CPUs: AVX512-FP16 / AMX-FP16 (x86), ARMv8.2 half-precision (`asimdhp`).
FP16_FLAGS = ("avx512_fp16", "amx_fp16", "asimdhp")


def cpu_native(precision: str, flags=None) -> str | None:
    """None when the CPU computes `precision` natively (bf16, fp16), else why not, naming the
    flags looked for. `flags` defaults to this CPU's (tests pass their own)."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    want = {"bf16": BF16_FLAGS, "fp16": FP16_FLAGS}.get(precision)
    if want is None:
        return None
    if any(f in flags for f in want):
        return None
    return f"this CPU has no native {precision} ({' / '.join(want)} not in its flags)"


def cpu_info() -> dict:
    """CPU model, vendor, ISA flags of interest, physical/logical cores, affinity, quota."""
    text = _read("/proc/cpuinfo") or ""
    model = vendor = None
    flags: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if model is None and key in ("model name", "Model", "cpu model", "Processor"):
            model = value
        elif vendor is None and key in ("vendor_id", "CPU implementer"):
            vendor = value
        elif not flags and key in ("flags", "Features"):
            flags = value.split()
    if not model:
        model = platform.processor() or platform.machine()
    try:
        import psutil

        logical = psutil.cpu_count(logical=True)
        physical = psutil.cpu_count(logical=False)
    except Exception:
        logical, physical = os.cpu_count(), None
    if physical is None:
        physical = _physical_cores_of(list(range(logical or 0))) if logical else None
    return {
        "model": model,
        "vendor": vendor,
        "arch": platform.machine(),
        "isa": sorted(f for f in flags if _FLAG_RE.match(f)),
        "flags": flags,
        "physical_cores": physical,
        "logical_cores": logical,
        "usable_cpus": len(_affinity()),
        "usable_physical_cores": physical_cores(),
        "cgroup_cpu_limit": _cgroup_cpu_limit(),
    }


def memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        text = _read("/proc/meminfo") or ""
        m = re.search(r"MemTotal:\s+(\d+) kB", text)
        return int(m.group(1)) * 1024 if m else None


def _governor() -> dict:
    """cpufreq governor(s) and energy preference where the kernel exposes them."""
    govs = set()
    for c in _affinity():
        g = _read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")
        if g:
            govs.add(g.strip())
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    return {"governor": ",".join(sorted(govs)) if govs else None,
            "boost": boost.strip() if boost else None,
            "intel_no_turbo": no_turbo.strip() if no_turbo else None}


def _os_info() -> dict:
    pretty = None
    text = _read("/etc/os-release")
    if text:
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
        pretty = m.group(1) if m else None
    virt = None
    hv = _read("/sys/class/dmi/id/sys_vendor")
    if "hypervisor" in (cpu_info().get("flags") or []):
        virt = hv.strip() if hv else "hypervisor"
    return {"system": platform.system(), "release": platform.release(), "version": platform.version(),
            "distribution": pretty, "virtualization": virt}


def nvml_gpus() -> tuple[list[dict], str | None]:
    """Per-GPU facts from NVML: name, uuid, driver, CUDA driver version, memory, current and max
    clocks, power limit, persistence mode. ([], reason) without pynvml or a driver."""
    try:
        import pynvml
    except ImportError:
        if nvidia_driver_version() is None:
            return [], "no NVIDIA driver"
        return [], "pynvml not installed (pip install 'pfdeploy[gpu]')"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded
        return [], f"NVML unavailable: {exc}"
    gpus = []
    try:
        def q(fn, *args):
            try:
                v = fn(*args)
                return v.decode() if isinstance(v, bytes) else v
            except Exception:
                return None

        driver = q(pynvml.nvmlSystemGetDriverVersion)
        cuda = q(pynvml.nvmlSystemGetCudaDriverVersion)
        cuda_s = f"{cuda // 1000}.{(cuda % 1000) // 10}" if isinstance(cuda, int) else None
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = q(pynvml.nvmlDeviceGetMemoryInfo, h)
            power = q(pynvml.nvmlDeviceGetPowerManagementLimit, h)
            gpus.append({
                "index": i,
                "name": q(pynvml.nvmlDeviceGetName, h),
                "uuid": q(pynvml.nvmlDeviceGetUUID, h),
                "driver": driver,
                "cuda_driver": cuda_s,
                "memory_total_mb": round(mem.total / 2**20) if mem else None,
                "sm_clock_mhz": q(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM),
                "mem_clock_mhz": q(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_MEM),
                "sm_clock_max_mhz": q(pynvml.nvmlDeviceGetMaxClockInfo, h, pynvml.NVML_CLOCK_SM),
                "mem_clock_max_mhz": q(pynvml.nvmlDeviceGetMaxClockInfo, h, pynvml.NVML_CLOCK_MEM),
                "power_limit_w": power / 1000 if isinstance(power, (int, float)) else None,
                "persistence_mode": q(pynvml.nvmlDeviceGetPersistenceMode, h),
                "temperature_c": q(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
            })
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus, None


def machine_metadata() -> dict:
    """Everything recorded about this machine with a run: cpu (model, ISA flags, cores),
    memory, cpufreq governor, load average, OS/kernel, Python, GPUs (NVML), the core tools'
    versions, and the machine id. JSON-serialisable. What a run records is
    `pfdeploy.backends.machine_metadata()`: this, plus every runtime's tool versions."""
    cpu = dict(cpu_info())
    cpu.pop("flags", None)  # the full list is long; `isa` keeps the ones that matter
    mem = memory_bytes()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    gpus, gpu_note = nvml_gpus()
    meta = {
        "hostname": platform.node(),
        "cpu": cpu,
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "cpufreq": _governor(),
        "loadavg": load,
        "os": _os_info(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "gpus": gpus,
        "gpu_note": gpu_note,
        "tools": tool_versions(),
    }
    name = machine_name()
    if name:
        meta["machine_name"] = name
    meta["machine_id"] = machine_id(meta)
    return meta


MACHINE_NAME_ENV = "PFDEPLOY_MACHINE_NAME"


def machine_name() -> str | None:
    """$PFDEPLOY_MACHINE_NAME: an operator's name for this machine, recorded with its runs and
    made part of its machine id. Two machines of identical hardware share a machine id (the id
    names the hardware, and their runs are compared as one machine); naming them keeps their runs
    apart (a fleet of identical nodes measured one by one; several Ray nodes on one host in the
    fleet tests). Unset or empty: no name, and the id is the hardware's alone."""
    value = os.environ.get(MACHINE_NAME_ENV, "").strip()
    return value[:64] or None


def _identity(meta: dict) -> dict:
    cpu = meta.get("cpu") or {}
    mem = meta.get("memory_bytes")
    return {
        "cpu_model": cpu.get("model"),
        "physical_cores": cpu.get("physical_cores"),
        "logical_cores": cpu.get("logical_cores"),
        # whole GiB: MemTotal moves by a few MB between kernels and boots
        "memory_gib": round(mem / 2**30) if mem else None,
        "gpus": sorted(g.get("name") or "" for g in (meta.get("gpus") or [])),
        # only when named ($PFDEPLOY_MACHINE_NAME), so an unnamed machine keeps its id
        **({"name": meta["machine_name"]} if meta.get("machine_name") else {}),
    }


def machine_id(meta: dict | None = None) -> str:
    """Stable id of this machine's hardware: 16 hex chars of a sha256 over the CPU model name,
    physical and logical core counts, memory size in whole GiB and the GPU names (and the
    machine's name when $PFDEPLOY_MACHINE_NAME gives one). Clocks, load,
    hostname and versions are left out, so it survives reboots and upgrades."""
    if meta is None:
        cpu = cpu_info()
        gpus, _ = nvml_gpus()
        meta = {"cpu": cpu, "memory_bytes": memory_bytes(), "gpus": gpus, "machine_name": machine_name()}
    blob = json.dumps(_identity(meta), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
