"""Stored CI of each run against the medians of the other runs (issue 21's bar): tags given."""
import sqlite3, json, sys
import numpy as np
db, tags = sys.argv[1], sys.argv[2].split(",")
c = sqlite3.connect(db)
runs = {t: c.execute("select id from runs where tag=? order by started_at desc limit 1", (t,)).fetchone()[0] for t in tags}
rows = {}
for t, rid in runs.items():
    for model, backend, prec, p50, lo, hi, extra in c.execute(
            "select model, backend, precision, p50_ms, p50_ci_low_ms, p50_ci_high_ms, extra from results where run_id=? and status='ok'", (rid,)):
        e = json.loads(extra or "{}")
        rows.setdefault(f"{model}/{backend}/{prec}", {})[t] = (p50, lo, hi, e.get("processes"), e.get("process_sd"))
print("| case | p50 ms of the runs | stored CI half-width (median; range) | process sd (median) | other runs' medians held (per run) | runs holding >= 3 of 4 |")
print("|---|---|---|---|---|---|")
good = total = 0
for case, by in rows.items():
    ts = [t for t in tags if t in by]
    held, hw = [], []
    for t in ts:
        p50, lo, hi, P, sd = by[t]
        others = [by[o][0] for o in ts if o != t]
        h = sum(lo <= m <= hi for m in others)
        held.append(h)
        hw.append((hi - lo) / 2 / p50)
        total += 1
        good += h >= len(others) - 1
    sds = [by[t][4] for t in ts if by[t][4] is not None]
    print(f"| {case} | {', '.join(f'{by[t][0]:.2f}' for t in ts)} | +-{np.median(hw):.1%} ({min(hw):.1%}-{max(hw):.1%}) | "
          f"{np.median(sds) if sds else float('nan'):.1%} | {', '.join(map(str, held))} | {sum(h >= len(ts) - 2 for h in held)} of {len(ts)} |")
print(f"\n(run, case) pairs whose CI holds >= {len(tags) - 2} of the other {len(tags) - 1} runs' medians: {good} of {total} ({good / total:.0%})")
