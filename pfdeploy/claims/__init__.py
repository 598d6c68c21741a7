"""Each parameter-free model against the baselines its zoo spec names, and the paper's claims
checked against stored runs (docs/claims.md).

    comparisons(results) -> [Comparison]      every PF result x every baseline its spec names (pairs.py)
    check_claims(docs) -> ClaimsCheck          the paper's claims, per machine and configuration (paper.py)
    best_claims(docs) -> BestClaims            each model at its best deployment: the newest
        `pfdeploy tune` final run per machine (`claims --at best`, best.py)

Pure functions of typed results (`pfdeploy.result.Result`) / run documents (the run-file format of
Store.export_run, its rows read as results: docs.py). What they return is typed too; `to_dict()`
gives the JSON that `--json` prints. Every ratio is `bench.stats.speedup`: baseline p50 / model
p50, **above 1 the parameter-free model is faster**, paired over shared rounds when the two cases
ran in the same rotation.
"""
from __future__ import annotations

from ..labels import machine_label, ratio_text  # noqa: F401 - part of this package's API
from .best import (ANY_RUNTIME, BEST_ORIENTATION, BEST_RULE, DEPLOYMENT_FIELDS, TUNE_FIELDS, TUNE_FINAL_SUITE,
                   BestClaims, BestComparison, Deployment, best_claims, best_comparisons, best_pair, deployment,
                   deployment_text, is_tune_final, no_tune_results, tune_final_docs)
from .docs import RunInfo, results_of, typed_doc
from .paper import CLAIMS, RELEASE, Claim, ClaimsCheck, ClaimVerdict, check_claims
from .pairs import (CONFIG_FIELDS, PF_FAMILY, VERDICT_RULE, VERDICTS, Comparison, Speedup, comparisons, config_of,
                    measure, named_baselines, pair, usable, verdict, verdict_text)

__all__ = [
    "ANY_RUNTIME", "BEST_ORIENTATION", "BEST_RULE", "CLAIMS", "CONFIG_FIELDS", "DEPLOYMENT_FIELDS", "PF_FAMILY",
    "RELEASE", "TUNE_FIELDS", "TUNE_FINAL_SUITE", "VERDICTS", "VERDICT_RULE",
    "BestClaims", "BestComparison", "Claim", "ClaimVerdict", "ClaimsCheck", "Comparison", "Deployment", "RunInfo",
    "Speedup",
    "best_claims", "best_comparisons", "best_pair", "check_claims", "comparisons", "config_of", "deployment",
    "deployment_text", "is_tune_final", "machine_label", "measure", "named_baselines", "no_tune_results", "pair",
    "ratio_text", "results_of", "tune_final_docs", "typed_doc", "usable", "verdict", "verdict_text",
]
