"""Reading an endpoint's captured records of a time window into one summary per variant.

Capture files are hour partitions (``<endpoint>/<variant>/<YYYY>/<MM>/<DD>/<HH>/*.jsonl``, see
:mod:`loopwise.serving.capture`); partitions outside the window are not opened, and records of a
partition that lies wholly inside it are not checked for their time. A line that is not a valid record is
skipped and counted, never fatal; a record whose model has other classes than the baseline's is counted
apart (it cannot be compared). Beyond :data:`PARALLEL_BYTES` of files, several processes read them, file
by file, and their summaries are merged in file order: the result is the same as one process reading
them all.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from loopwise.monitoring.window import Context, Window, WindowBuilder
from loopwise.serving.capture import unpack_embeddings

#: read with several processes when the window's files hold more than this
PARALLEL_BYTES = 64 * 2**20
_HOUR = timedelta(hours=1)


@dataclass
class Scan:
    """Per variant, the summary of its records in the window; and what could not be used."""

    variants: dict[str, Window]
    skipped_lines: int
    other_labels: int
    files: int
    bytes: int


@dataclass
class _Part:
    variant: str
    builder: WindowBuilder
    skipped: int
    other_labels: int


def partitions(
    root: Path, endpoint: str, since: datetime, until: datetime, variant: str | None = None
) -> list[tuple[str, Path, bool]]:
    """The capture files of ``endpoint`` whose hour overlaps [since, until], in order: (variant, path,
    whether the whole hour lies inside the window)."""
    base = Path(root) / endpoint
    pattern = f"{variant}/*/*/*/*/*.jsonl" if variant else "*/*/*/*/*/*.jsonl"
    first = since.replace(minute=0, second=0, microsecond=0)
    found = []
    for path in sorted(base.glob(pattern)):
        year, month, day, hour = path.parts[-5:-1]
        try:
            start = datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)
        except ValueError:
            continue  # not a partition of ours
        if start < first or start > until:
            continue
        found.append((path.parts[-6], path, since <= start and start + _HOUR <= until))
    return found


def read_records(
    path: Path, since: datetime, until: datetime, *, inside: bool = False
) -> Iterator[dict[str, Any] | None]:
    """The valid records of one capture file between ``since`` and ``until`` (all of them when the
    file's hour is ``inside`` the window), and None for each line that is not a valid record."""
    with path.open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                rows = record["probabilities"]
                width = len(record["labels"])
                valid = (
                    isinstance(record["input"], list)
                    and isinstance(record["labels"], list)
                    and isinstance(rows, list)
                    and len(rows) == len(record["input"])
                    and all(
                        isinstance(row, list)
                        and len(row) == width
                        and all(isinstance(p, (int, float)) for p in row)
                        for row in rows
                    )
                    and all(isinstance(text, str) for text in record["input"])
                )
                if valid and not inside:
                    at = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
                    if not since <= at <= until:
                        continue
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
                yield None
                continue
            yield record if valid else None


def scan(
    root: Path,
    endpoint: str,
    since: datetime,
    until: datetime,
    context: Context,
    *,
    variant: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Scan:
    """Summaries per variant of ``endpoint``'s records in [since, until] (``workers``: processes to read
    with; by default one per core once the files hold more than :data:`PARALLEL_BYTES`). ``progress``
    gets (files read, files in all) after each file."""
    files = partitions(root, endpoint, since, until, variant)
    size = sum(path.stat().st_size for _, path, _ in files)
    if workers is None:
        workers = min(os.cpu_count() or 1, len(files)) if size > PARALLEL_BYTES else 1
    tasks = [(name, path, since, until, inside) for name, path, inside in files]
    parts: list[_Part] = []

    def read(found: Iterator[_Part]) -> None:
        for part in found:
            parts.append(part)
            if progress is not None:
                progress(len(parts), len(tasks))

    if workers > 1 and len(tasks) > 1:
        # spawned, not forked: the server that runs schedules has threads of its own
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=spawn, initializer=_set_context, initargs=(context,)
        ) as pool:
            read(pool.map(_read_part_in_worker, tasks, chunksize=1))
    else:
        read(_read_part(task, context) for task in tasks)
    merged: dict[str, WindowBuilder] = {}
    skipped = other_labels = 0
    for part in parts:
        skipped += part.skipped
        other_labels += part.other_labels
        if part.builder.records:
            if part.variant in merged:
                merged[part.variant].merge(part.builder)
            else:
                merged[part.variant] = part.builder
    variants = {name: merged[name].build() for name in sorted(merged)}
    return Scan(variants, skipped, other_labels, len(files), size)


#: a reading process's context, set once when the process starts (never used in the calling process)
_context: Context | None = None


def _set_context(context: Context) -> None:
    global _context
    _context = context


def _read_part_in_worker(task: tuple[str, Path, datetime, datetime, bool]) -> _Part:
    assert _context is not None
    return _read_part(task, _context)


def _read_part(task: tuple[str, Path, datetime, datetime, bool], context: Context) -> _Part:
    variant, path, since, until, inside = task
    builder = WindowBuilder(context)
    expected = set(context.labels)
    skipped = other_labels = 0
    for record in read_records(path, since, until, inside=inside):
        if record is None:
            skipped += 1
        elif not expected <= set(record["labels"]):
            other_labels += 1
        else:
            builder.add_record(record, unpack_embeddings)
    return _Part(variant, builder, skipped, other_labels)
