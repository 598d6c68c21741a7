"""The release's checkpoints by name: fetched from a mirror served on localhost (no network here),
pinned, checked, and nothing left behind when anything goes wrong. The Google Drive path is
tested up to the request it would send."""
from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import invoke_cli, run_cli
from pfdeploy import pretrained
from pfdeploy.errors import UsageError, UserError


class _Handler(http.server.SimpleHTTPRequestHandler):
    behaviour: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        mode = self.behaviour.get(name)
        if mode == "html":
            body = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>quota</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "truncate":
            data = (Path(self.directory) / "pflayer" / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        super().do_GET()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server over a folder; PFDEPLOY_WEIGHTS_MIRROR points at it."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = type("H", (_Handler,), {"behaviour": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(root), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pflayer"
    monkeypatch.setenv(pretrained.MIRROR_ENV, url)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PFDEPLOY_CACHE_DIR", str(cache))
    yield {"root": root, "url": url, "behaviour": handler.behaviour, "cache": cache}
    server.shutdown()
    server.server_close()


def _serve_checkpoint(root: Path, file: str, model: str, seed: int, calibrated: bool = False) -> Path:
    """A checkpoint in the release's layout (a plain state_dict saved with torch.save); calibrated
    (synthetic weights with BatchNorm statistics, slower) when its outputs matter."""
    from pfdeploy.zoo import build_architecture, create_model

    if calibrated:
        sd = create_model(model, seed=seed).state_dict()
    else:
        torch.manual_seed(seed)
        sd = build_architecture(model).state_dict()
    path = root / "pflayer" / file
    path.parent.mkdir(exist_ok=True)
    torch.save(sd, path)
    return path


def _leftovers(cache: Path) -> list[str]:
    d = cache / "weights"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_catalogue_matches_the_release():
    rows = {r["name"]: r for r in pretrained.catalogue()}
    assert set(rows) == {"resnet50_max", "resnet50_hybrid", "resnet50_max_plus", "resnet50_hybrid_plus",
                         "vit_s_max", "pit_s_max"}
    assert [rows[n]["top1"] for n in ("resnet50_max", "resnet50_hybrid", "resnet50_max_plus",
                                      "resnet50_hybrid_plus", "vit_s_max", "pit_s_max")] == [74.3, 77.1, 75.5, 78.0,
                                                                                              80.0, 80.8]
    assert pretrained.checkpoint_for("pf_resnet50", "release+").name == "resnet50_hybrid_plus"
    assert pretrained.checkpoint_for("pf_vit_s", "release").name == "vit_s_max"
    with pytest.raises(UsageError, match="no 'release\\+' checkpoint for pf_vit_s"):
        pretrained.checkpoint_for("pf_vit_s", "release+")
    with pytest.raises(UsageError, match="published no checkpoint for pf_vit_b"):
        pretrained.checkpoint_for("pf_vit_b", "release")


def test_fetch_pins_and_reuses(mirror):
    served = _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=3)
    path = pretrained.fetch("resnet50_max")
    assert path.read_bytes() == served.read_bytes()
    pins = pretrained.read_pins()
    from pfdeploy.weights import sha256_file

    assert pins["resnet50_max"]["sha256"] == sha256_file(served)
    assert pins["resnet50_max"]["url"] == mirror["url"] + "/resnet50_max.pth"
    assert _leftovers(mirror["cache"]) == ["pins.json", "resnet50_max.pth"]
    served.unlink()  # cached: no second download
    assert pretrained.fetch("resnet50_max") == path
    assert pretrained.verify("resnet50_max")["ok"]


def test_a_different_file_later_is_refused(mirror):
    _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=3)
    first = pretrained.fetch("resnet50_max").read_bytes()
    _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=4)  # the host changed it
    with pytest.raises(UserError, match="differs from the .* pinned for resnet50_max"):
        pretrained.fetch("resnet50_max", force=True)
    assert pretrained.cached_path(pretrained.CHECKPOINTS["resnet50_max"]).read_bytes() == first
    assert _leftovers(mirror["cache"]) == ["pins.json", "resnet50_max.pth"]
    # a cached file replaced behind pfdeploy's back fails verify
    pretrained.cached_path(pretrained.CHECKPOINTS["resnet50_max"]).write_bytes(
        (mirror["root"] / "pflayer" / "resnet50_max.pth").read_bytes())
    with pytest.raises(UserError, match="differs from"):
        pretrained.verify("resnet50_max")


@pytest.mark.parametrize("fault, message", [
    ("html", "got an HTML page instead of a checkpoint"),
    ("truncate", "cannot download .*incomplete"),
    ("missing", "cannot download .*404"),
    ("wrong_model", "does not match the model"),
    ("garbage", "not a readable PyTorch checkpoint"),
])
def test_bad_downloads_fail_cleanly(mirror, fault, message):
    root = mirror["root"]
    if fault == "wrong_model":
        _serve_checkpoint(root, "resnet50_max.pth", "pf_resnet50_hybrid", seed=0)
    elif fault == "garbage":
        (root / "pflayer").mkdir()
        (root / "pflayer" / "resnet50_max.pth").write_bytes(os.urandom(4096))
    elif fault != "missing":
        _serve_checkpoint(root, "resnet50_max.pth", "pf_resnet50_max", seed=0)
        mirror["behaviour"]["resnet50_max.pth"] = fault
    with pytest.raises(UserError, match=message):
        pretrained.fetch("resnet50_max")
    assert _leftovers(mirror["cache"]) == []
    assert "resnet50_max" not in pretrained.read_pins()


def test_google_drive_request(monkeypatch, tmp_path):
    """Without a mirror the request goes to Google Drive with the release's file id; here (no
    network) it is intercepted at the HTTP layer and refused like an offline machine."""
    import requests

    monkeypatch.delenv(pretrained.MIRROR_ENV, raising=False)
    monkeypatch.setenv("PFDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    seen = []

    def offline(self, method, url, *args, **kwargs):
        seen.append((method, url))
        raise requests.exceptions.ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(requests.Session, "request", offline)
    with pytest.raises(UserError, match="cannot download https://drive.google.com/uc\\?id=1MoCdVLPau4XuI0BVGEwDkiwibpybqWTX"
                                        ".*Failed to resolve.*offline"):
        pretrained.fetch("resnet50_max")
    assert seen and seen[0] == ("GET", "https://drive.google.com/uc?id=1MoCdVLPau4XuI0BVGEwDkiwibpybqWTX")
    assert _leftovers(tmp_path / "cache") == []


def _cli(*args, env):
    """The CLI in this process, `env` applied for the call (conftest.invoke_cli)."""
    return invoke_cli(*args, env=env)


@pytest.mark.integration
def test_export_with_release_weights_from_a_mirror(mirror, tmp_path):
    """Done-when of the issue: the artifact computes what PyTorch computes on the mirrored
    checkpoint, and its manifest names the release checkpoint and its hash."""
    import onnxruntime as ort

    from pfdeploy.weights import sha256_file
    from pfdeploy.zoo import build_architecture

    served = _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=5, calibrated=True)
    env = {pretrained.MIRROR_ENV: mirror["url"], "PFDEPLOY_CACHE_DIR": str(mirror["cache"])}
    out = tmp_path / "art"
    r = _cli("export", "pf_resnet50_max", "--weights", "release", "--to", "onnx", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    digest = sha256_file(served)
    assert manifest["weights"]["source"] == f"release:resnet50_max@sha256:{digest}"
    net = build_architecture("pf_resnet50_max")
    net.load_state_dict(torch.load(served, weights_only=True))
    net.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = net(x).numpy()
    sess = ort.InferenceSession(str(out / manifest["model_file"]), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_export_with_an_unreachable_mirror_fails_in_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path / "cache"
    env = {pretrained.MIRROR_ENV: f"http://127.0.0.1:{port}/pflayer", "PFDEPLOY_CACHE_DIR": str(cache)}
    r = _cli("export", "pf_resnet50_max", "--weights", "release", "--to", "onnx", env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot download" in r.stderr and "PFDEPLOY_WEIGHTS_MIRROR" in r.stderr
    assert _leftovers(cache) == []
    assert not (cache / "onnx").exists() or not any((cache / "onnx").iterdir())


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_weights_cli_list_fetch_verify(mirror):
    _serve_checkpoint(mirror["root"], "pit_s_max.pth", "pf_pit_s", seed=1)
    env = {pretrained.MIRROR_ENV: mirror["url"], "PFDEPLOY_CACHE_DIR": str(mirror["cache"])}
    r = _cli("weights", "list", "--json", env=env)
    assert r.returncode == 0 and not any(x["cached"] for x in json.loads(r.stdout))
    r = _cli("weights", "fetch", "pit_s_max", env=env)
    assert r.returncode == 0, r.stderr
    r = _cli("weights", "verify", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "pit_s_max"
    r = _cli("weights", "fetch", "pit_s_maxx", env=env)
    assert r.returncode == 2 and "did you mean pit_s_max" in r.stderr
    # timm users: pretrained=True loads the release checkpoint, as in the release README
    import timm

    import pfdeploy.zoo  # noqa: F401  (registers pit_s_max in timm)

    os.environ[pretrained.MIRROR_ENV] = mirror["url"]
    net = timm.create_model("pit_s_max", pretrained=True)
    served = torch.load(mirror["root"] / "pflayer" / "pit_s_max.pth", weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in served.items())


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_pretrained_baseline_offline_is_one_line(tmp_path):
    # a real process: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME once, when it is imported
    env = {"HF_HUB_OFFLINE": "1", "PFDEPLOY_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    r = run_cli("info", "resnet50", "--weights", "pretrained", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot load timm's pretrained weights for resnet50" in r.stderr
    r = run_cli("info", "pf_resnet50_max", "--weights", "pretrained", env=env)
    assert r.returncode == 2 and "use --weights release" in r.stderr


@pytest.mark.integration
def test_pretrained_baseline_through_timm(tmp_path):
    """timm's own pretrained loading (here from a local file, as timm's pretrained_cfg allows),
    converted to pfdeploy's resnet50 layout: same outputs as timm's model."""
    import timm

    ref = timm.create_model("resnet50", pretrained=False)
    torch.nn.init.normal_(ref.fc.weight, std=0.01)
    ref.eval()
    f = tmp_path / "resnet50_timm.pth"
    torch.save(ref.state_dict(), f)
    net = pretrained.load_pretrained("resnet50", overlay_file=str(f))
    assert net.pfdeploy_weights_source == "pretrained:timm/resnet50"
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ bench --weights, accuracy beside speed

def test_weights_spellings_and_first_fit(mirror):
    """--weights parsing is shared by export/info/bench: keywords, release:<name>, a PATH, and
    comma-separated lists where each model gets the first choice that fits it."""
    from pfdeploy.weights import sha256_file

    served = _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=2)
    assert pretrained.parse_weights(None) is None and pretrained.parse_weights("synthetic") is None
    assert pretrained.parse_weights("release,pretrained") == ("release", "pretrained")
    for bad, msg in (("relase", "did you mean release"), ("release:nope", "unknown release checkpoint"),
                     ("release,,synthetic", "empty choice"), ("release,nofile.pth", "neither a keyword nor")):
        with pytest.raises(UsageError, match=msg):
            pretrained.parse_weights(bad)
    plan = pretrained.plan_models(["pf_resnet50_max", "resnet50", "dw_resnet50"], "release,synthetic")
    assert plan["pf_resnet50_max"].source == f"release:resnet50_max@sha256:{sha256_file(served)}"
    assert plan["pf_resnet50_max"].choice == "release:resnet50_max"
    assert plan["resnet50"].source == plan["dw_resnet50"].source == "synthetic:0"
    plan = pretrained.plan_models(["pf_resnet50_max", "resnet50"], "release,pretrained")
    assert plan["resnet50"] == pretrained.ModelWeights("pretrained", "pretrained:timm/resnet50")
    # a choice that fits no model of the run: one line naming every such model, before any download
    (mirror["cache"] / "weights" / "resnet50_max.pth").unlink()
    with pytest.raises(UsageError, match="--weights release does not fit resnet50, dw_resnet50: .*release,pretrained"):
        pretrained.plan_models(["pf_resnet50_max", "resnet50", "dw_resnet50"], "release")
    with pytest.raises(UsageError, match="dw_resnet50 .*pretrained: none exist"):
        pretrained.plan_models(["pf_resnet50_max", "dw_resnet50"], "release,pretrained")
    assert not (mirror["cache"] / "weights" / "resnet50_max.pth").exists()
    # a checkpoint file fits the models whose keys and shapes it has
    plan = pretrained.plan_models(["pf_resnet50_max", "resnet50"], f"{served},synthetic")
    assert plan["pf_resnet50_max"] == pretrained.ModelWeights(str(served), f"sha256:{sha256_file(served)}")
    assert plan["resnet50"].source == "synthetic:0"


@pytest.mark.parametrize("args, needle", [
    (["--weights", "relase"], "did you mean release"),
    (["--weights", "release:resnet50_maxx"], "did you mean resnet50_max"),
    (["--models", "pf_resnet50_max,resnet50", "--weights", "release"], "does not fit resnet50"),
    (["--models", "pf_vit_s", "--weights", "pretrained"], "does not fit pf_vit_s"),
])
def test_bench_bad_weights_is_one_line_exit_2_nothing_run(tmp_path, args, needle):
    with socket.socket() as s:  # nothing may be downloaded: the mirror is a closed port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {pretrained.MIRROR_ENV: f"http://127.0.0.1:{port}/pflayer", "PFDEPLOY_CACHE_DIR": str(tmp_path / "cache")}
    r = _cli("bench", *args, "--backends", "onnxruntime", "--store", str(tmp_path / "r.db"), env=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "cache").exists()


def _labelled_photos(root: Path) -> Path:
    """Four scikit-image photographs in ImageNet-style class folders (synset ids)."""
    from PIL import Image
    from skimage import data

    classes = {"astronaut": "n10148035", "chelsea": "n02123045", "coffee": "n07920052", "rocket": "n04266014"}
    for name, wnid in classes.items():
        (root / wnid).mkdir(parents=True)
        Image.fromarray(getattr(data, name)()).save(root / wnid / f"{name}.png")
    return root


@pytest.mark.integration
def test_bench_release_weights_accuracy_in_rows_and_report(mirror, tmp_path):
    """bench --weights release from the mirror: the rows and the artifact carry the release
    identity (so the artifact's cache key differs from the synthetic one); --images measures
    top-1/top-5 of the exact artifact before timing, the row and the report show it; an
    accuracy.json entry of another artifact is never carried."""
    from pfdeploy.exporters.pipeline import artifact_dir, make_request
    from pfdeploy.exporters.settings import parse_batch
    from pfdeploy.store import read_run_file
    from pfdeploy.weights import sha256_file

    served = _serve_checkpoint(mirror["root"], "resnet50_max.pth", "pf_resnet50_max", seed=5, calibrated=True)
    wid = f"release:resnet50_max@sha256:{sha256_file(served)}"
    env = {pretrained.MIRROR_ENV: mirror["url"], "PFDEPLOY_CACHE_DIR": str(mirror["cache"])}
    db, out = tmp_path / "r.db", tmp_path / "run.json"
    images = _labelled_photos(tmp_path / "val")
    common = ["--models", "pf_resnet50_max", "--backends", "onnxruntime", "--min-time", "0.2", "--max-time", "0.4",
              "--weights", "release", "--store", str(db)]
    r = _cli("bench", *common, "--images", str(images), "--json", str(out), "--tag", "rel", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    row = [x for x in read_run_file(out)["results"] if x["status"] == "ok"][0]
    assert row["weights"] == wid and row["case_key"].startswith(f"pf_resnet50_max|{wid}|onnxruntime|")
    art_path = Path(row["artifact"]["path"])
    assert json.loads((art_path / "manifest.json").read_text())["weights"]["source"] == wid
    assert row["artifact"]["weights"] == wid
    root = mirror["cache"]
    bspec = parse_batch(None, None)
    assert art_path == artifact_dir(root, make_request("pf_resnet50_max", wid, "onnx", "fp32", bspec))
    assert art_path != artifact_dir(root, make_request("pf_resnet50_max", "synthetic:0", "onnx", "fp32", bspec))
    acc = row["accuracy"]
    assert acc["artifact_sha256"] == row["artifact_sha256"] and acc["n"] == 4 and acc["weights"] == wid
    assert 0 <= acc["top1"] <= acc["top5"] <= 1 and 0 <= acc["torch_top1"] <= acc["torch_top5"] <= 1
    assert acc["images_sha256"] and "top-1 % (PyTorch)" in r.stdout and "release:resnet50_max@" in r.stdout
    assert "labelled images" in r.stdout  # the note naming the image set

    site = tmp_path / "site"
    r = _cli("report", "--out", str(site), "--store", str(db), env=env)
    assert r.returncode == 0, r.stderr
    html = (site / "index.html").read_text()
    cell = f"{acc['top1'] * 100:,.1f} ({acc['torch_top1'] * 100:,.1f})"
    assert "top-1 % (PyTorch)" in html and cell in html
    assert any(cell in p.read_text() for p in site.rglob("*.html") if p.name != "index.html")  # the run page

    # an entry measured on another artifact (its sha256 differs) is not carried
    accfile = art_path / "accuracy.json"
    data = json.loads(accfile.read_text())
    for entry in data.values():
        entry["artifact_sha256"] = "0" * 64
    accfile.write_text(json.dumps(data))
    r = _cli("bench", *common, "--json", str(out), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    row2 = [x for x in read_run_file(out)["results"] if x["status"] == "ok"][0]
    assert row2["accuracy"] is None and row2["artifact_sha256"] == row["artifact_sha256"]
    assert "top-1 % (PyTorch)" not in r.stdout


def test_compare_never_pairs_rows_of_different_weights():
    """Cases that differ only in their weights are different cases (weights are in the case key):
    compare lists them as missing/new with the reason, and warns once; it never gives a ratio."""
    from test_compare import synth_doc

    from pfdeploy import compare as C

    base = synth_doc("base", 1)
    head = synth_doc("head", 2)
    wid = "release:resnet50_max@sha256:" + "ab" * 32
    for row in head["results"]:
        if row["model"] == "pf_resnet50_max":
            row["weights"] = wid
            row["case_key"] = C.case_key({**row, "case_key": None})
    cmp = C.compare_runs(base, head)
    pf = [c for c in cmp.cases if c.model == "pf_resnet50_max"]
    assert sorted(c.verdict for c in pf) == ["missing", "new"]
    assert all("not compared across weights" in c.note and c.ratio is None for c in pf)
    assert any("differ only in their weights" in w and wid in w for w in cmp.warnings)
    others = [c for c in cmp.cases if c.model != "pf_resnet50_max"]
    assert others and all("weights" not in (c.note or "") for c in others)
