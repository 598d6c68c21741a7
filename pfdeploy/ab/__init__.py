"""`pfdeploy ab BASE HEAD`: base and head measured together (docs/ab.md). `policy`: sides, blocks and
the ABPolicy the engine runs; `run`: planning, preparing and running it. The statistics live in
pfdeploy.bench.stats.ab."""
from .policy import ABPolicy, Pair, Side, classify, probe, side_spec  # noqa: F401
from .run import ABCase, ABOutcome, ABSettings, plan, run_ab  # noqa: F401
