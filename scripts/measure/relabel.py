"""HEAD = run TAG with pf_resnet50_hybrid's rows relabelled as pf_resnet50_max (its own max rows dropped):
a real, 3-16% slower model under the max's case keys. Writes a run file."""
import json, sys
from pfdeploy.store import open_store
from pfdeploy.compare import load_run
db, tag, out = sys.argv[1:4]
doc = load_run(tag, store=open_store(db, create=False, readonly=True))
rows = []
for r in doc["results"]:  # typed results (load_run); the run file gets their plain rows
    if r.model == "pf_resnet50_max":
        continue
    if r.model == "pf_resnet50_hybrid":
        r = r.but(model="pf_resnet50_max", case_key=r.case_key.replace("pf_resnet50_hybrid", "pf_resnet50_max"))
    rows.append(r.to_row(samples=True))
doc["results"] = rows
doc["run"] = dict(doc["run"], id=doc["run"]["id"][:-4] + "beef", tag=tag + "-hybrid-as-max")
json.dump(doc, open(out, "w"))
