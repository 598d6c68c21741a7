"""Golden fixtures (issue 9, item 8): the real run files behind docs/compare.md (trimmed with
scripts/trim_run.py: every raw sample and round kept) are replayed through `compare`, and must give
the verdicts the docs state (tests/data/runs/expected.json). A change to the statistics that
changes a documented verdict fails here, and the docs must be updated with it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pfdeploy import compare as C
from pfdeploy.bench.stats import summarize

RUNS = Path(__file__).parent / "data" / "runs"
EXPECTED = json.loads((RUNS / "expected.json").read_text())


def _doc(name: str) -> dict:
    return json.loads((RUNS / f"{name}.json").read_text())


@pytest.mark.parametrize("pair", EXPECTED["comparisons"], ids=lambda p: f"{p['base']}->{p['head']}")
def test_documented_verdicts(pair):
    cmp = C.compare_runs(_doc(pair["base"]), _doc(pair["head"]))
    verdicts = {f"{c.model}/{c.backend}": c.verdict for c in cmp.cases}
    assert cmp.exit_code("regression") == pair["exit"], cmp.headline()
    for case, v in pair.get("verdicts", {}).items():
        assert verdicts[case] == v, (case, verdicts[case], cmp.headline())
    for v, n in pair.get("counts", {}).items():
        assert cmp.counts.get(v, 0) == n, cmp.counts
    if "shift" in pair:
        s = pair["shift"]
        assert cmp.shift is not None
        assert cmp.shift.beyond_threshold == s["beyond_threshold"] and cmp.shift.fails_gate == s["fails_gate"]
        assert cmp.shift.ratio == pytest.approx(s["ratio"], abs=0.01)
    for backend, want in pair.get("backend_shifts", {}).items():
        got = cmp.backend_shifts.get(backend)
        assert got is not None, (backend, list(cmp.backend_shifts))
        assert got.ratio == pytest.approx(want["ratio"], abs=0.01) and got.fails_gate == want["fails_gate"]
    if "backend_shifts" not in pair:
        assert cmp.backend_shifts == {}, "one shift for all was the documented model here"
    if "warning" in pair:
        assert any(pair["warning"] in w for w in cmp.warnings), cmp.warnings
    for forbidden in pair.get("no_verdicts", []):
        assert forbidden not in cmp.counts, cmp.counts


def test_stored_statistics_are_reproduced_from_the_raw_samples():
    """The stored p50 and its round-aware CI are what bench.stats computes from the kept samples."""
    checked = set()
    for path in sorted(RUNS.glob("*.json")):
        if path.name == "expected.json":
            continue
        for row in json.loads(path.read_text())["results"]:
            if row["status"] != "ok":
                continue
            # every ok fixture row carries its round CI: a fixture without one is not silently skipped
            assert row.get("ci_method") == "rounds", (path.name, row.get("case_key"), row.get("ci_method"))
            s = summarize(row["samples_ns"], row["sample_rounds"])
            assert s.p50_ms == pytest.approx(row["p50_ms"])
            assert (s.p50_ci_low_ms, s.p50_ci_high_ms) == pytest.approx((row["p50_ci_low_ms"], row["p50_ci_high_ms"]))
            assert s.ci_method == row["ci_method"] == "rounds"
            checked.add(path.stem)
    documented = {p[side] for p in EXPECTED["comparisons"] for side in ("base", "head")}
    assert documented <= checked, f"golden runs without an ok row to check: {sorted(documented - checked)}"
