"""Options shared by several verbs, defined once (same spelling, help and checks everywhere)."""
from __future__ import annotations

import re

import click

WEIGHTS_HELP = ("synthetic (seeded, the default), release / release+ (the PfLayer release's checkpoint, fetched "
                "once and pinned), release:<name> (one named checkpoint), pretrained (a baseline's timm weights), "
                "a checkpoint PATH, or a comma-separated list of these: each model gets the first that fits it "
                "(e.g. release,pretrained).")


def _check_weights(ctx, param, value):
    """Spelling errors are usage errors (exit 2) before any work: a misspelt keyword, an unknown
    release checkpoint, a list with a part that is neither a keyword nor a file."""
    from ..pretrained import parse_weights

    parse_weights(value)
    return value


def weights_option(default: str | None = None, extra_help: str = ""):
    """--weights of `export`, `info` and `bench` (pfdeploy.pretrained parses and resolves it)."""
    return click.option("--weights", default=default, metavar="WEIGHTS", callback=_check_weights,
                        show_default=default is not None, help=WEIGHTS_HELP + extra_help)


def load_runs(refs, store_url: str | None = None) -> list[dict]:
    """The run documents of `refs` (run references or run files), or every run of the store when
    none are named (claims, capacity)."""
    from ..compare import existing_store, load_run

    if not refs:
        from ..report.build import load_docs

        return load_docs(existing_store(store_url))
    store = None
    docs = []
    for ref in refs:
        if store is None and not ref.lower().endswith(".json"):
            store = existing_store(store_url)
        docs.append(load_run(ref, store=store))
    return docs


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.I)


def parse_budget(ctx, param, value):
    """'900', '900s', '15m', '1.5h' -> seconds."""
    if value is None:
        return None
    m = DURATION.match(value)
    if not m:
        raise click.BadParameter(f"{value!r}: expected a duration such as 900s, 15m or 1h")
    n = float(m.group(1)) * {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[(m.group(2) or "").lower()]
    if n <= 0:
        raise click.BadParameter(f"{value!r}: must be more than 0")
    return n
