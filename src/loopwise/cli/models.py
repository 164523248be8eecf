"""``loopwise models``: the registry of model versions and their aliases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, short_time

app = typer.Typer(help="Registered model versions: list, show with lineage, set aliases such as champion.")


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only versions of this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List model versions with their aliases and headline metrics."""
    from loopwise.registry.service import list_versions

    with open_store() as store:
        versions = list_versions(store, name)
    if as_json:
        print_json(versions)
        return
    table = Table("model", "aliases", "backend", "metrics", "created")
    for v in versions:
        shown = {k: v.metrics[k] for k in ("val_acc", "test_accuracy") if k in v.metrics}
        table.add_row(
            v.ref,
            ", ".join(v.aliases),
            v.backend,
            " ".join(f"{k}={x:.3f}" for k, x in shown.items()),
            short_time(v.created_at),
        )
    console.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a model version: lineage (data set, run, parent), hyperparameters, metrics, evaluations."""
    from loopwise.registry.service import describe_version

    with open_store() as store:
        details = describe_version(store, ref)
    version, dataset = details.version, details.dataset
    ancestors, evaluations = details.ancestors, details.evaluations
    if as_json:
        print_json(
            {
                "model": version,
                "dataset": dataset.ref if dataset else None,
                "ancestors": [a.ref for a in ancestors],
                "evaluations": evaluations,
            }
        )
        return
    console.print(
        f"[bold]{version.ref}[/bold]  aliases: {', '.join(version.aliases) or '-'}  backend {version.backend}"
    )
    console.print(
        f"labels {version.labels}  created {short_time(version.created_at)}  code {version.code_version}"
    )
    console.print(f"data set {dataset.ref if dataset else '-'}  run {version.run_id or '-'}")
    console.print(f"parents: {' <- '.join(a.ref for a in ancestors) or '-'}")
    console.print(f"artifact {version.uri}")
    console.print("params: " + ", ".join(f"{k}={v}" for k, v in version.params.items()))
    console.print("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in version.metrics.items()))
    for e in evaluations:
        console.print(f"evaluation {e.split} on data set version {e.dataset_version_id}: {e.report_uri}")


@app.command()
def alias(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME@ALIAS) to point at.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion or challenger.")],
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
) -> None:
    """Point an alias at a model version (moving it if set), or remove it with --delete."""
    from loopwise.registry.service import point_alias, remove_alias

    with open_store() as store:
        if delete:
            remove_alias(store, ref, alias_name)
            console.print(f"removed alias {alias_name}")
            return
        version = point_alias(store, ref, alias_name)
    console.print(f"{version.name}@{alias_name} -> {version.ref}")
