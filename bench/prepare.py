"""Preparing a run's cases before any worker starts: params/MACs, seeded inputs, the torch
runners' state dicts (cached), exported artifacts (cached, verified), accuracy on --images, and
the PyTorch reference outputs every case's own runner is verified against, each once."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..exporters.artifact import parity_verdict
from .config import CaseSpec
from .model import BenchConfig, Prepared, Progress


class Preparer:
    """`Preparer(config, progress).prepare(cases, tmp)` -> {case key: Prepared}."""

    def __init__(self, config: BenchConfig, progress: Progress | None = None):
        self.config = config
        self._progress = progress or Progress()

    # ------------------------------------------------------------------ preparation
    def prepare(self, cases: list[CaseSpec], tmp: Path) -> dict[str, Prepared]:
        """Params/MACs, seeded inputs, torch state dicts, exported artifacts and the PyTorch
        reference outputs for parity, once each."""
        import numpy as np

        from ..backends import get_backend
        from ..backends import artifact_request_of
        from ..zoo import get_spec

        cfg = self.config
        out: dict[str, Prepared] = {c.key: Prepared() for c in cases}
        models: dict[str, dict] = {}
        for c in cases:
            models.setdefault(c.model, {"torch": False, "requests": {}, "batches": set(), "parity": set()})
            m = models[c.model]
            req = artifact_request_of(c)
            m["torch"] |= req is None
            if req is not None:
                m["requests"][req_key(req)] = req
            m["batches"].add(c.batch)
            if cfg.verify and needs_parity(c):
                m["parity"].add((c.batch, c.precision))
        per_model: dict[str, Prepared] = {}
        artifacts: dict[tuple, tuple] = {}
        parity: dict[tuple, tuple] = {}
        for name, need in models.items():
            base = Prepared()
            per_model[name] = base
            try:
                spec = get_spec(name)
                base.family = spec.family
                base.baselines = tuple(spec.baselines)
                source = ModelSource(name, cfg.seed, self._progress, cfg.weights_for(name))
                if need["torch"]:
                    base.weights_file, base.params, base.macs = self.torch_weights(spec, source, tmp)
                else:
                    from ..complexity import complexity_of

                    cx = complexity_of(name)
                    base.params, base.macs = cx.params, cx.macs
                from ..weights import synthetic_images

                for b in need["batches"]:
                    x = synthetic_images(b, spec.input_size, spec.mean, spec.std, seed=cfg.seed)
                    np.save(tmp / f"{name}_b{b}.npy", x.numpy().astype(np.float32))
                if cfg.qsl_images:  # LoadGen's samples: real images, decoded once, here
                    from .loadgen.sut import image_samples

                    self._progress.phase(f"{name}: LoadGen samples from {cfg.qsl_images}")
                    x, base.qsl = image_samples(cfg.qsl_images, spec, int(cfg.loadgen.get("samples", 16)))
                    base.qsl_inputs = str(tmp / f"{name}_qsl.npy")
                    np.save(base.qsl_inputs, x.astype(np.float32))
                for key, req in sorted(need["requests"].items()):
                    artifacts[(name, key)] = self.artifact(name, req, source)
                for b, precision in sorted(need["parity"]):
                    try:
                        parity[(name, b, precision)] = self.parity_refs(spec, source, b, precision, tmp)
                    except Exception as exc:  # noqa: BLE001 - the case runs; its parity says why it is missing
                        parity[(name, b, precision)] = f"{type(exc).__name__}: {exc}"
                source.release()
            except UserError as exc:
                base.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - fail this model's cases, keep the run
                base.error = f"preparing {name} failed: {type(exc).__name__}: {exc}"
        for c in cases:
            base = per_model[c.model]
            p = out[c.key]
            p.family, p.params, p.macs, p.error = base.family, base.params, base.macs, base.error
            p.baselines = base.baselines
            p.inputs = str(tmp / f"{c.model}_b{c.batch}.npy")
            p.qsl_inputs, p.qsl = base.qsl_inputs, base.qsl
            req = artifact_request_of(c)
            if req is None:
                p.weights_file = base.weights_file
                p.accuracy = torch_accuracy(c, [a for (m, _), a in artifacts.items() if m == c.model])
                if c.precision in get_backend(c.backend).reference_precisions:
                    p.parity = {"status": "reference",
                                "note": "PyTorch fp32 is the reference the artifacts are checked against"}
                p.artifact = {"source": "zoo", "weights": c.weights}
            elif not p.error:
                res = artifacts.get((c.model, req_key(req)))
                if res is None:
                    p.error = "artifact was not prepared"
                elif isinstance(res, str):
                    p.error = res
                else:
                    p.model_file, p.artifact_sha256, p.artifact, p.parity, p.accuracy = res
            refs = parity.get((c.model, c.batch, c.precision)) if cfg.verify and needs_parity(c) else None
            if isinstance(refs, tuple):
                p.parity_inputs, p.parity_refs = refs
            elif isinstance(refs, str):
                p.parity = {**p.parity, "runtime_check": f"not run: reference outputs failed: {refs}"}
        return out

    def parity_refs(self, spec, source, batch: int, precision: str, tmp: Path) -> tuple[str, list]:
        """The parity inputs of a case at `batch` and `precision` (seeded, disjoint from calibration:
        2 batches, 12 for int8) written to an .npz for the worker, and [(batch, PyTorch fp32
        output, PyTorch-with-rounded-weights output or None)] for judging its outputs."""
        import numpy as np
        import torch

        from ..exporters.parity import EXTRA_BATCHES, rounded_copy
        from ..exporters.settings import PARITY_SEED
        from ..weights import synthetic_images

        self._progress.phase(f"{spec.name}: PyTorch reference outputs for {precision} parity at batch {batch}")
        n = 2 + EXTRA_BATCHES.get(precision, 0)
        xs = [synthetic_images(batch, spec.input_size, spec.mean, spec.std, PARITY_SEED + i) for i in range(n)]
        path = tmp / f"parity_{spec.name}_b{batch}_n{n}.npz"
        if not path.exists():
            np.savez(path, **{f"x{i}": x.numpy().astype(np.float32) for i, x in enumerate(xs)})
        model = source.model()
        cache = source.cache.setdefault(("ref", batch), [])
        rounded = source.cache.get(("rounded", precision))
        if rounded is None and precision != "fp32":
            rounded = source.cache[("rounded", precision)] = rounded_copy(model, precision)
        refs = []
        with torch.no_grad():
            for i, x in enumerate(xs):
                if i >= len(cache):
                    cache.append(model(x).float().numpy())
                base = rounded(x).float().numpy() if rounded is not None else None
                refs.append((batch, cache[i], base))
        return str(path), refs

    def torch_weights(self, spec, source, tmp: Path) -> tuple[str, int, int]:
        """(state-dict path, params, MACs) of the calibrated synthetic model for the torch
        runners. Cached beside the artifacts, keyed on model, seed, torch version and the zoo's
        and weights' source code, so a warm run builds and calibrates nothing."""
        import hashlib
        import json

        import torch

        from .. import weights as weights_mod
        from .. import zoo as zoo_pkg
        from ..complexity import complexity
        from ..config import cache_dir

        h = hashlib.sha256()
        for f in sorted(Path(zoo_pkg.__file__).parent.glob("*.py")) + [Path(weights_mod.__file__)]:
            h.update(f.read_bytes())
        wsrc = source.source
        wtag = (f"seed{self.config.seed}" if wsrc.startswith("synthetic:")
                else "w" + hashlib.sha256(wsrc.encode()).hexdigest()[:12])  # release/file/pretrained weights
        key = f"{spec.name}-{wtag}-torch{torch.__version__}-{h.hexdigest()[:12]}".replace(":", "_")
        root = cache_dir(self.config.cache_dir) / "torch-weights"
        pt, meta = root / f"{key}.pt", root / f"{key}.json"
        if pt.is_file() and meta.is_file():
            try:
                m = json.loads(meta.read_text())
                return str(pt), int(m["params"]), int(m["macs"])
            except (OSError, ValueError, KeyError):
                pass
        model = source.model()
        cx = complexity(model, spec.input_size)
        try:
            root.mkdir(parents=True, exist_ok=True)
            part = root / f".{key}.{os.getpid()}.part"
            torch.save(model.state_dict(), part)
            os.replace(part, pt)  # the .json is written last: its presence means the .pt is whole
            part.write_text(json.dumps({"params": cx.params, "macs": cx.macs, "model": spec.name,
                                        "seed": self.config.seed, "weights": wsrc}))
            os.replace(part, meta)
            return str(pt), cx.params, cx.macs
        except OSError:  # an unwritable cache: keep the weights for this run only
            path = tmp / f"{spec.name}.pt"
            torch.save(model.state_dict(), path)
            return str(path), cx.params, cx.macs

    def artifact(self, model: str, req: dict, source=None):
        """(model_file, sha256, exporter settings, parity) from the artifact cache, exported on
        demand; or the error message. `req`: a backend's artifact request (get_artifact kwargs)."""
        from ..exporters import get_artifact

        target, precision = req["target"], req["precision"]
        what = f"{target} {precision}" + (f" ({req['recipe']} recipe)" if req.get("recipe") else "")
        self._progress.phase(f"{model}: {what} artifact (exported on demand, cached)")

        def progress(msg, *args, **kwargs):
            self._progress.phase(f"{model}: {what}: {msg}")

        if req.get("file"):  # `bench --tuned`: that very artifact, checked, never exported
            art = self._artifact_file(model, req)
            if isinstance(art, str):
                return art
            what = f"tuned {what}"
        else:
            try:
                art = get_artifact(model, weights=source.weights if source else None, seed=self.config.seed,
                                   cache_dir=self.config.cache_dir,
                                   verify=self.config.verify, progress=progress, _source=source,
                                   allow_failed=self.config.allow_failed_parity, **req)
            except UserError as exc:
                return f"export to {what} failed: {exc}"
            except Exception as exc:  # noqa: BLE001
                return f"export to {what} failed: {type(exc).__name__}: {exc}"
        man = art.manifest
        verdict = parity_verdict(man.get("parity")) if man.get("parity") else None
        if (man.get("status") == "failed" or verdict == "failed") and not self.config.allow_failed_parity:
            why = (man.get("parity") or {}).get("why") or "outside the tolerance"
            return (f"{what} artifact failed parity verification ({why}); not timed "
                    f"(--allow-failed-parity times it anyway)")
        settings = {"target": target, "precision": precision, "path": str(art.path), "exporter": man.get("exporter"),
                    "tools": man.get("tools"), "manifest_status": man.get("status"),
                    "weights": (man.get("weights") or {}).get("source")}
        if req.get("file"):
            settings["source"] = "tuned"  # the tuned directory's artifact, not the export cache's
        from ..exporters import accuracy

        if self.config.images:
            self._progress.phase(f"{model}: {what}: accuracy on {self.config.images}")
            try:
                accuracy.measure_artifact(art, self.config.images, self.config.labels,
                                          model=source.model() if source else None)
            except UserError as exc:
                return f"accuracy of the {what} artifact on --images failed: {exc}"
        return str(art.model_file), man.get("sha256"), settings, man.get("parity") or {}, accuracy.for_artifact(art)

    def _artifact_file(self, model: str, req: dict):
        """The Artifact of `req["file"]` (a tuned directory's model file), validated: every file's
        size and sha256 against its manifest, the artifact's sha256 against `req["sha256"]` (what
        tuned.json records), and its model, target and precision against the case's; else the
        error message. Parity is still checked by the timed runner, as for any artifact."""
        from ..exporters import load_artifact
        from ..zoo import canonical_name

        path = req["file"]
        self._progress.phase(f"{model}: the tuned artifact {path} (checking its sha256)")
        try:
            art = load_artifact(path)
        except UserError as exc:
            return f"the tuned artifact is unusable: {exc}"
        if req.get("sha256") and art.sha256 != req["sha256"]:
            return (f"the tuned artifact {path} has sha256 {art.sha256[:16]}..., the tuned record says "
                    f"{str(req['sha256'])[:16]}...: it was modified; not timed")
        for what, have, want in (("model", canonical_name(art.model_name), canonical_name(model)),
                                 ("target", art.target, req["target"]), ("precision", art.precision, req["precision"])):
            if have != want:
                return f"the tuned artifact {path} is {what} {have}, the case needs {want}; not timed"
        if art.model_file.resolve() != Path(path).expanduser().resolve() and Path(path).is_file():
            return f"{path} is not the artifact's model file ({art.model_file.name}); not timed"
        return art


class ModelSource:
    """The calibrated PyTorch model of one zoo entry, built at most once per run and shared by the
    torch runners' state dict, params/MACs and every export that needs it (the exporters' model
    source protocol: `.model()`, `.name`, `.weights`, `.seed`). A warm artifact cache needs none."""

    def __init__(self, name: str, seed: int, progress: Progress, weights=None):
        # weights: a pfdeploy.pretrained.ModelWeights (None: synthetic with `seed`)
        self.name, self.seed = name, seed
        self.weights = weights.choice if weights else None  # what get_artifact / create_model take
        self.source = weights.source if weights else f"synthetic:{seed}"
        self._model = None
        self._progress = progress
        self.cache: dict = {}  # reference outputs and rounded-weights copies for parity

    def model(self):
        if self._model is None:
            from ..zoo import create_model

            what = f"synthetic weights, seed {self.seed}" if self.weights is None else self.source
            self._progress.phase(f"{self.name}: building the model ({what})")
            self._model = create_model(self.name, weights=self.weights, seed=self.seed)
        return self._model

    def release(self):
        self._model = None
        self.cache = {}




def torch_accuracy(case: CaseSpec, prepared: list) -> dict | None:
    """A PyTorch fp32 row's accuracy: the PyTorch top-1/top-5 measured beside an artifact of the
    same model and weights in this run (the torch backend at fp32 is that reference model)."""
    if case.precision != "fp32":
        return None
    for res in prepared:
        acc = res[4] if isinstance(res, tuple) else None
        if acc and acc.get("torch_top1") is not None:
            return {"top1": acc["torch_top1"], "top5": acc.get("torch_top5"), "n": acc.get("n"),
                    "images_sha256": acc.get("images_sha256"), "images": acc.get("images"),
                    "weights": acc.get("weights"), "measured_at": acc.get("measured_at"),
                    "source": f"PyTorch fp32, measured beside artifact {str(acc.get('artifact_sha256'))[:12]}"}
    return None


def req_key(req: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in req.items()))


def needs_parity(case: CaseSpec) -> bool:
    """Every case is verified by its own runner, except at a backend's reference precisions
    (PyTorch fp32: the reference itself)."""
    from ..backends import get_backend

    return case.precision not in get_backend(case.backend).reference_precisions
