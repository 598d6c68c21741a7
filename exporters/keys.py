"""The cache's addresses: what an artifact's key is made of and where the artifact lives.

    <cache>/<target>/<model>-<precision>-<key16>/{model file(s), manifest.json}

The key (`ExportRequest.key()`, exporters/settings.py) is the sha256 of every setting that
changes the bytes produced, plus the versions of the tools that produce them: which tools is
the target's to say (`Target.tools(precision)`), and a target may add facts of its own (TensorRT:
its version and the GPU, `Target.prepare`).
"""
from __future__ import annotations

from pathlib import Path

from .. import __version__
from .settings import OPSET, BatchSpec, ExportRequest


def tools_for(target: str, precision: str) -> dict:
    """{tool: version} of the tools in the key of a `target` artifact at `precision`."""
    from .targets import get_target

    from ..backends import tool_versions

    return tool_versions(*get_target(target).tools(precision))


def make_request(name: str, wsrc: str, target: str, precision: str, batch: BatchSpec, calib=None,
                 extra_tools: dict | None = None, recipe: str | None = None) -> ExportRequest:
    """The ExportRequest of one artifact (calibration and int8 recipe only count at int8)."""
    tools = tools_for(target, precision)
    if extra_tools:
        tools.update(extra_tools)
    return ExportRequest(name, wsrc, target, precision, batch, OPSET,
                         calib if precision == "int8" else None, tools, __version__,
                         recipe=recipe if precision == "int8" else None)


def artifact_dir(root: Path, req: ExportRequest) -> Path:
    return Path(root) / req.target / req.dirname()
