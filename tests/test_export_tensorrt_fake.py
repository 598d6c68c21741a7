"""build_engine's use of the TensorRT API, against a recording stand-in for the `tensorrt` module
(the real one needs a GPU: see test_trt_engines_build_and_verify, marker `tensorrt`). It checks
the calls pfdeploy makes, not TensorRT itself."""
from __future__ import annotations

import enum
import sys
import types

import pytest

from pfdeploy.errors import UserError
from pfdeploy.exporters import settings as S
from pfdeploy.exporters import tensorrt as T


def fake_trt(strongly_typed=True, parse_ok=True, build_ok=True):
    calls = []
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.13.0"

    class Flag(enum.IntEnum):
        STRONGLY_TYPED = 5

    class OldFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0

    trt.NetworkDefinitionCreationFlag = Flag if strongly_typed else OldFlag
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", "FP16 INT8 TF32")
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", "WORKSPACE")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Err:
        def node_name(self):
            return "/fc/Gemm"

        def node_operator(self):
            return "Gemm"

        def desc(self):
            return "weights must be an initializer"

        def node(self):
            return 3

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 1

        def parse_from_file(self, path):
            calls.append(("parse", path))
            return parse_ok

        def get_error(self, i):
            return Err()

    class Network:
        def get_input(self, i):
            return types.SimpleNamespace(name="input")

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("profile", name, lo, opt, hi))

    class Cache:
        def __init__(self, blob):
            self.blob = blob

        def serialize(self):
            return self.blob + b"+new"

    class Config:
        def __init__(self):
            self.flags = {"TF32"}  # TensorRT allows TF32 unless told otherwise

        def set_memory_pool_limit(self, pool, size):
            calls.append(("pool", pool.name, size))

        def clear_flag(self, flag):
            calls.append(("clear", flag.name))
            self.flags.discard(flag.name)

        def set_flag(self, flag):
            calls.append(("set", flag.name))
            self.flags.add(flag.name)

        def get_flag(self, flag):
            return flag.name in self.flags

        def add_optimization_profile(self, p):
            calls.append(("add_profile",))

        def create_timing_cache(self, blob):
            calls.append(("timing_cache_in", bytes(blob)))
            if bytes(blob).startswith(b"garbage"):  # TensorRT cannot read it: no cache object
                return None
            self.cache = Cache(bytes(blob))
            return self.cache

        def set_timing_cache(self, cache, ignore_mismatch):
            # TensorRT returns False for a cache it cannot use (corrupt, another GPU, ignore_mismatch off)
            calls.append(("set_timing_cache", ignore_mismatch))
            return not cache.blob.startswith(b"other-gpu")

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"PLAN" if build_ok else None

    trt.Logger, trt.OnnxParser, trt.Builder = Logger, Parser, Builder
    return trt, calls


def test_build_engine_strongly_typed_with_profile_workspace_and_timing_cache(tmp_path, monkeypatch):
    trt, calls = fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    tc = tmp_path / "tc" / "gpu-trt10.cache"
    tc.parent.mkdir()
    tc.write_bytes(b"old")
    plan = tmp_path / "model.plan"
    b = S.parse_batch(dynamic_batch="1:4:16")
    settings = T.build_engine(tmp_path / "m.onnx", plan, "fp32", b, (3, 224, 224), tc, workspace_bytes=1 << 30)
    assert plan.read_bytes() == b"PLAN" and tc.read_bytes() == b"old+new"  # cache read, extended, saved
    assert ("network", 1 << 5) in calls and ("clear", "TF32") in calls
    assert ("pool", "WORKSPACE", 1 << 30) in calls and ("timing_cache_in", b"old") in calls
    assert ("profile", "input", (1, 3, 224, 224), (4, 3, 224, 224), (16, 3, 224, 224)) in calls
    assert not [c for c in calls if c[0] == "set"]  # strongly typed: no precision flags
    assert settings["strongly_typed"] and settings["profile"]["opt"] == [4, 3, 224, 224]


def test_build_engine_without_strong_typing_uses_precision_flags(tmp_path, monkeypatch):
    trt, calls = fake_trt(strongly_typed=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    settings = T.build_engine(tmp_path / "m.onnx", tmp_path / "p", "int8", S.parse_batch(batch=1), (3, 8, 8),
                              tmp_path / "tc.cache")
    assert ("set", "INT8") in calls and ("set", "FP16") in calls and ("network", 1) in calls
    assert settings["flags"] == ["INT8", "FP16"]


def test_parser_and_builder_failures_are_user_errors(tmp_path, monkeypatch):
    trt, _ = fake_trt(parse_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(UserError, match=r"rejected .*node '/fc/Gemm' \(Gemm\): weights must be an initializer"):
        T.build_engine(tmp_path / "m.onnx", tmp_path / "p", "fp16", S.parse_batch(), (3, 8, 8), tmp_path / "tc")
    trt, _ = fake_trt(build_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(UserError, match="failed to build an engine"):
        T.build_engine(tmp_path / "m.onnx", tmp_path / "p", "fp16", S.parse_batch(), (3, 8, 8), tmp_path / "tc")
    assert not (tmp_path / "p").exists()


def test_engine_from_another_machine_is_refused_before_deserializing(monkeypatch):
    monkeypatch.setattr(T, "probe", lambda: {"tensorrt": "10.13.0", "cuda": True, "gpu": "NVIDIA L4", "missing": []})
    art = types.SimpleNamespace(manifest={"tools": {"tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3"}},
                                model_file="x/model.plan", model_name="pf_resnet50_hybrid", precision="fp16",
                                target="trt")
    from pfdeploy.exporters.parity import artifact_runner

    with pytest.raises(UserError, match="built for NVIDIA H100 80GB HBM3, this machine has NVIDIA L4.*--force"):
        artifact_runner(art)


@pytest.mark.parametrize("blob,why", [(b"other-gpu cache", "TensorRT refused it"),
                                      (b"garbage", "TensorRT could not read it")])
def test_a_timing_cache_tensorrt_rejects_is_moved_aside_and_rebuilt(tmp_path, monkeypatch, blob, why):
    """set_timing_cache's result is checked (it was ignored: a rejected cache went unnoticed and
    a None cache crashed the build)."""
    trt, calls = fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    tc = tmp_path / "gpu-trt10.cache"
    tc.write_bytes(blob)
    settings = T.build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", "fp32", S.parse_batch(batch=1), (3, 8, 8), tc)
    assert settings["timing_cache_status"].startswith(f"rejected ({why}; moved to gpu-trt10.cache.rejected)")
    assert (tmp_path / "gpu-trt10.cache.rejected").read_bytes() == blob
    assert tc.read_bytes() == b"+new"  # the build started from an empty cache and saved it
    assert ("timing_cache_in", b"") in calls


def test_timing_cache_status_loaded_and_new(tmp_path, monkeypatch):
    trt, _ = fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    tc = tmp_path / "tc.cache"
    first = T.build_engine(tmp_path / "m.onnx", tmp_path / "a.plan", "fp32", S.parse_batch(batch=1), (3, 8, 8), tc)
    second = T.build_engine(tmp_path / "m.onnx", tmp_path / "b.plan", "fp32", S.parse_batch(batch=1), (3, 8, 8), tc)
    assert (first["timing_cache_status"], second["timing_cache_status"]) == ("new", "loaded")


def test_no_timing_cache_at_all_is_a_user_error(tmp_path, monkeypatch):
    trt, _ = fake_trt()
    trt.Builder.create_builder_config = lambda self: type("C", (object,), {
        "set_memory_pool_limit": lambda *a: None, "clear_flag": lambda *a: None, "set_flag": lambda *a: None,
        "get_flag": lambda *a: False,
        "add_optimization_profile": lambda *a: None, "create_timing_cache": lambda self, b: None,
        "set_timing_cache": lambda self, c, i: False})()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(UserError, match="could not attach an empty timing cache"):
        T.build_engine(tmp_path / "m.onnx", tmp_path / "p", "fp32", S.parse_batch(batch=1), (3, 8, 8), tmp_path / "tc")
    assert not (tmp_path / "p").exists()


def test_tf32_is_its_own_precision_and_fp32_clears_it(tmp_path, monkeypatch):
    trt, calls = fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    b = S.parse_batch(dynamic_batch="1:1:64")
    fp32 = T.build_engine(tmp_path / "m.onnx", tmp_path / "a.plan", "fp32", b, (3, 224, 224), tmp_path / "tc")
    tf32 = T.build_engine(tmp_path / "m.onnx", tmp_path / "b.plan", "tf32", b, (3, 224, 224), tmp_path / "tc")
    assert fp32["tf32"] is False and tf32["tf32"] is True  # read back from the builder config
    assert ("clear", "TF32") in calls and ("set", "TF32") in calls
    assert T.source_precision("tf32") == "fp32" and T.source_precision("int8") == "int8"
    assert "--noTF32" in T.trtexec_command("m.onnx", "m.plan", b, (3, 224, 224), "fp32")
    assert "--noTF32" not in T.trtexec_command("m.onnx", "m.plan", b, (3, 224, 224), "tf32")
    from pfdeploy.exporters.targets import get_target

    assert "tf32" in get_target("trt").precisions and "tf32" not in get_target("onnx").precisions


def test_int8_recipes_are_part_of_the_artifact_key():
    from pfdeploy.exporters.quantize import RECIPES

    base = dict(model="resnet50", weights_source="synthetic:0", target="onnx", precision="int8",
                batch=S.parse_batch())
    ort = S.ExportRequest(**base, recipe="onnxruntime")
    trt = S.ExportRequest(**base, recipe="tensorrt")
    assert ort.key() != trt.key()
    fp32 = S.ExportRequest(**{**base, "precision": "fp32"})
    assert "recipe" not in fp32.key_material()  # float artifacts keep their cache keys
    assert RECIPES["tensorrt"]["quantize_bias"] is False and RECIPES["tensorrt"]["activation_symmetric"]
    assert RECIPES["onnxruntime"]["activation_type"] == "QUInt8" and not RECIPES["onnxruntime"]["activation_symmetric"]
