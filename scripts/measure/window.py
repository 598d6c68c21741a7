"""BASE = the pooled runs (tags), HEAD = a run file: pfdeploy.compare.window.pool_runs + compare_runs."""
import json, sys
from pfdeploy.store import open_store
from pfdeploy.compare import load_run, compare_runs
from pfdeploy.compare.window import pool_runs
db, tags, head = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
st = open_store(db, create=False, readonly=True)
base = pool_runs([load_run(t, store=st) for t in tags], "+".join(tags))
h = json.load(open(head)) if head.endswith(".json") else load_run(head, store=st)
cmp = compare_runs(base, h)
for c in sorted(cmp.cases, key=lambda c: c.case_key):
    if c.model == "pf_resnet50_max" or c.verdict in ("regression", "improvement"):
        print(f"{c.verdict:13s} {c.model} {c.backend} {c.precision} {(c.ratio - 1) * 100:+.1f}% [{c.ci_low:.3f}, {c.ci_high:.3f}]")
print(cmp.headline(), "exit", cmp.exit_code())
