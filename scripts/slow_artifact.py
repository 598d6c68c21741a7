"""Make a copy of the artifact cache where one model's ONNX fp32 artifact is slower, outputs unchanged:
an extra branch (a 7x7 conv, 3->C channels, stride 1, on the input; C=32: ~0.24 GMAC, about a
tenth of pf_resnet50_max's 2.24; C=16 about 5%) whose mean is multiplied by zero and added to the
logits.

    python scripts/slow_artifact.py SRC_CACHE DST_CACHE [CHANNELS=32] [MODEL=pf_resnet50_max]

`pfdeploy ab SRC_CACHE DST_CACHE --models MODEL --backends onnxruntime` then measures the change."""
import hashlib, json, shutil, sys
from pathlib import Path
import numpy as np, onnx
from onnx import helper, numpy_helper

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
channels = int(sys.argv[3]) if len(sys.argv) > 3 else 32
model = sys.argv[4] if len(sys.argv) > 4 else "pf_resnet50_max"
if dst.exists():
    shutil.rmtree(dst)
shutil.copytree(src, dst)
art = next((dst / "onnx").glob(f"{model}-fp32-*"))
man = json.loads((art / "manifest.json").read_text())
mf = art / man["model_file"]
m = onnx.load(str(mf))
g = m.graph
inp, out = g.input[0].name, g.output[0].name
w = np.random.default_rng(0).standard_normal((channels, 3, 7, 7)).astype(np.float32) * 0.01
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
man.setdefault("exporter", {})["modified"] = f"slow_artifact.py: +7x7 conv branch (3->{channels}) x 0, outputs unchanged"
(art / "manifest.json").write_text(json.dumps(man, indent=2))
print("slowed", art)
