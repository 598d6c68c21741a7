"""`pfdeploy check ARTIFACT --target trt`: will TensorRT's ONNX parser accept this file?

Checks an ONNX file (an artifact's, or any .onnx) against onnx-tensorrt's published operator
support matrix, shipped as data (data/onnx_tensorrt_operators.json, with its source and the
TensorRT version it describes): the default-domain opset must be in the parser's range, every
operator must be listed as supported, custom domains need plugins, graph I/O types must be
types TensorRT has, and the restrictions that can be checked statically are (Q/DQ zero points
must be 0; Reduce*/Squeeze/Unsqueeze axes must be constants). The parser itself remains the
final word at build time; this tells a CPU-only user early.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import UserError, require_path

DATA_FILE = "onnx_tensorrt_operators.json"
DEFAULT_DOMAINS = ("", "ai.onnx")
# ONNX TensorProto element types -> the names used in onnx-tensorrt's table
ONNX_TYPES = {1: "FLOAT32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FLOAT16",
              11: "DOUBLE", 16: "BFLOAT16", 17: "FP8", 22: "INT4", 23: "FP4"}


@lru_cache(maxsize=1)
def operator_table() -> dict:
    text = resources.files("pfdeploy.exporters").joinpath("data", DATA_FILE).read_text()
    return json.loads(text)


@dataclass
class CheckReport:
    path: str
    target: str
    table: dict  # source, tensorrt_version, opset range
    opsets: dict
    ops: dict  # op -> count
    problems: list = field(default_factory=list)  # [{"kind", "op", "nodes", "detail"}]
    notes: list = field(default_factory=list)  # restrictions of the ops used (informational)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"path": self.path, "target": self.target, "ok": self.ok, "table": self.table,
                "opsets": self.opsets, "ops": self.ops, "problems": self.problems, "notes": self.notes}


def resolve_onnx(path) -> Path:
    """An .onnx file, or an artifact directory whose model is ONNX; a TensorRT artifact resolves
    to the ONNX it was built from."""
    p = Path(path).expanduser()
    require_path(p, "artifact or ONNX file")
    if p.is_file() and p.suffix == ".onnx":
        return p
    from .artifact import load_artifact

    art = load_artifact(p)
    if art.target == "onnx":
        return art.model_file
    if art.target == "trt":
        parent = art.manifest["exporter"].get("parent", {}).get("path")
        if parent and (Path(parent) / "model.onnx").is_file():
            return Path(parent) / "model.onnx"
        raise UserError(f"{p}: the ONNX this engine was built from is no longer at {parent}")
    raise UserError(f"{p} is a {art.target} artifact; `check --target trt` reads ONNX (the TensorRT engine is "
                    f"built from ONNX): point it at the ONNX artifact or a .onnx file")


def check_trt(path) -> CheckReport:
    import onnx

    f = resolve_onnx(path)
    try:
        proto = onnx.load(str(f))
    except Exception as exc:  # protobuf DecodeError and friends: a truncated or corrupt file
        raise UserError(f"{f}: not a readable ONNX file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    table = operator_table()
    lo, hi = table["opset_min"], table["opset_max"]
    ops_table = table["operators"]
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    report = CheckReport(str(f), "trt", {"source": table["source"], "tensorrt_version": table["tensorrt_version"],
                                         "opset_min": lo, "opset_max": hi}, opsets, {})
    add = report.problems.append

    default = opsets.get("ai.onnx")
    if default is None:
        add({"kind": "opset", "op": None, "nodes": [], "detail": "no default-domain (ai.onnx) opset import"})
    elif not lo <= default <= hi:
        add({"kind": "opset", "op": None, "nodes": [],
             "detail": f"opset {default} is outside TensorRT {table['tensorrt_version']}'s range {lo}-{hi}"})
    local_fns = {(fn.domain, fn.name) for fn in proto.functions}  # inlined by the parser
    calls = [n for n in _all_nodes(proto) if (n.domain, n.op_type) not in local_fns]
    for dom in opsets:
        if dom not in ("ai.onnx",) and any(n.domain == dom for n in calls):
            add({"kind": "domain", "op": None, "nodes": [],
                 "detail": f"operators from domain {dom!r} need TensorRT plugins (not in the ONNX operator list)"})

    constants = {i.name for i in proto.graph.initializer}
    constants |= {o for n in _all_nodes(proto) if n.op_type == "Constant" for o in n.output}
    inits = {i.name: i for i in proto.graph.initializer}
    by_op: dict[str, list[str]] = {}
    for node in calls:
        key = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"
        by_op.setdefault(key, []).append(node.name or f"<{node.op_type}>")
        if node.domain not in DEFAULT_DOMAINS:
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zp = inits.get(node.input[2])
            if zp is not None and _any_nonzero(zp):
                add({"kind": "restriction", "op": node.op_type, "nodes": [node.name],
                     "detail": "zero point must be 0 (quantize symmetrically)"})
        restr = ops_table.get(node.op_type, {}).get("restrictions", "")
        if "axes must be" in restr and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            add({"kind": "restriction", "op": node.op_type, "nodes": [node.name],
                 "detail": f"`axes` must be a constant ({restr})"})
    report.ops = {k: len(v) for k, v in sorted(by_op.items())}

    for op, nodes in sorted(by_op.items()):
        if "::" in op:
            continue
        entry = ops_table.get(op)
        if entry is None:
            add({"kind": "operator", "op": op, "nodes": nodes[:5],
                 "detail": f"{op} is not in onnx-tensorrt's operator list"})
        elif not entry["supported"]:
            add({"kind": "operator", "op": op, "nodes": nodes[:5],
                 "detail": f"{op} is not supported by TensorRT's ONNX parser ({len(nodes)} node(s))"})
        elif entry.get("restrictions"):
            report.notes.append({"op": op, "restrictions": entry["restrictions"]})

    allowed = set(table["data_types"]) | {"FLOAT32"}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        et = vi.type.tensor_type.elem_type
        name = ONNX_TYPES.get(et, f"type {et}")
        if name not in allowed or name in ("INT8", "INT4", "FP8", "FP4"):
            add({"kind": "dtype", "op": None, "nodes": [vi.name],
                 "detail": f"graph input/output {vi.name!r} has element type {name}, which TensorRT cannot take as I/O"})
    return report


def _all_nodes(proto):
    """Nodes of the main graph and of nested subgraphs (If/Loop/Scan bodies) and local functions."""
    stack = [proto.graph]
    while stack:
        g = stack.pop()
        for n in g.node:
            yield n
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    stack.append(a.g)
                stack.extend(a.graphs)
    for fn in proto.functions:
        yield from fn.node


def _any_nonzero(tensor) -> bool:
    from onnx import numpy_helper

    return bool((numpy_helper.to_array(tensor) != 0).any())
