"""pfdeploy's statistics, in one place (docs/method.md): the resampling engine (`bootstrap`),
a case's summary and the CI of its median (`summary`), and ratios of medians: model vs baseline
and run vs run (`ratios`). Everything that puts an interval on a latency comes from here."""
from .bootstrap import (BOOTSTRAP_SEED, TAIL_REPLICATES, block_length, bootstrap_medians, log_sd,
                        percentile_interval, resampling_units, tail_interval, tail_intervals)
from .ratios import (MIN_PAIRED_ROUNDS, RatioStats, mann_whitney_p, paired_ratio, pooled_process_variance, ratio_replicates, ratio_stats,
                     round_median_values, round_medians, row_procs, row_rounds, row_speedup, speedup, welch_df)
from .summary import (BOOTSTRAP_RESAMPLES, CV_WARN, STOP_RESAMPLES, Summary, bootstrap_median_ci, ci_halfwidth_rel,
                      hierarchical_se, median_ci, percentile_or_none, process_count, process_sd, summarize,
                      t_quantile)

__all__ = [
    "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "TAIL_REPLICATES", "tail_interval", "tail_intervals", "CV_WARN", "MIN_PAIRED_ROUNDS", "STOP_RESAMPLES", "RatioStats", "Summary",
    "block_length", "bootstrap_median_ci", "bootstrap_medians", "ci_halfwidth_rel", "hierarchical_se",
    "log_sd", "mann_whitney_p", "median_ci", "paired_ratio", "percentile_interval",
    "percentile_or_none", "pooled_process_variance", "process_count", "process_sd", "ratio_replicates", "ratio_stats", "resampling_units",
    "round_median_values", "round_medians", "row_procs", "row_rounds", "row_speedup", "speedup", "summarize",
    "t_quantile", "welch_df",
]
