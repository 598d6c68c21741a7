"""The cross-check against the runtimes' own measurements (METHOD.md section 7, issue 9 item 7):
`scripts/crosscheck.py` alternates OpenVINO's benchmark_app (-api sync: what an application calling
infer() sees) and a bare ONNX Runtime loop with pfdeploy's engine on the same artifact, and prints
the median ratio with the spread of the pairs. Slow (exports and minutes of timing); on a shared
machine single pairs swing by tens of percent, so only a systematic disagreement fails."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_crosscheck_agrees_with_the_runtimes_own_tools(tmp_path):
    out = tmp_path / "cc.json"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "crosscheck.py"), "--pairs", "3", "--seconds", "3",
                          "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "quartiles of the pairs" in res.stdout and "CPU pinning" in res.stdout
    report = json.loads(out.read_text())
    for name, check in report["checks"].items():
        assert len(check["pairs"]) == 3
        # A systematic disagreement (pfdeploy timing something else than the runtime's own tool does)
        # moves every pair; the machine's noise moves single pairs: its two speed states ~1.7x apart
        # (docs/ab.md) gave pairs of 0.62 and 0.73 beside 1.08 with nothing else running (2 threads,
        # 2026-12-06), and a median of 0.48 under load. So: some pair agrees within 20%, and the
        # median within 2x.
        ratios = [p["ratio"] for p in check["pairs"]]
        assert min(abs(math.log(r)) for r in ratios) <= math.log(1.2), (name, ratios)
        assert 0.5 <= check["median_ratio"] <= 2.0, (name, ratios)
    ref = report["checks"]["openvino"]["reference"]
    assert "-api sync" in ref and "-infer_precision f32" in ref, ref  # fp32 on CPUs whose default is bf16 too
