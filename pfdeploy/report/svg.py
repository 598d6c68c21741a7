"""Hand-written SVG charts for the report: no JavaScript chart library, nothing fetched at view
time, and charts that render with scripting off. Every text that reaches the SVG is escaped
(model names, tags and commits come from users)."""
from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

# Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = 12



def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(vmax: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least `vmax` (1-2-5 steps)."""
    if not vmax or vmax <= 0 or not math.isfinite(vmax):
        return [0.0, 1.0]
    raw = vmax / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks, v = [], 0.0
    while v < vmax + step * 0.5 and len(ticks) < 50:
        ticks.append(round(v, 10))
        if v >= vmax:
            break
        v += step
    return ticks


def nice_range(vmin: float, vmax: float, n: int = 5) -> list[float]:
    """Round tick values covering [vmin, vmax] (1-2-5 steps), not forced to start at 0: a
    latency trend is read from its changes, which a zero-based axis flattens."""
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmax <= 0:
        return [0.0, 1.0]
    if vmax - vmin < 1e-9 * max(1.0, abs(vmax)):
        vmin, vmax = vmin * 0.95, vmax * 1.05
    raw = (vmax - vmin) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = max(0.0, math.floor(vmin / step) * step)
    ticks, v = [], start
    while len(ticks) < 50:
        ticks.append(round(v, 10))
        if v >= vmax:
            break
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _num(v: float) -> str:
    return f"{v:.2f}"


def _y_axis(out: list[str], ticks, y, left, plot_w, top, plot_h, label: str) -> None:
    """Horizontal grid lines with tick labels, and the rotated axis title (escaped)."""
    for t in ticks:
        ty = y(t)
        out.append(f'<line class="grid" x1="{left}" x2="{_num(left + plot_w)}" y1="{_num(ty)}" y2="{_num(ty)}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{_num(ty + 4)}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
               f'text-anchor="middle">{escape(label)}</text>')

def bar_chart(groups: Sequence[str], series: Sequence[str], values: dict, *, unit: str = "ms",
              title: str = "", bold_groups: Sequence[str] = (), series_colors: dict | None = None) -> Markup:
    """Grouped bars with error bars.

    groups: x categories (models); series: bars within a group (backends);
    values: {(group, series): (value, err_low, err_high, tooltip)} with err_low/err_high the CI
    bounds (or None). Missing pairs leave a gap. Returns an <svg> element (Markup)."""
    n_s = max(1, len(series))
    bar_w = 18 if n_s > 3 else 24
    gap = 22
    group_w = n_s * bar_w + gap
    left, right, top, bottom = 64, 16, 28 + 18 * math.ceil(len(series) / 4), 120
    pad = 60  # rotated group labels reach left of their group
    plot_w = max(320, pad + len(groups) * group_w)
    width, height = left + plot_w + right, top + 240 + bottom
    plot_h = 240
    vmax = 0.0
    for (v, lo, hi, _tip) in values.values():
        for x in (v, hi):
            if x is not None and math.isfinite(x):
                vmax = max(vmax, x)
    ticks = nice_ticks(vmax * 1.05)
    ymax = ticks[-1] or 1.0

    def y(v: float) -> float:
        return top + plot_h - (v / ymax) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" role="img" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'font-family="system-ui, sans-serif" font-size="{FONT}">',
           f"<title>{escape(title)}</title>"]
    # legend
    for i, s in enumerate(series):
        lx, ly = left + (i % 4) * 170, 8 + (i // 4) * 18
        c = (series_colors or {}).get(s, color(i))
        out.append(f'<g class="legend-item"><rect x="{lx}" y="{ly}" width="12" height="12" fill="{c}"/>'
                   f'<text x="{lx + 16}" y="{ly + 10}">{escape(s)}</text></g>')
    # axes and grid
    _y_axis(out, ticks, y, left, plot_w, top, plot_h, f"p50 latency ({unit})")
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    for gi, g in enumerate(groups):
        gx = left + pad + gi * group_w + gap / 2
        for si, s in enumerate(series):
            if (g, s) not in values:
                continue
            v, lo, hi, tip = values[(g, s)]
            if v is None or not math.isfinite(v):
                continue
            x = gx + si * bar_w
            c = (series_colors or {}).get(s, color(si))
            out.append(f'<rect class="bar" data-group="{escape(g)}" data-series="{escape(s)}" x="{_num(x)}" '
                       f'y="{_num(y(v))}" width="{bar_w - 3}" height="{_num(max(0.5, y(0) - y(v)))}" fill="{c}">'
                       f"<title>{escape(tip)}</title></rect>")
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                cx = x + (bar_w - 3) / 2
                out.append(f'<g class="errbar" stroke="#222" stroke-width="1.2">'
                           f'<line x1="{_num(cx)}" x2="{_num(cx)}" y1="{_num(y(hi))}" y2="{_num(y(lo))}"/>'
                           f'<line x1="{_num(cx - 4)}" x2="{_num(cx + 4)}" y1="{_num(y(hi))}" y2="{_num(y(hi))}"/>'
                           f'<line x1="{_num(cx - 4)}" x2="{_num(cx + 4)}" y1="{_num(y(lo))}" y2="{_num(y(lo))}"/></g>')
        lx, ly = gx + (n_s * bar_w) / 2, top + plot_h + 14
        weight = ' font-weight="bold"' if g in bold_groups else ""
        short = g if len(g) <= 26 else g[:25] + "…"
        out.append(f'<text class="xlabel" x="{_num(lx)}" y="{ly}" text-anchor="end"{weight} '
                   f'transform="rotate(-30 {_num(lx)} {ly})"><title>{escape(g)}</title>{escape(short)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def history_chart(points: Sequence[dict], *, title: str = "", unit: str = "ms", measure: str = "p50") -> Markup:
    """p50 (or another `measure`: a capacity in QPS) over runs with its CI band. points: dicts with `label` (x tick: commit or date),
    `value` (p50 or None for a failed run), `low`/`high` (CI or None), `tip` (tooltip) and
    `marker` (None | "regression" | "improvement" | "failed")."""
    n = len(points)
    left, right, top, bottom = 64, 24, 26, 70
    step = 56 if n > 1 else 0
    plot_w = max(360, (n - 1) * step)
    if n > 1:
        step = plot_w / (n - 1)
    plot_h = 170
    width, height = left + plot_w + right, top + plot_h + bottom
    vals = [v for p in points for v in (p.get("value"), p.get("low"), p.get("high"))
            if v is not None and math.isfinite(v)]
    # room below and above for the improvement / regression triangles
    ticks = nice_range(min(vals) * 0.93, max(vals) * 1.04) if vals else [0.0, 1.0]
    ymin, ymax = ticks[0], ticks[-1]
    span = (ymax - ymin) or 1.0

    def x(i: int) -> float:
        return left + (i * step if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - ((v - ymin) / span) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart history-chart" role="img" '
           f'width="{_num(width)}" height="{height}" viewBox="0 0 {_num(width)} {height}" '
           f'font-family="system-ui, sans-serif" font-size="{FONT}">', f"<title>{escape(title)}</title>"]
    _y_axis(out, ticks, y, left, plot_w, top, plot_h, f"{measure} ({unit})")
    # CI band: contiguous stretches of points that have both bounds
    seg: list[tuple[float, float, float]] = []
    bands = []
    for i, p in enumerate(points):
        lo, hi = p.get("low"), p.get("high")
        if p.get("value") is not None and lo is not None and hi is not None:
            seg.append((x(i), y(lo), y(hi)))
        elif seg:
            bands.append(seg)
            seg = []
    if seg:
        bands.append(seg)
    for seg in bands:
        if len(seg) == 1:
            px, ylo, yhi = seg[0]
            out.append(f'<rect class="band" x="{_num(px - 4)}" y="{_num(yhi)}" width="8" '
                       f'height="{_num(max(0.5, ylo - yhi))}" fill="#0072B2" fill-opacity="0.2"/>')
            continue
        upper = " ".join(f"{_num(px)},{_num(yhi)}" for px, _, yhi in seg)
        lower = " ".join(f"{_num(px)},{_num(ylo)}" for px, ylo, _ in reversed(seg))
        out.append(f'<polygon class="band" points="{upper} {lower}" fill="#0072B2" fill-opacity="0.2"/>')
    line = [f"{_num(x(i))},{_num(y(p['value']))}" for i, p in enumerate(points) if p.get("value") is not None]
    if len(line) > 1:
        out.append(f'<polyline class="line" points="{" ".join(line)}" fill="none" stroke="#0072B2" stroke-width="1.5"/>')
    for i, p in enumerate(points):
        px = x(i)
        tip = escape(p.get("tip", ""))
        v = p.get("value")
        mk = p.get("marker")
        if v is None:
            by = top + plot_h - 6
            out.append(f'<g class="marker failed"><text x="{_num(px)}" y="{_num(by)}" text-anchor="middle" '
                       f'fill="#D55E00" font-weight="bold">×</text><title>{tip}</title></g>')
        else:
            py = y(v)
            out.append(f'<circle class="point" cx="{_num(px)}" cy="{_num(py)}" r="3.5" fill="#0072B2">'
                       f"<title>{tip}</title></circle>")
            if mk == "regression":
                out.append(f'<path class="marker regression" d="M{_num(px - 6)},{_num(py - 9)} L{_num(px + 6)},'
                           f'{_num(py - 9)} L{_num(px)},{_num(py - 19)} Z" fill="#D55E00"><title>regression '
                           f"against the previous run: {tip}</title></path>")
            elif mk == "improvement":
                out.append(f'<path class="marker improvement" d="M{_num(px - 6)},{_num(py + 9)} L{_num(px + 6)},'
                           f'{_num(py + 9)} L{_num(px)},{_num(py + 19)} Z" fill="#009E73"><title>improvement '
                           f"against the previous run: {tip}</title></path>")
        ly = top + plot_h + 14
        out.append(f'<text class="xlabel" x="{_num(px)}" y="{ly}" text-anchor="end" '
                   f'transform="rotate(-35 {_num(px)} {ly})">{escape(p.get("label", ""))}</text>')
    out.append(f'<line x1="{left}" x2="{_num(left + plot_w)}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    out.append("</svg>")
    return Markup("".join(out))
