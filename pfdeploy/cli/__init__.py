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
    "capacity": "The highest server QPS each deployment serves within a p99 bound (MLPerf LoadGen).",
    "tune": "Race every runtime's settings: the fastest verified deployment of each model, with intervals.",
    "compare": "Compare two runs: regression verdict per case (CI gate).",
    "ab": "Measure BASE and HEAD together (two venvs, caches or tuned dirs): a sequential verdict per case.",
    "claims": "Check the paper's claims against stored runs: a verdict per machine, device, runtime, precision.",
    "report": "Build a static HTML dashboard from the results store.",
    "weights": "The release's pretrained checkpoints: list, fetch into the cache, verify.",
    "fleet": "Benchmark every node of a Ray cluster with one command; runs gathered into one store.",
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


def main(argv: list[str] | None = None, keep_handlers: bool = False) -> int:
    """Entry point: user errors print one line on stderr and exit non-zero, no traceback.
    SIGINT/SIGTERM/SIGHUP follow pfdeploy.signals' policy: cleanup runs, exit 128 + signal.
    keep_handlers: leave pfdeploy's handlers installed on return (`run`, the process's own
    entry point, which exits right after)."""
    from .. import signals

    _encodable_output()
    previous = signals.install()
    try:
        return _main(argv)
    finally:
        # After an interrupt pfdeploy's handler stays (it swallows late signals while the command
        # exits; `run` then ignores them for the interpreter's shutdown); otherwise restore.
        if signals.received() is None and not keep_handlers:
            signals.restore(previous)


def _encodable_output() -> None:
    """A terminal or pipe whose encoding cannot show every character (PYTHONIOENCODING=ascii, a C
    locale) gets escapes (`caf\\xe9`) for user text it cannot encode, never a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and hasattr(stream, "reconfigure") and stream.errors == "strict":
                stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError, AttributeError):  # a detached or closed stream: leave it
            pass


def _main(argv: list[str] | None) -> int:
    from .. import signals

    try:
        from ..validate import check_args

        check_args(sys.argv[1:] if argv is None else argv)  # non-UTF-8 text: one line, exit 2 (issue 25)
        # standalone_mode=False: click returns ctx.exit(n)'s code (or the command's return value)
        rv = cli.main(args=argv, prog_name="pfdeploy", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:  # one line, as every other user error (click's own is four)
        where = exc.ctx.command_path if exc.ctx is not None else "pfdeploy"
        click.echo(f"pfdeploy: error: {exc.format_message()} (see `{where} --help`)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort as exc:  # click turns a KeyboardInterrupt (our signals too) into Abort
        cause = exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) else None
        signum = getattr(cause, "signum", None) or signals.received() or 2
        click.echo(f"pfdeploy: interrupted ({signals.signal_name(signum)}); temporary files removed", err=True)
        return 128 + signum
    except KeyboardInterrupt as exc:
        click.echo(f"pfdeploy: interrupted ({signals.signal_name(getattr(exc, 'signum', 2))}); "
                   f"temporary files removed", err=True)
        return signals.exit_code(exc)
    except UserError as exc:
        click.echo(f"pfdeploy: error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return rv if isinstance(rv, int) else 0


def run() -> None:
    """The console script: `main`, then exit with 128 + the first signal if one came, else the
    verb's status. pfdeploy's handlers stay installed up to `signals.exiting`, which then ignores
    the handled signals for the interpreter's shutdown: a second Ctrl-C a moment after the first
    (or any signal as the process exits) can neither kill it by the signal nor print a traceback."""
    from .. import signals

    try:
        code = main(keep_handlers=True)
    except SystemExit as exc:  # a verb that exits itself (bench, tune, ab: sys.exit(128 + signum))
        code = exc.code
    except KeyboardInterrupt as exc:  # the first signal, just as the verb returned
        code = signals.exit_code(exc)
    sys.exit(signals.exiting(code))
