"""The report's serving section: LoadGen's p99 latency against the offered QPS per model and
deployment (every capacity probe and server run), the p99 bound, each capacity and the saturated
throughput, as hand-written SVG (no script, every text escaped), and the capacity table."""
from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

from .svg import FONT, _fmt, _num, _y_axis, color, nice_ticks


def latency_qps_chart(curves: Sequence[dict], *, title: str = "") -> Markup:
    """One line per model/deployment: p99 (ms, log scale) against target QPS; filled points VALID,
    hollow INVALID; a dashed line at the p99 bound; a tick per capacity on the x axis."""
    left, right, top, bottom = 70, 24, 28, 56
    plot_w, plot_h = 560, 260
    legend_h = 18 * len(curves)
    width, height = left + plot_w + right, top + plot_h + bottom + legend_h
    pts = [p for c in curves for p in c["points"]]
    xmax = max([p["qps"] for p in pts] + [c.get("saturated_qps") or 0 for c in curves]) * 1.05
    bounds = [c["latency_bound_ms"] for c in curves if c.get("latency_bound_ms")]
    ys = [p["p99"] for p in pts if p["p99"] > 0] + bounds
    lo_exp = math.floor(math.log10(min(ys)))
    hi_exp = math.ceil(math.log10(max(ys)))
    if hi_exp == lo_exp:
        hi_exp += 1
    xt = nice_ticks(xmax)
    if xt[-1] < xmax:  # the last tick covers every point and marker
        xt.append(xt[-1] + (xt[-1] - xt[-2]))
    xspan = xt[-1] or 1.0

    def x(v: float) -> float:
        return left + v / xspan * plot_w

    def y(v: float) -> float:
        v = max(v, 10 ** lo_exp)
        return top + plot_h - (math.log10(v) - lo_exp) / (hi_exp - lo_exp) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart qps-chart" role="img" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" '
           f'font-size="{FONT}">', f"<title>{escape(title)}</title>"]
    _y_axis(out, [10.0 ** e for e in range(lo_exp, hi_exp + 1)], y, left, plot_w, top, plot_h,
            "LoadGen p99 (ms, log)")
    for t in xt:
        out.append(f'<text x="{_num(x(t))}" y="{top + plot_h + 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 34}" text-anchor="middle">target QPS '
               f'(LoadGen server, Poisson arrivals)</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#333"/>')
    for b in sorted(set(bounds)):
        out.append(f'<line class="bound" x1="{left}" x2="{left + plot_w}" y1="{_num(y(b))}" y2="{_num(y(b))}" '
                   f'stroke="#D55E00" stroke-dasharray="6 4"><title>p99 bound {_fmt(b)} ms</title></line>'
                   f'<text x="{left + plot_w - 4}" y="{_num(y(b) - 4)}" text-anchor="end" fill="#D55E00">'
                   f'bound {_fmt(b)} ms</text>')
    for i, c in enumerate(curves):
        col = color(i)
        name = escape(f"{c['model']} / {c['backend']} {c['precision']}")
        line = " ".join(f"{_num(x(p['qps']))},{_num(y(p['p99']))}" for p in c["points"])
        if len(c["points"]) > 1:
            out.append(f'<polyline points="{line}" fill="none" stroke="{col}" stroke-width="1.5"/>')
        for p in c["points"]:
            fill = col if p["valid"] else "#fff"
            verdict = "VALID" if p["valid"] else "INVALID"
            out.append(f'<circle class="point {verdict.lower()}" cx="{_num(x(p["qps"]))}" cy="{_num(y(p["p99"]))}" '
                       f'r="4" fill="{fill}" stroke="{col}" stroke-width="1.5"><title>{name}: '
                       f'{_fmt(p["qps"])} QPS, p99 {_fmt(p["p99"])} ms, {verdict}</title></circle>')
        for v, what in ((c.get("capacity_qps"), "capacity"), (c.get("saturated_qps"), "saturated")):
            if v:  # on the x axis: a triangle at the capacity, a diamond at the saturated throughput
                px, py = x(v), top + plot_h
                d = (f"M{_num(px - 5)},{_num(py)} L{_num(px + 5)},{_num(py)} L{_num(px)},{_num(py - 9)} Z"
                     if what == "capacity" else
                     f"M{_num(px)},{_num(py - 10)} L{_num(px + 4)},{_num(py - 5)} L{_num(px)},{_num(py)} "
                     f"L{_num(px - 4)},{_num(py - 5)} Z")
                out.append(f'<path class="marker {what}" d="{d}" fill="{col}" stroke="#333" stroke-width="0.5">'
                           f'<title>{name}: {what} {_fmt(v)} QPS</title></path>')
        ly = top + plot_h + bottom + 18 * i
        out.append(f'<rect x="{left}" y="{ly - 9}" width="12" height="10" fill="{col}"/><text x="{left + 18}" '
                   f'y="{ly}">{name}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def serving_section(docs: Sequence[dict]) -> dict | None:
    """{"charts": [{"title", "svg"}], "capacities": [rows]} of the store's LoadGen rows (newest
    capacity per deployment); None when no run has any."""
    from ..capacity import as_result, capacity_rows, curves

    rows = [r for d in docs for r in map(as_result, d.get("results") or []) if isinstance(r.loadgen, dict)]
    if not rows:
        return None
    newest: dict = {}
    for c in capacity_rows(docs):
        r = c.result
        newest.setdefault((r.model, r.backend, r.precision, c.loadgen.get("latency_bound_ms")), c)
    latest = [c.result for c in newest.values()] + [r for r in rows if r.scenario == "server"]
    charts = []
    by_device: dict = {}
    for c in curves(latest):
        by_device.setdefault((c["backend"], c["latency_bound_ms"]), []).append(c)
    for (backend, bound), cs in sorted(by_device.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0)):
        title = f"p99 against QPS, {backend}, bound {_fmt(bound) if bound else '-'} ms"
        charts.append({"title": title, "svg": latency_qps_chart(cs, title=title)})
    caps = [{"model": c.result.model, "backend": c.result.backend, "precision": c.result.precision,
             "bound": c.loadgen.get("latency_bound_ms"), "capacity": c.loadgen.get("capacity_qps"),
             "bracket": c.loadgen.get("bracket_qps"), "saturated": c.loadgen.get("saturated_qps"),
             "p99": c.loadgen.get("p99_at_capacity_ms"), "run": c.run_id} for c in newest.values()]
    history: dict = {}
    for c in reversed(capacity_rows(docs)):
        key = (c.result.model, c.result.backend, c.result.precision, c.loadgen.get("latency_bound_ms"))
        history.setdefault(key, []).append({"run": c.run_id, "when": c.started_at,
                                            "capacity": c.loadgen.get("capacity_qps"),
                                            "bracket": c.loadgen.get("bracket_qps")})
    for c in caps:
        c["history"] = history.get((c["model"], c["backend"], c["precision"], c["bound"]), [])
    return {"charts": charts, "capacities": sorted(caps, key=lambda c: (c["backend"], c["model"]))}
