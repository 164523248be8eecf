"""``loopwise tune``: automatic model tuning. For now: check a spec before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from loopwise.cli._common import console, print_json

app = typer.Typer(help="Automatic model tuning: tuning specs (random, grid, bayesian, hyperband).")


@app.command()
def check(
    spec: Annotated[
        str,
        typer.Argument(help="A tuning spec YAML file, or a built-in spec: course_lab1, default_bayesian."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the checked spec as JSON.")] = False,
) -> None:
    """Check a tuning spec and print it with every alias resolved; exit 1 naming each bad field."""
    from loopwise.tuning import BUILTIN_SPECS, builtin_spec_path, load_spec

    path = builtin_spec_path(spec) if spec in BUILTIN_SPECS and not Path(spec).exists() else Path(spec)
    checked = load_spec(path)
    if as_json:
        print_json(checked.to_dict())
        return
    console.print(f"[bold]{checked.name}[/bold]: valid ({path})")
    console.print(yaml.safe_dump(checked.to_dict(), sort_keys=False).rstrip(), highlight=False)
