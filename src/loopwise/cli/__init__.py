"""The ``loopwise`` command: one sub-command group per capability, thin over the services."""

from __future__ import annotations

import importlib
import sys

import typer

from loopwise.cli import (
    ab,
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
app.add_typer(db.app, name="db")
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


def main() -> None:
    """Entry point: run the app, turning loopwise errors into one clear line and exit status 1."""
    try:
        # outside standalone mode click returns a command's typer.Exit code instead of exiting with it
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LoopwiseError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


__all__ = ["app", "main"]
