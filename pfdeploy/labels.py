"""Short texts for table cells, shared by the CLI, the claims and the report. A leaf module: it
imports nothing of pfdeploy (and nothing heavy), so every layer may use it.

    num(value, digits)      1.23456 -> '1.23'; None, NaN -> '-' (the one number formatting of tables and pages)
    weights_label(source)   release:resnet50_max@sha256:<hex> -> release:resnet50_max@1a2b3c4d
    accuracy_text(acc)      '76.2 (76.4)': an artifact's top-1 and PyTorch's on the same images
    ratio_text(comparison)  '0.93x [0.91, 0.95]', '~0.93x [...]' when unpaired
    machine_label(run)      'gpu-a · AMD EPYC 7B13 · 8 threads · 31.3 GiB · NVIDIA H100'
"""
from __future__ import annotations

import math


def num(value, digits: int = 2, missing: str = "-", grouped: bool = False) -> str:
    """A number for a table cell or a page: a float to `digits` decimals, an integer as it is
    (`grouped`: with thousands separators, '1,234.50'), `missing` for None, NaN, an infinity or a
    bool; anything else its str(). `pfdeploy.render.fmt`, the report's `num` filter and compare's
    tables are this function."""
    if value is None or isinstance(value, bool):
        return missing
    sep = "," if grouped else ""
    if isinstance(value, float):
        return f"{value:{sep}.{digits}f}" if math.isfinite(value) else missing
    if isinstance(value, int):
        return f"{value:{sep}}"
    return str(value)


def pct(v) -> str:
    """A fraction as a percentage with one decimal ('-' when missing)."""
    return "-" if v is None else f"{v * 100:.1f}"


def weights_label(source: str | None) -> str:
    """A weights identity shortened for a table cell: release:resnet50_max@sha256:<hex> ->
    release:resnet50_max@1a2b3c4d (the full identity is in the stored row and the JSON)."""
    if not source:
        return "-"
    if "sha256:" in source:
        head, _, digest = source.rpartition("sha256:")
        return f"{head}{digest[:8]}" if head.endswith("@") else f"sha256:{digest[:8]}"
    return source


def accuracy_text(acc: dict | None) -> str:
    """'76.2 (76.4)': the artifact's top-1 and, in parentheses, PyTorch's on the same images."""
    if not acc or acc.get("top1") is None:
        return "-"
    torch_top1 = acc.get("torch_top1")
    return pct(acc["top1"]) + (f" ({pct(torch_top1)})" if torch_top1 is not None else "")


def ratio_text(v) -> str:
    """'0.93x [0.91, 0.95]'; '~0.93x [...]' when unpaired (the two cases never shared a round, so
    the machine's drift between them is not cancelled); no interval when there is none. `v`: a
    speedup (pfdeploy.claims) or its JSON dict."""
    ratio, lo, hi, paired = ((v.get("ratio"), v.get("ci_low"), v.get("ci_high"), v.get("paired"))
                             if isinstance(v, dict) else (v.ratio, v.ci_low, v.ci_high, v.paired))
    if ratio is None:
        return "-"
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None else ""
    return f"{'' if paired else '~'}{ratio:.2f}x{ci}"


def machine_label(run: dict) -> str:
    """One line naming the machine of a run record: its name ($PFDEPLOY_MACHINE_NAME), CPU model,
    logical cores, memory and GPUs."""
    m = run.get("machine") or {}
    cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
    parts = [str(cpu.get("model") or m.get("cpu_model") or "unknown CPU")]
    if m.get("machine_name"):  # $PFDEPLOY_MACHINE_NAME: what tells identical machines apart
        parts.insert(0, str(m["machine_name"]))
    cores = cpu.get("logical_cores")
    if cores:
        parts.append(f"{cores} threads")
    if m.get("memory_gib"):
        parts.append(f"{m['memory_gib']} GiB")
    gpus = m.get("gpus") or []
    names = [g.get("name") if isinstance(g, dict) else str(g) for g in gpus]
    names = [n for n in names if n]
    if names:
        parts.append(", ".join(names))
    return " · ".join(parts)
