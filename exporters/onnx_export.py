"""torch -> ONNX with the dynamo exporter (torch.onnx.export(..., dynamo=True)).

- opset 18 (settings.OPSET), inside the range TensorRT's ONNX parser accepts;
- a dynamic batch axis through torch.export.Dim, with an example batch >= 2 (an example batch of
  1 lets the tracer bake batch 1 into reshapes; see BatchSpec.example);
- one self-contained .onnx file (the weights inside, no `.data` side file), checked with
  onnx.checker's full check;
- the token grid of the max-pool mixer must stay static: `check_static_grid` proves every
  MaxPool's spatial input dims are constants in the exported graph.
"""
from __future__ import annotations

import contextlib
import copy
import io
import sys
import warnings
from pathlib import Path

from ..errors import UserError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TWO_GB = 2 * 1024**3


def export_onnx(model, spec, batch, path: Path, opset: int, half: bool = False) -> dict:
    """Export `model` (eval nn.Module) to `path`. `half`: export an fp16 graph (fp16 weights,
    inputs and outputs). Returns exporter facts for the manifest."""
    import onnx
    import torch

    from ..weights import synthetic_images

    net = copy.deepcopy(model).half() if half else model
    x = synthetic_images(batch.example, spec.input_size, spec.mean, spec.std, seed=1)
    if half:
        x = x.half()
    dynamic_shapes = None
    if batch.dynamic:
        dim = torch.export.Dim("batch", min=batch.min, max=batch.max)
        dynamic_shapes = ({0: dim},)
    # The exporter prints progress on stdout and emits many warnings: keep stdout clean for
    # `--json` and keep what it said, to show it if the export fails.
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, (x,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, optimize=True,
                verbose=False, report=False)
            program.save(str(path), external_data=False)
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        tail = log.getvalue().strip().splitlines()[-3:]
        raise UserError(f"torch.onnx.export failed for {spec.name}: {type(exc).__name__}: {first}"
                        + (f" [{' | '.join(tail)}]" if tail else "")) from None
    if not Path(path).is_file():
        raise UserError(f"torch.onnx.export wrote no file for {spec.name}")
    size = Path(path).stat().st_size
    if size >= TWO_GB:
        raise UserError(f"{spec.name}: the ONNX file is {size / 1e9:.1f} GB; a single-file ONNX must stay below 2 GB")
    leftovers = [p.name for p in Path(path).parent.iterdir() if p.suffix == ".data"]
    if leftovers:
        raise UserError(f"{spec.name}: the exporter wrote external data ({', '.join(leftovers)}); expected one file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise UserError(f"{spec.name}: onnx.checker rejected the export: {str(exc).splitlines()[0]}") from None
    proto = onnx.load(str(path))
    grid = check_static_grid(proto, batch.dynamic)
    return {
        "name": "torch.onnx.export(dynamo=True)", "opset": opset, "ir_version": proto.ir_version,
        "input": INPUT_NAME, "output": OUTPUT_NAME, "external_data": False, "dtype": "float16" if half else "float32",
        "checker": "onnx.checker.check_model(full_check=True)", "ops": op_histogram(proto),
        "static_grid": grid,
    }


def op_histogram(proto) -> dict:
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim]


def check_static_grid(proto, dynamic_batch: bool) -> dict:
    """Every MaxPool/AveragePool input must have constant channel and spatial dims (only the batch
    axis may be symbolic); the graph input's batch axis must be symbolic when the export is
    dynamic. Raises UserError otherwise (the mixer's sqrt(tokens) became a run-time shape)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    shapes = {vi.name: _dims(vi) for vi in list(inferred.graph.value_info) + list(inferred.graph.input)
              + list(inferred.graph.output)}
    pools = []
    for node in inferred.graph.node:
        if node.op_type in ("MaxPool", "AveragePool"):
            dims = shapes.get(node.input[0])
            if dims is None or any(not isinstance(d, int) for d in dims[1:]):
                raise UserError(f"{node.op_type} node {node.name!r} has a non-static input shape {dims}: "
                                f"the token grid became dynamic in the export")
            pools.append(dims[1:])
    inp = _dims(inferred.graph.input[0])
    if dynamic_batch and isinstance(inp[0], int):
        raise UserError(f"the exported input has a fixed batch {inp[0]} although a dynamic batch was requested")
    if any(not isinstance(d, int) for d in inp[1:]):
        raise UserError(f"the exported input shape {inp} has dynamic non-batch axes")
    out = _dims(inferred.graph.output[0])
    return {"pools": len(pools), "pool_grids": sorted({f"{d[-2]}x{d[-1]}" for d in pools}),
            "input_shape": [str(d) if not isinstance(d, int) else d for d in inp],
            "output_shape": [str(d) if not isinstance(d, int) else d for d in out]}


def quiet_stdout():
    """Context manager sending stray prints of converters to stderr."""
    return contextlib.redirect_stdout(sys.stderr)
