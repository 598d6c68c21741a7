"""Make a copy of the artifact cache where pf_resnet50_max's ONNX artifact is ~10% slower:
an extra branch (a 7x7 conv, 3->32 channels, stride 1, on the input; ~0.24 GMAC, about a tenth of
the model's 2.24) whose mean is multiplied by zero and added to the logits. Outputs unchanged."""
import hashlib, json, shutil, sys
from pathlib import Path
import numpy as np, onnx
from onnx import helper, numpy_helper

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
if dst.exists():
    shutil.rmtree(dst)
shutil.copytree(src, dst)
art = next((dst / "onnx").glob("pf_resnet50_max-fp32-*"))
man = json.loads((art / "manifest.json").read_text())
mf = art / man["model_file"]
m = onnx.load(str(mf))
g = m.graph
inp, out = g.input[0].name, g.output[0].name
w = np.random.default_rng(0).standard_normal((32, 3, 7, 7)).astype(np.float32) * 0.01
g.initializer.extend([numpy_helper.from_array(w, "slow_w"), numpy_helper.from_array(np.zeros((1,), np.float32), "slow_zero")])
for n in g.node:
    n.output[:] = [f"{out}_pre" if o == out else o for o in n.output]
g.node.extend([
    helper.make_node("Conv", [inp, "slow_w"], ["slow_c"], pads=[3, 3, 3, 3]),
    helper.make_node("ReduceMean", ["slow_c"], ["slow_m"], keepdims=0),
    helper.make_node("Mul", ["slow_m", "slow_zero"], ["slow_z"]),
    helper.make_node("Add", [f"{out}_pre", "slow_z"], [out]),
])
onnx.checker.check_model(m)
onnx.save(m, str(mf))
h = hashlib.sha256(mf.read_bytes()).hexdigest()
man["files"][man["model_file"]] = {"sha256": h, "bytes": mf.stat().st_size}
man["sha256"] = h
man.setdefault("exporter", {})["modified"] = "issue-9 experiment: +7x7 conv branch x 0 (about 10% more work)"
(art / "manifest.json").write_text(json.dumps(man, indent=2))
print("slowed", art)
