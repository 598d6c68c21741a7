"""Property-based tests (Hypothesis) of the run-file reader and `compare` on arbitrary run files
(issue 12): valid input gives a verdict, invalid input one clear UserError, never a traceback.
Through the library (fast) and, for a sample, through the command line (exit codes, one line)."""
from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pfdeploy import compare as C
from pfdeploy.errors import UserError
from pfdeploy.store import read_run_file

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | \
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False) | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)

MODELS = ("resnet50", "pf_resnet50_max", "dw_resnet50")
BACKENDS = ("torch", "onnxruntime")


@st.composite
def result_rows(draw, model, backend):
    status = draw(st.sampled_from(["ok", "ok", "ok", "failed", "skipped"]))
    row = {"model": model, "weights": "synthetic:0", "backend": backend, "device": "cpu", "precision": "fp32",
           "batch": 1, "threads": 2, "scenario": "latency", "status": status,
           "error": draw(st.text(max_size=20)) if status != "ok" else None}
    row["case_key"] = C.case_key(row)
    if status == "ok" and draw(st.booleans()):
        n = draw(st.integers(min_value=0, max_value=40))
        base = draw(st.integers(min_value=1, max_value=10**10))
        samples = draw(st.lists(st.integers(min_value=base, max_value=base * 3), min_size=n, max_size=n))
        row["samples_ns"] = samples
        if draw(st.booleans()):
            row["sample_rounds"] = sorted(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
        if samples:
            row["p50_ms"] = sorted(samples)[len(samples) // 2] / 1e6
    elif status == "ok":
        row["p50_ms"] = draw(st.none() | st.floats(min_value=1e-6, max_value=1e6, allow_subnormal=False))
    return row


@st.composite
def run_docs(draw, tag):
    cases = draw(st.lists(st.tuples(st.sampled_from(MODELS), st.sampled_from(BACKENDS)), min_size=0, max_size=4,
                          unique=True))
    run = {"id": draw(st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=16)), "tag": tag,
           "machine_id": draw(st.sampled_from(["m1", "m1", "m2", None])),
           "status": draw(st.sampled_from(["finished", "interrupted", "failed", "running"])),
           "started_at": "2026-11-27T05:00:00+00:00"}
    return {"format": "pfdeploy-run", "version": 1, "run": run,
            "results": [draw(result_rows(m, b)) for m, b in cases]}


def _check_comparison(cmp):
    assert {c.verdict for c in cmp.cases} <= set(C.VERDICTS)
    for fail_on in C.FAIL_ON:
        assert cmp.exit_code(fail_on) in (0, 1)
        assert C.to_markdown(cmp, fail_on).startswith("### pfdeploy compare")
        json.dumps(cmp.to_dict(fail_on), allow_nan=True, default=str)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_reader_on_arbitrary_bytes(tmp_path, data):
    p = tmp_path / "run.json"
    p.write_bytes(data)
    try:
        doc = read_run_file(p)
    except UserError as exc:
        assert str(p) in str(exc) and "\n" not in str(exc)
        return
    assert doc["format"] == "pfdeploy-run"


@SETTINGS
@given(value=json_values)
def test_reader_on_arbitrary_json(tmp_path, value):
    p = tmp_path / "run.json"
    p.write_text(json.dumps(value))
    with pytest.raises(UserError):
        read_run_file(p)  # nothing random is a valid run file (it needs "format": "pfdeploy-run")


@SETTINGS
@given(base=run_docs("base"), head=run_docs("head"))
def test_compare_on_valid_run_files_gives_a_verdict_or_one_clear_error(tmp_path, base, head):
    paths = []
    for name, doc in (("b", base), ("h", head)):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(doc))
        paths.append(p)
    docs = [read_run_file(p) for p in paths]  # generated docs are valid run files
    try:
        cmp = C.compare_runs(docs[0], docs[1], resamples=100)
    except UserError as exc:  # only: a side without results
        assert "has no results" in str(exc)
        assert not base["results"] or not head["results"]
        return
    assert base["results"] and head["results"]
    _check_comparison(cmp)


@st.composite
def mutated_docs(draw):
    """A valid run document with one field anywhere replaced by an arbitrary JSON value (or
    removed)."""
    doc = draw(run_docs("m"))
    target = draw(st.sampled_from(["top", "run", "result"]))
    value = draw(json_values)
    remove = draw(st.booleans())
    if target == "top":
        obj = doc
        key = draw(st.sampled_from(["format", "version", "run", "results"]))
    elif target == "run":
        obj = doc["run"]
        key = draw(st.sampled_from(["id", "status", "started_at", "finished_at", "machine", "tag", "config"]))
    else:
        if not doc["results"]:
            doc["results"] = [value]
            return doc
        obj = draw(st.sampled_from(doc["results"]))
        key = draw(st.sampled_from(["case_key", "status", "samples_ns", "sample_rounds", "p50_ms", "batch",
                                    "threads", "n", "model", "error", "warnings"]))
    if remove:
        obj.pop(key, None)
    else:
        obj[key] = value
    return doc


@SETTINGS
@given(doc=mutated_docs(), other=run_docs("other"))
def test_compare_on_arbitrary_run_files_never_tracebacks(tmp_path, doc, other):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    try:
        loaded = read_run_file(p)
    except UserError:
        return
    for a, b in ((loaded, other), (other, loaded)):
        try:
            cmp = C.compare_runs(a, b, resamples=100)
        except UserError as exc:
            assert "\n" not in str(exc)
            continue
        _check_comparison(cmp)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=run_docs("base"), head=mutated_docs())
def test_compare_cli_exit_codes_on_arbitrary_files(tmp_path, base, head, capsys):
    from test_compare_cli import invoke

    b, h = tmp_path / "b.json", tmp_path / "h.json"
    b.write_text(json.dumps(base))
    h.write_text(json.dumps(head))
    code, out, err = invoke("compare", str(b), str(h), "--resamples", "100", capsys=capsys)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    if code and "pfdeploy: error:" in err:
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
