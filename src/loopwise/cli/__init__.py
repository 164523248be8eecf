"""The ``loopwise`` command: one sub-command group per capability, thin over the services."""

from __future__ import annotations

import difflib
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

import typer
from rich.markup import escape

from loopwise._extras import missing_extra
from loopwise.cli import (
    ab,
    backup,
    data,
    db,
    endpoint,
    label,
    models,
    monitor,
    pipeline,
    review,
    runs,
    tune,
    workforce,
)
from loopwise.cli._common import err_console
from loopwise.cli.batch import batch_transform
from loopwise.cli.demo import demo
from loopwise.cli.evaluate import evaluate
from loopwise.cli.server import server
from loopwise.cli.train import train
from loopwise.errors import LoopwiseError

app = typer.Typer(
    name="loopwise",
    help="Tune, ship, watch and correct text classifiers with people in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        try:
            found = version("loopwise")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown (not installed)"
        typer.echo(f"loopwise {found}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print loopwise's version and exit."
    ),
) -> None:
    """Tune, ship, watch and correct text classifiers with people in the loop."""


app.add_typer(db.app, name="db")
app.add_typer(backup.app, name="backup")
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(tune.app, name="tune")
# the commands of these modules join the `endpoint` group as they are imported
for _module in ("endpoint_guard", "endpoint_watch"):
    importlib.import_module(f"loopwise.cli.{_module}")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(ab.app, name="ab")
app.add_typer(monitor.app, name="monitor")
app.add_typer(workforce.app, name="workforce")
app.add_typer(label.app, name="label")
app.add_typer(review.app, name="review")
app.add_typer(pipeline.app, name="pipeline")
app.command()(train)
app.command()(evaluate)
app.command()(demo)
app.command()(server)
app.command("batch-transform")(batch_transform)


def click_exceptions() -> ModuleType:
    """The exceptions of the click that typer runs on: ``click.exceptions``, or those of the copy newer
    typers bundle (``typer._click``), which are not ``click``'s."""
    return sys.modules[typer.BadParameter.__module__]


def usage_line(exc: Any) -> str:
    """A click error as one line: the problem, the closest option where one was mistyped, and where the
    command's help is."""
    click = click_exceptions()
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.NoSuchOption):
        message = f"no such option {exc.option_name}"
        command = exc.ctx.command if exc.ctx is not None else None
        params = getattr(command, "params", [])
        known = [o for p in params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
        closest = exc.possibilities or difflib.get_close_matches(exc.option_name, known, n=1, cutoff=0.0)
        if closest:
            message += f"; the closest option is {' or '.join(sorted(closest))}"
        else:
            message += "; this command takes no options"
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {message}{where}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning loopwise errors into one clear line and exit status 1, and
    usage errors (an unknown option, a missing argument, a bad value) into one line and exit status 2."""
    click = click_exceptions()
    try:
        # outside standalone mode click returns a command's typer.Exit code instead of exiting with it
        code = app(args=argv, prog_name="loopwise", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LoopwiseError as exc:
        # escaped: a message's brackets (pip install 'loopwise[train]') are text, not rich markup
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except ModuleNotFoundError as exc:
        # a command that needs an optional extra this installation lacks (loopwise[train]): say which
        error = missing_extra(exc)
        if error is None:
            raise
        err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, getattr(click, "Abort", typer.Abort)):
        err_console.print("aborted")
        sys.exit(1)
    except click.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called alone: its help
            exc.show()
            sys.exit(exc.exit_code)
        err_console.print(usage_line(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)


__all__ = ["app", "main"]
