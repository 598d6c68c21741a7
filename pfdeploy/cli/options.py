"""Options shared by several verbs, defined once (same spelling, help and checks everywhere)."""
from __future__ import annotations

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
