"""Which CPUs each thread may run on while OpenVINO infers: pfdeploy's way (synchronous
InferRequest.infer from the main thread, LATENCY hint, 2 threads, f32) with CPU pinning at
OpenVINO's default and off; and benchmark_app (sync and async API), read from /proc."""
import glob, json, os, subprocess, sys, threading, time
from pathlib import Path

xml = sys.argv[1]
mode = sys.argv[2]

def affinity(pid):
    out = {}
    for st in glob.glob(f"/proc/{pid}/task/*/status"):
        d = dict(l.split(":\t", 1) for l in open(st).read().splitlines() if ":\t" in l)
        out[st.split("/")[4]] = (d.get("Name", "").strip(), d.get("Cpus_allowed_list", "").strip())
    return out

if mode.startswith("pfdeploy"):
    import numpy as np, openvino as ov
    core = ov.Core()
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2, "CPU_DENORMALS_OPTIMIZATION": True,
           "INFERENCE_PRECISION_HINT": "f32"}
    if mode == "pfdeploy-nopin":
        cfg["ENABLE_CPU_PINNING"] = False
    m = core.read_model(xml); m.reshape({0: [1, 3, 224, 224]})
    c = core.compile_model(m, "CPU", cfg)
    r = c.create_infer_request()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    before = affinity(os.getpid())
    t = []
    seen = {}
    stop = False
    def watch():
        while not stop:
            for k, v in affinity(os.getpid()).items():
                seen.setdefault(k, set()).add(v[1])
            time.sleep(0.05)
    w = threading.Thread(target=watch, daemon=True); w.start()
    end = time.perf_counter() + 4
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns(); r.infer({0: x}); t.append(time.perf_counter_ns() - t0)
    stop = True; w.join()
    during = {k: sorted(v) for k, v in seen.items()}
    during["main"] = str(os.getpid())
    print(json.dumps({"mode": mode, "pinning": str(c.get_property("ENABLE_CPU_PINNING")),
                      "median_ms": sorted(t)[len(t) // 2] / 1e6, "n": len(t),
                      "threads_before": before, "threads_after": during}))
else:
    api = mode.split("-")[1]
    import openvino
    exe = str(Path(openvino.__file__).resolve().parents[4] / "bin" / "benchmark_app")
    import tempfile
    scratch = tempfile.TemporaryDirectory(prefix="affinity-probe-")  # removed at exit
    cfgf = str(Path(scratch.name) / "config.json")
    Path(cfgf).write_text(json.dumps({"CPU": {"INFERENCE_NUM_THREADS": "2", "INFERENCE_PRECISION_HINT": "f32"}}))
    p = subprocess.Popen([exe, "-m", xml, "-d", "CPU", "-hint", "latency", "-api", api, "-shape", "[1,3,224,224]",
                          "-t", "6", "-load_config", cfgf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(4.5)
    during = affinity(p.pid)
    out = p.communicate()[0]
    med = [l for l in out.splitlines() if "Median" in l]
    pin = [l for l in out.splitlines() if "PINNING" in l]
    print(json.dumps({"mode": mode, "median": med, "pinning": pin, "threads": during}))
