"""Process-to-process spread per runtime: the same case in N fresh worker processes, cases interleaved
(gen 0: A B C, gen 1: A B C ...). Each process: load, warm-up 1 s, measure `secs` s in 0.25 s rounds.
Prints each process's median and the spread (sd of log medians) against the in-process spread.

    procspread.py DB N SECONDS model/backend/precision,... [--out FILE.json]

`--out`: also write every process's median and round medians there as JSON (nothing else is
written; the inputs live in a temporary folder removed at the end)."""
import json, math, os, sqlite3, sys, tempfile, time
import numpy as np
from pfdeploy.bench.worker import WorkerProcess
from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.timing import round_size

args = sys.argv[1:]
out = None
if "--out" in args:
    i = args.index("--out")
    out = args[i + 1] if i + 1 < len(args) else sys.exit("--out needs a FILE")
    del args[i:i + 2]
if len(args) != 4:
    sys.exit(__doc__)
db, N, secs, filt = args[0], int(args[1]), float(args[2]), args[3].split(",")
scratch = tempfile.TemporaryDirectory(prefix="procspread-")  # the inputs; removed at exit
extra_env = json.loads(os.environ.get("SPREAD_ENV", "{}"))
con = sqlite3.connect(db)
rows = con.execute("select case_key, artifact, model, backend, precision from results where status='ok'").fetchall()
cases = []
by = {(m, b): (k, json.loads(a) if a else {}) for k, a, m, b, p in rows}
for item in filt:
    model, backend, prec = item.split("/")
    key, art = by[(model, backend)]
    cases.append((item, model, backend, prec, art.get("path")))
import pfdeploy.weights as W
from pfdeploy.zoo import get_spec
inputs = {}
for _, model, *_ in cases:
    if model not in inputs:
        s = get_spec(model)
        x = W.synthetic_images(1, s.input_size, s.mean, s.std, seed=0).numpy().astype(np.float32)
        p = os.path.join(scratch.name, f"{model}.npy"); np.save(p, x); inputs[model] = p
from pfdeploy.backends import get_backend
res = {c[0]: [] for c in cases}
rule = StopRule(min_time_s=0.5, max_time_s=1.0, warmup_time_s=1.0)
for gen in range(N):
    for key, model, backend, prec, path in cases:
        b = get_backend(backend)
        req = b.artifact_request(prec, 1)
        model_file = None; weights_file = None
        if req is None:
            import glob
            from pfdeploy.config import cache_dir
            cand = sorted(glob.glob(os.path.join(str(cache_dir()), "torch-weights", f"{model}-seed0-*.pt")))
            weights_file = cand[-1]
        else:
            mf = [f for f in os.listdir(path) if f.endswith((".onnx", ".xml"))]
            model_file = os.path.join(path, sorted(mf)[0])
        spec = CaseSpec(model=model, backend=backend, precision=prec, threads=2)
        w = WorkerProcess(key, env=extra_env)
        w.call("load", timeout_s=300, case=spec.to_dict(), inputs=inputs[model], model_file=model_file, weights_file=weights_file)
        wu = w.call("warmup", timeout_s=300, rule=rule.to_dict(), max_time_s=10)["samples_ns"]
        k = round_size(wu, 0.25)
        samples, rounds = [], []
        t_end = 0; r = 0
        while sum(samples) < secs * 1e9:
            s = w.call("measure", timeout_s=300, iters=k, budget_ns=None, rewarm=1)["samples_ns"]
            samples += s; rounds += [r] * len(s); r += 1
        w.close(); w.cleanup()
        rm = [np.median([x for x, q in zip(samples, rounds) if q == i]) for i in range(r)]
        res[key].append({"median": float(np.median(samples)) / 1e6, "round_medians_ms": [v / 1e6 for v in rm]})
        print(f"gen {gen} {model}/{backend}/{prec}: {np.median(samples)/1e6:.3f} ms ({r} rounds)", flush=True)
print("\ncase | process medians (ms) | between-process sd (log) | within-process round sd (log) | max/min")
for key, model, backend, prec, _ in cases:
    meds = np.array([p["median"] for p in res[key]])
    within = np.mean([np.std(np.log(p["round_medians_ms"]), ddof=1) for p in res[key]])
    print(f"{model}/{backend}/{prec} | {' '.join(f'{m:.2f}' for m in meds)} | {np.std(np.log(meds), ddof=1):.4f} | {within:.4f} | {meds.max()/meds.min():.3f}")
if out:
    with open(out, "w") as f:
        json.dump(res, f)
