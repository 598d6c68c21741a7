"""`pfdeploy report`: a static, self-contained HTML dashboard built from the results store.

    build_report(out, store=None, store_url=None, title=None) -> ReportSummary

Pages (readable from file://, no network, no CDN: local CSS/JS, SVG charts drawn in Python):

- index.html: first the paper's claims with a verdict per machine, device, runtime and
  precision (pfdeploy.claims; also written as claims.json); when the store has a `pfdeploy tune`
  final run, "Each model at its best deployment" (`pfdeploy claims --at best`: each PF model against
  its baselines at each one's tuned optimum, per runtime and across runtimes; claims-best.json);
  then per machine and device, the
  latest run's parameter-free-versus-baseline view: grouped bars of p50 with CI error bars per
  model and backend, a table of speedups (with CI) against the baselines each spec names, params,
  MACs and parity status;
- history.html: per case, p50 with its CI band over runs, regression/improvement markers from
  `compare` of each run against the pooled previous 5 runs on its machine (`--base-window 5`); client-side filters (machine, device, backend, model,
  precision);
- runs.html and runs/<id>.html: every run with its environment, artifact manifests, failures.

Templates are rendered by Jinja2 with autoescaping on, so everything from the store (model
names, tags, error messages: they come from users) is HTML-escaped; JSON for the scripts is
embedded with `tojson`, which escapes `<`, `>`, `&` and `'` (a `</script>` in a tag cannot end the
script element). The site is built in a temporary directory beside OUT and renamed into place.
"""
from __future__ import annotations

from .build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
