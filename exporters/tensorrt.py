"""ONNX -> TensorRT engine (.plan) through the TensorRT Python API. Kept thin on purpose: all the
decisions (which ONNX, which profile, which flags, the trtexec equivalent, engine compatibility)
are plain functions tested without TensorRT; only `build_engine` touches it (engines run through
the tensorrt backend's Runner, `pfdeploy.backends.tensorrt`).

Precisions. TensorRT 10.12 deprecated the builder's precision flags (BuilderFlag.FP16/INT8) in
favour of strongly typed networks and 11.x removed them. pfdeploy builds every engine as a
strongly typed network when the installed TensorRT offers
NetworkDefinitionCreationFlag.STRONGLY_TYPED (every 10.x and 11.x): the ONNX file decides the
precision of every layer:
  fp32 -> the fp32 ONNX (TF32 disabled where the flag exists, so parity holds at 1e-4);
  tf32 -> the fp32 ONNX with BuilderFlag.TF32 set (its own, explicit precision);
  fp16 -> the fp16 ONNX (torch.onnx export of the model in half precision, parity-checked);
  int8 -> the QDQ ONNX of the `tensorrt` int8 recipe (symmetric, per-channel, float biases:
          explicit quantization, every zero point 0 as TensorRT requires).
The optimization profile is min/opt/max of the batch range; `pfdeploy bench` builds one engine
per measured batch with opt = that batch (pfdeploy.backends.tensorrt.profile_for_batch).
On an older TensorRT without strongly typed networks, fp16 falls back to the fp32 ONNX with
BuilderFlag.FP16, and int8 to the QDQ ONNX with BuilderFlag.INT8 (+FP16).
"""
from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from ..errors import UserError
from .onnx_export import INPUT_NAME

WORKSPACE_BYTES = 4 << 30


class TensorRTUnavailable(UserError):
    """TensorRT or a CUDA GPU is missing (exit 1)."""


def source_precision(precision: str, strongly_typed: bool = True) -> str:
    """Precision of the ONNX artifact an engine of `precision` is built from."""
    if precision == "tf32" or (precision == "fp16" and not strongly_typed):
        return "fp32"
    return precision


def profile_shapes(batch, input_size) -> dict:
    """min/opt/max input shapes of the optimization profile (static batch: all equal)."""
    c, h, w = input_size
    return {k: (getattr(batch, k), c, h, w) for k in ("min", "opt", "max")}


def trtexec_command(onnx_path, plan_path, batch, input_size, precision: str,
                    workspace_bytes: int = WORKSPACE_BYTES, timing_cache=None) -> str:
    """The trtexec command line equivalent to what build_engine does (TensorRT 10+)."""
    shapes = profile_shapes(batch, input_size)
    fmt = lambda s: "x".join(map(str, s))  # noqa: E731
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={plan_path}",
            f"--minShapes={INPUT_NAME}:{fmt(shapes['min'])}", f"--optShapes={INPUT_NAME}:{fmt(shapes['opt'])}",
            f"--maxShapes={INPUT_NAME}:{fmt(shapes['max'])}",
            f"--memPoolSize=workspace:{workspace_bytes // (1 << 20)}M", "--stronglyTyped"]
    if precision == "fp32":
        args.append("--noTF32")
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    return " ".join(shlex.quote(str(a)) for a in args)


def probe() -> dict:
    """What this machine lacks for TensorRT: {'tensorrt': version|None, 'cuda': bool, 'gpu': name|None,
    'missing': [...]} without raising."""
    info = {"tensorrt": None, "cuda": False, "gpu": None, "missing": []}
    try:
        import tensorrt as trt  # noqa: F401

        info["tensorrt"] = getattr(trt, "__version__", "unknown")
    except Exception as exc:  # ImportError, or a broken install (missing libnvinfer)
        info["missing"].append(f"the TensorRT Python package ({type(exc).__name__}: {exc})"
                               if not isinstance(exc, ModuleNotFoundError) else "the TensorRT Python package")
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = True
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    if not info["cuda"]:
        info["missing"].append("a CUDA GPU (torch.cuda.is_available() is False)")
    return info


def require(onnx_hint: str | None = None, trtexec: str | None = None) -> dict:
    """Raise TensorRTUnavailable naming what is missing, with the install hint and the trtexec
    equivalent; otherwise return probe()."""
    info = probe()
    if info["missing"]:
        from ..backends import get_backend

        hint = get_backend("tensorrt").install_hint  # the runtime's hint, declared once
        msg = f"cannot build a TensorRT engine here: missing {' and '.join(info['missing'])}. Install: {hint}."
        if trtexec:
            msg += f"\nOn a machine with TensorRT, the equivalent build is:\n  {trtexec}"
        if onnx_hint:
            msg += f"\n{onnx_hint}"
        raise TensorRTUnavailable(msg)
    return info


def gpu_facts() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda, "gpu_memory_mb": props.total_memory // (1 << 20)}


def timing_cache_path(cache_root: Path, trt_version: str, gpu: str) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu).strip("-").lower()
    return Path(cache_root) / "trt-timing-cache" / f"{slug}-trt{trt_version}.cache"


def parser_errors(parser) -> list[str]:
    """Readable parser errors with node names (node_name()/node_operator() exist from TRT 10;
    older versions only give the node index)."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        name = err.node_name() if hasattr(err, "node_name") else None
        op = err.node_operator() if hasattr(err, "node_operator") else None
        where = f"node {name!r}" if name else f"node #{err.node()}"
        if op:
            where += f" ({op})"
        out.append(f"{where}: {err.desc()}")
    return out


def build_engine(onnx_path: Path, plan_path: Path, precision: str, batch, input_size,
                 timing_cache: Path, workspace_bytes: int = WORKSPACE_BYTES) -> dict:
    """Build and serialize an engine. Returns the builder settings for the manifest."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly else 0
    if not strongly and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser)
        raise UserError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors or ["no details"]))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    settings = {"strongly_typed": strongly, "workspace_bytes": workspace_bytes, "flags": []}
    if precision in ("fp32", "tf32") and hasattr(trt.BuilderFlag, "TF32"):
        if precision == "fp32":
            config.clear_flag(trt.BuilderFlag.TF32)
        else:
            config.set_flag(trt.BuilderFlag.TF32)
        settings["tf32"] = config.get_flag(trt.BuilderFlag.TF32)  # read back
    if not strongly:  # TensorRT before strongly typed networks: precision by builder flags
        for name in {"fp16": ["FP16"], "int8": ["INT8", "FP16"]}.get(precision, []):
            config.set_flag(getattr(trt.BuilderFlag, name))
            settings["flags"].append(name)

    shapes = profile_shapes(batch, input_size)
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    settings["profile"] = {k: list(v) for k, v in shapes.items()}

    timing_cache = Path(timing_cache)
    settings["timing_cache_status"] = attach_timing_cache(config, timing_cache)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    Path(plan_path).write_bytes(bytes(serialized))
    save_timing_cache(config, timing_cache)
    settings["timing_cache"] = str(timing_cache)
    return settings


def attach_timing_cache(config, path: Path) -> str:
    """Load the timing cache at `path` into the builder config, checking TensorRT's answers:
    `create_timing_cache` gives None (or raises) on a blob it cannot read and `set_timing_cache`
    returns False on a corrupt cache or one from another GPU/TensorRT. Such a cache is moved aside
    (`<name>.rejected`) and the build starts from an empty one. Returns "loaded", "new" or
    "rejected: ..."; UserError when not even an empty cache can be attached."""
    blob = path.read_bytes() if path.is_file() else b""
    status = "new"
    if blob:
        try:
            cache = config.create_timing_cache(blob)
            ok = cache is not None and bool(config.set_timing_cache(cache, False))
            why = "TensorRT refused it" if cache is not None else "TensorRT could not read it"
        except Exception as exc:  # noqa: BLE001 - TensorRT's bindings raise on some corrupt blobs
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if ok:
            return "loaded"
        aside = path.with_name(path.name + ".rejected")
        os.replace(path, aside)
        status = f"rejected ({why}; moved to {aside.name}), rebuilt from empty"
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, False):
        raise UserError("TensorRT could not attach an empty timing cache to the builder (see the TensorRT log above)")
    return status


def save_timing_cache(config, path: Path) -> None:
    """Write the builder's timing cache (extended by this build) atomically; a cache TensorRT
    cannot serialise is not written (the engine is still good)."""
    cache = config.get_timing_cache()
    data = cache.serialize() if cache is not None else None
    if data is not None and len(bytes(data)):
        _write_atomic(path, bytes(data))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tc-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def compat_problems(manifest: dict, trt_version: str | None, gpu: str | None) -> list[str]:
    """Why an engine built as `manifest` describes cannot run here (empty when it can)."""
    built_trt = manifest.get("tools", {}).get("tensorrt")
    built_gpu = manifest.get("tools", {}).get("gpu")
    problems = []
    if trt_version is None:
        problems.append("TensorRT is not installed")
    elif built_trt and built_trt != trt_version:
        problems.append(f"it was built with TensorRT {built_trt}, this machine has {trt_version}")
    if gpu is None:
        problems.append("no CUDA GPU is available")
    elif built_gpu and built_gpu != gpu:
        problems.append(f"it was built for {built_gpu}, this machine has {gpu}")
    return problems


def check_engine_compat(artifact) -> None:
    """Refuse, before TensorRT is asked to deserialize it, an engine built for another GPU model or
    TensorRT version (engines are not portable)."""
    info = probe()
    problems = compat_problems(artifact.manifest, info["tensorrt"], info["gpu"])
    if problems:
        raise UserError(f"{artifact.model_file}: this TensorRT engine cannot run here: {'; '.join(problems)}. "
                        f"Engines are tied to the GPU model and TensorRT version; rebuild it on this machine "
                        f"with `pfdeploy export {artifact.model_name} --to trt --precision {artifact.precision} --force`")

