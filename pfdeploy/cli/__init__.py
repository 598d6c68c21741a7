"""`pfdeploy` command line. One module per verb (pfdeploy/cli/<verb>.py exposing `command`),
loaded lazily so that `pfdeploy --version` or `pfdeploy models` does not import every runtime."""
from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import UserError

# verb -> one-line help (shown without importing the verb's module)
VERBS = {
    "models": "List the model zoo: parameter-free models and their baselines.",
    "info": "Architecture summary, params, MACs, baselines and published figures of one model.",
    "export": "Export a model to ONNX, OpenVINO or TensorRT, verified against PyTorch.",
    "check": "Check an artifact against a target runtime's supported operators.",
    "verify": "Re-run parity of an artifact against PyTorch (optionally on real images).",
    "devices": "List this machine's devices and the backends that can run on each.",
    "bench": "Benchmark models through every installed runtime and store the results.",
    "results": "Show stored benchmark results.",
    "compare": "Compare two runs: regression verdict per case (CI gate).",
    "report": "Build a static HTML dashboard from the results store.",
    "weights": "The release's pretrained checkpoints: list, fetch into the cache, verify.",
    "store": "The results store's schema: inspect it, upgrade it, publish the run-file schema.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(VERBS)

    def get_command(self, ctx, name):
        if name not in VERBS:
            return None
        module = importlib.import_module(f"pfdeploy.cli.{name}")
        return module.command

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, text in VERBS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pfdeploy")
def cli():
    """pfdeploy: export and benchmark parameter-free networks against their baselines."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line on stderr and exit non-zero, no traceback."""
    try:
        # standalone_mode=False: click returns ctx.exit(n)'s code (or the command's return value)
        rv = cli.main(args=argv, prog_name="pfdeploy", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except UserError as exc:
        click.echo(f"pfdeploy: error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())
