"""Input manifests: the items of a labeling job, read and checked whole before anything is stored.

* JSON lines, as Ground Truth takes them: one object per line with the text in ``source`` (other fields
  are kept and come back in the output manifest); blank lines are skipped.
* CSV with a header: the text in the column ``text_field`` (``source`` unless told); other columns are
  kept the same way.
* A registered data set's split (``reviews:1`` and ``train``): its texts, with the split's label kept as
  ``dataset_label`` (workers never see it; it measures the workers and the machine labels).

Every problem names its line (the header is line 1 of a CSV); a manifest with any problem is refused
whole, so a job never starts with half its items.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from loopwise.errors import ManifestError
from loopwise.labeling.records import ManifestItem

if TYPE_CHECKING:
    from loopwise.storage import Store

MAX_ITEMS = 1_000_000
MAX_TEXT_CHARS = 100_000
#: problems listed before the rest are counted
SHOWN_PROBLEMS = 5


class _Problems:
    def __init__(self, where: str) -> None:
        self.where, self.found, self.count = where, [], 0  # type: ignore[var-annotated]

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.found) < SHOWN_PROBLEMS:
            self.found.append(f"line {line}: {message}")

    def check(self) -> None:
        if self.count:
            more = f" (and {self.count - len(self.found)} more)" if self.count > len(self.found) else ""
            raise ManifestError(
                f"{self.where} is refused, nothing was imported: " + "; ".join(self.found) + more
            )


def _text(value: object, line: int, name: str, problems: _Problems) -> str | None:
    if not isinstance(value, str):
        problems.add(line, f"{name!r} must be a string of text, not {type(value).__name__}")
        return None
    if not value.strip():
        problems.add(line, f"{name!r} is empty")
        return None
    if len(value) > MAX_TEXT_CHARS:
        problems.add(line, f"{name!r} has {len(value):,} characters (at most {MAX_TEXT_CHARS:,})")
        return None
    return value


def read_manifest(path: Path, *, text_field: str = "source") -> list[ManifestItem]:
    """The items of a JSON-lines (``.jsonl``, ``.json``, ``.manifest``) or CSV (``.csv``) manifest."""
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, text_field)
    return _read_json_lines(path, text_field)


def _read_json_lines(path: Path, text_field: str) -> list[ManifestItem]:
    problems = _Problems(f"manifest {path.name}")
    items: list[ManifestItem] = []
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.add(line_number, f'not JSON ({exc}); each line is one {{"{text_field}": text, ...}}')
                continue
            item = _record(record, line_number, text_field, problems)
            if item is not None:
                items.append(item)
            if len(items) > MAX_ITEMS:
                raise ManifestError(f"manifest {path.name} has more than {MAX_ITEMS:,} items: split it")
    problems.check()
    if not items:
        raise ManifestError(f"manifest {path.name} has no items")
    return items


def parse_records(records: list[object], *, where: str, text_field: str = "source") -> list[ManifestItem]:
    """Items from manifest lines already parsed (an API request's body); positions count from 1."""
    problems = _Problems(where)
    if len(records) > MAX_ITEMS:
        raise ManifestError(f"{where} has more than {MAX_ITEMS:,} items: split them")
    items = [
        item
        for number, record in enumerate(records, start=1)
        if (item := _record(record, number, text_field, problems)) is not None
    ]
    problems.check()
    if not items:
        raise ManifestError(f"{where} has no items")
    return items


def _record(record: object, line: int, text_field: str, problems: _Problems) -> ManifestItem | None:
    if not isinstance(record, dict):
        problems.add(line, f'a JSON {type(record).__name__}, not an object {{"{text_field}": ...}}')
        return None
    if text_field not in record:
        hint = (
            ": source-ref (a file to fetch) is not read for text jobs; put the text itself in source"
            if "source-ref" in record
            else f" (it has {', '.join(sorted(record)) or 'no fields'})"
        )
        problems.add(line, f"no {text_field!r} field{hint}")
        return None
    extra = dict(record)
    text = _text(extra.pop(text_field), line, text_field, problems)
    return None if text is None else ManifestItem(line, text, extra)


def _read_csv(path: Path, text_field: str) -> list[ManifestItem]:
    problems = _Problems(f"manifest {path.name}")
    items: list[ManifestItem] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or text_field not in reader.fieldnames:
                columns = ", ".join(reader.fieldnames or []) or "none"
                raise ManifestError(
                    f"manifest {path.name}: no column {text_field!r} (columns: {columns}); name the text "
                    "column with --text-field"
                )
            for row in reader:
                line_number = reader.line_num
                if None in row or any(value is None for value in row.values()):
                    problems.add(line_number, f"{len(reader.fieldnames)} columns expected")
                    continue
                text = _text(row.pop(text_field), line_number, text_field, problems)
                if text is not None:
                    items.append(ManifestItem(line_number, text, dict(row)))
                if len(items) > MAX_ITEMS:
                    raise ManifestError(f"manifest {path.name} has more than {MAX_ITEMS:,} items: split it")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path.name} is not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise ManifestError(f"manifest {path.name} is not valid CSV: {exc}") from None
    problems.check()
    if not items:
        raise ManifestError(f"manifest {path.name} has no items")
    return items


def dataset_items(store: Store, ref: str, split: str) -> list[ManifestItem]:
    """The texts of a registered data set's split, their labels kept as ``dataset_label``."""
    from loopwise.data.splits import read_split
    from loopwise.data.versions import parse_dataset_ref

    name, version = parse_dataset_ref(ref)
    with store.uow() as uow:
        found = uow.datasets.get(name, version)
    texts, labels = read_split(store.artifacts.local_file(found.split(split).uri))
    return [
        ManifestItem(i, text, {"dataset_label": label})
        for i, (text, label) in enumerate(zip(texts, labels, strict=True), start=1)
        if text.strip()
    ]
