"""Regression verdicts between benchmark runs (`pfdeploy compare`, docs/compare.md), one concern
per module:

- `model`: the verdict vocabulary, `CaseComparison`, `Comparison` and its gate;
- `rule`: the verdict rule on one case's ratio statistics (statistics themselves: `bench.stats`);
- `cases`: `compare_runs`, case by case;
- `shift`: the machine-wide / per-runtime shift and verdicts relative to it;
- `noise`: warnings about the machine (other processes' CPU, load average);
- `runs`: BASE / HEAD from a run file, a store reference, or a window of recent runs;
- `render`: Markdown and the terminal table.
"""
from ..bench.stats import (RatioStats, bootstrap_medians, mann_whitney_p, percentile_interval,  # noqa: F401
                           ratio_replicates, ratio_stats)
from .cases import MAX_SAMPLE_NS, check_run_doc, compare_runs  # noqa: F401
from .model import (CASE_FIELDS, CORRECTIONS, DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES,  # noqa: F401
                    DEFAULT_SEED, DEFAULT_THRESHOLD, FAIL_ON, MARK, STYLE, VERDICTS, CaseComparison, Comparison,
                    case_key, run_label)
from .noise import CONTENTION_WARN, run_contention  # noqa: F401
from .render import append_step_summary, md_escape, print_table, publish_markdown, to_markdown, write_text_atomic  # noqa: F401
from .rule import resamples_for, verdict  # noqa: F401
from .runs import existing_store, load_run  # noqa: F401
from .shift import MIN_SHIFT_CASES, PER_BACKEND_MIN_GAIN, Shift  # noqa: F401
