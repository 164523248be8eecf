"""``loopwise backup``: the database and the artifact store, backed up together and restored together."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from loopwise.cli._common import console, err_console, progress_bar, settings

app = typer.Typer(
    help="Back up the metadata database and the artifact store together; restore a backup into an "
    "empty database and store (docs/deploy.md)."
)

Dest = Annotated[Path, typer.Argument(help="A new folder on this host (or an empty one).")]
Src = Annotated[Path, typer.Argument(help="A backup's folder: the one `loopwise backup create` made.")]


@app.command()
def create(dest: Dest) -> None:
    """Back up the database and the artifact store into DEST, a new folder, while servers serve on.

    The database (LOOPWISE_DATABASE_URL) is read first, from one snapshot, and the artifact store
    (LOOPWISE_ARTIFACTS) copied after it, so the copy holds every artifact the rows name. Rows are a
    portable dump of every table (a SQLite backup restores on PostgreSQL); artifacts are copied with
    their manifests and checked. DEST is complete once it holds backup.json, written last. Copy it off
    the host afterwards (rclone, aws s3 sync)."""
    from loopwise.backups import create_backup

    target = _local(dest, "DEST")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise typer.BadParameter(
            f"{dest} exists and is not an empty folder: name a new one", param_hint="DEST"
        )
    started = time.monotonic()
    with _progress("backing up") as progress:
        bundle = create_backup(settings(), target, progress=progress)
    console.print(
        f"backed up {len(bundle.tables)} tables ({bundle.rows} rows), {len(bundle.artifacts)} artifacts "
        f"and {len(bundle.host_files)} captured files to {target} in {time.monotonic() - started:.1f} s",
        highlight=False,
        markup=False,
    )
    if bundle.missing:
        err_console.print(
            f"warning: {len(bundle.missing)} URIs the database names were gone from the artifact store "
            f"when it was copied (removed meanwhile), for example {bundle.missing[0]}",
            highlight=False,
            markup=False,
        )
    if bundle.left_out:
        err_console.print(
            f"note: left out tables that are neither loopwise's nor Optuna's: {', '.join(bundle.left_out)}",
            highlight=False,
            markup=False,
        )


@app.command()
def restore(src: Src) -> None:
    """Restore the backup in SRC into an empty database and an empty artifact store.

    The targets are LOOPWISE_DATABASE_URL and LOOPWISE_ARTIFACTS; start no server on them until the
    restore is done. Every part is checked against backup.json before anything is written. A target
    holding rows or artifacts of its own is refused (a restore never merges). When the store is not
    where the backup's artifacts lived, the URIs the rows hold are moved to it."""
    from loopwise.backups import restore_backup

    source = _backup_folder(src)
    started = time.monotonic()
    with _progress("restoring") as progress:
        bundle = restore_backup(settings(), source, progress=progress)
    console.print(
        f"restored {len(bundle.tables)} tables ({bundle.rows} rows), {len(bundle.artifacts)} artifacts and "
        f"{len(bundle.host_files)} captured files from {source} (made {bundle.created_at}) in "
        f"{time.monotonic() - started:.1f} s",
        highlight=False,
        markup=False,
    )


@app.command()
def verify(src: Src) -> None:
    """Check every part of the backup in SRC against its backup.json, without restoring it.

    Each table file against its checksum, each artifact against its manifest, each captured file."""
    from loopwise.backups import verify_backup

    source = _backup_folder(src)
    with _progress("checking") as progress:
        bundle = verify_backup(source, progress=progress)
    console.print(
        f"{source}: a sound backup of {len(bundle.tables)} tables ({bundle.rows} rows), "
        f"{len(bundle.artifacts)} artifacts and {len(bundle.host_files)} captured files, made "
        f"{bundle.created_at} by loopwise {bundle.loopwise_version} (schema {bundle.revision})",
        highlight=False,
        markup=False,
    )


def _local(path: Path, hint: str) -> Path:
    if "://" in str(path) or str(path).startswith("s3:"):
        raise typer.BadParameter(
            f"{path} is not a folder on this host: back up into a local folder, then copy it to object "
            "storage (rclone copy, aws s3 sync)",
            param_hint=hint,
        )
    return path.expanduser()


def _backup_folder(src: Path) -> Path:
    from loopwise.backups.bundle import BUNDLE_FILE

    source = _local(src, "SRC")
    if not source.is_dir():
        raise typer.BadParameter(f"{src} is not a folder", param_hint="SRC")
    if not (source / BUNDLE_FILE).is_file():
        raise typer.BadParameter(
            f"{src} is not a loopwise backup: it has no {BUNDLE_FILE} (a backup stopped half-way has none)",
            param_hint="SRC",
        )
    return source


@contextmanager
def _progress(verb: str) -> Iterator[Callable[[str, int, int], None]]:
    with progress_bar(verb) as update:

        def step(phase: str, done: int, total: int) -> None:
            update(done, total, f"{verb}: {phase}")

        yield step
