"""``loopwise data``: fetch the course data set, prepare it, import your own, list versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, progress_bar, settings, short_time
from loopwise.data.records import DatasetVersion
from loopwise.data.versions import parse_dataset_ref
from loopwise.errors import NotFoundError

if TYPE_CHECKING:
    from loopwise.data.recipes import DropNa

app = typer.Typer(help="Data sets: fetch, prepare the course split, import CSV / JSON lines / Parquet, list.")

Ratio = Annotated[float, typer.Option(min=0.0, max=1.0)]


def _known(name: str) -> str:
    if name != "reviews":
        raise NotFoundError(f"unknown data set {name!r}: the only built-in data set is 'reviews'")
    return name


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Built-in data set to fetch: reviews.")] = "reviews",
    url: Annotated[
        str | None, typer.Option(help="Download from this URL instead of LOOPWISE_REVIEWS_URL.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Take a local copy instead of downloading (verified, then cached).")
    ] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 (default: the course file's).")] = None,
) -> None:
    """Download the course CSV (or take a local copy), verify its sha256 and cache it."""
    from loopwise.data.cache import fetch_reviews

    _known(name)
    with progress_bar("fetching reviews") as update:
        path = fetch_reviews(settings(), url=url, source_file=file, expected_sha256=sha256, progress=update)
    console.print(f"cached and verified: {path}")


@app.command()
def prepare(
    name: Annotated[str, typer.Argument(help="Recipe to run: reviews.")] = "reviews",
    dataset_name: Annotated[
        str | None, typer.Option("--name", help="Name of the data set to create.")
    ] = None,
    balance: Annotated[
        bool, typer.Option(help="Sample every class down to the smallest (the course does).")
    ] = True,
    dropna: Annotated[
        str,
        typer.Option(help="'any': drop rows empty in any column (course); 'needed': only text/rating/class."),
    ] = "any",
    train: Ratio = 0.9,
    validation: Ratio = 0.05,
    test: Ratio = 0.05,
    seed: Annotated[int, typer.Option(help="Seed for balancing and the stratified split.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Run the course recipe on the cached CSV: sentiment from rating, balance, stratified 90/5/5 split."""
    from loopwise.data.cache import fetch_reviews
    from loopwise.data.service import prepare_reviews

    _known(name)
    if dropna not in ("any", "needed"):
        raise typer.BadParameter(f"--dropna must be 'any' or 'needed', not {dropna!r}")
    csv_path = fetch_reviews(settings())
    with open_store() as store:
        version = prepare_reviews(
            store,
            csv_path,
            name=dataset_name or name,
            balance=balance,
            dropna=cast("DropNa", dropna),
            train=train,
            validation=validation,
            test=test,
            seed=seed,
        )
    _show(version, as_json)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A CSV, JSON lines (.jsonl) or Parquet file.")],
    name: Annotated[str, typer.Option(help="Name of the data set.")],
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the suffix).")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated allowed labels, in label-id order; others are errors.")
    ] = None,
    balance: Annotated[bool, typer.Option(help="Sample every class down to the smallest.")] = False,
    train: Ratio = 0.9,
    validation: Ratio = 0.05,
    test: Ratio = 0.05,
    seed: int = 42,
    skip_empty: Annotated[bool, typer.Option(help="Drop rows with empty text instead of failing.")] = False,
    chunk_size: Annotated[int, typer.Option(min=1, help="Rows read at a time (bounds memory).")] = 50_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Import your own labelled texts as a new data set version, split and stored as Parquet."""
    from loopwise.data.service import import_dataset

    with open_store() as store, progress_bar(f"importing {path.name}") as update:
        version = import_dataset(
            store,
            path,
            name=name,
            text_column=text_column,
            label_column=label_column,
            format=file_format,
            labels=[label.strip() for label in labels.split(",")] if labels else None,
            balance=balance,
            train=train,
            validation=validation,
            test=test,
            seed=seed,
            chunk_size=chunk_size,
            skip_empty=skip_empty,
            progress=update,
        )
    _show(version, as_json)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every data set version."""
    from loopwise.data.service import list_datasets

    with open_store() as store:
        versions = list_datasets(store)
    if as_json:
        print_json(versions)
        return
    table = Table("data set", "labels", "splits (rows)", "hash", "created")
    for v in versions:
        splits = ", ".join(f"{s} {info.rows:,}" for s, info in v.splits.items())
        table.add_row(v.ref, " ".join(v.labels), splits, v.content_hash[:12], short_time(v.created_at))
    console.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one data set version: its source, labels and splits."""
    name, version = parse_dataset_ref(ref)
    from loopwise.data.service import get_dataset

    with open_store() as store:
        found = get_dataset(store, name, version)
    _show(found, as_json)


def _show(version: DatasetVersion, as_json: bool) -> None:
    if as_json:
        print_json(version)
        return
    console.print(f"[bold]{version.ref}[/bold]  hash {version.content_hash[:16]}  labels {version.labels}")
    table = Table("split", "rows", "label counts", "file")
    for split, info in version.splits.items():
        counts = ", ".join(f"{k}: {v:,}" for k, v in info.label_counts.items())
        table.add_row(split, f"{info.rows:,}", counts, info.uri)
    console.print(table)
