"""Every package of the source tree is installed: pyproject's explicit `packages` list must name
each folder with an __init__.py under the mapped package directories (a package missing there
works in an editable install and is absent from a wheel)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_source_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for top, folder in cfg["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([top, *rel.parts]) if rel.parts else top)
    assert not found - listed, f"packages missing from pyproject's [tool.setuptools] packages: {sorted(found - listed)}"
    assert not listed - found, f"listed packages that do not exist: {sorted(listed - found)}"
