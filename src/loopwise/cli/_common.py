"""What every sub-command shares: the settings, the store, output helpers and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from loopwise.config import Settings
from loopwise.errors import ConfigurationError
from loopwise.storage import Store

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    """The LOOPWISE_* settings; one that cannot be read is a :class:`ConfigurationError` naming it."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LOOPWISE_{'_'.join(str(p) for p in e['loc'][:1]).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"a setting is not valid: {problems}") from None
    except SettingsError as exc:  # a JSON setting (LOOPWISE_ARTIFACTS_OPTIONS) that does not parse
        raise ConfigurationError(f"a setting is not valid: {exc}") from None


@contextmanager
def open_store() -> Iterator[Store]:
    store = Store.open(settings())
    try:
        yield store
    finally:
        store.close()


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2) + "\n")


def short_time(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``update(done, total, text)`` (``text``: a new description).
    Hidden when stderr is not a terminal."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, new_total: int | None = None, text: str | None = None) -> None:
            total_now = new_total if new_total is not None else total
            if text is None:
                bar.update(task, completed=done, total=total_now)
            else:
                bar.update(task, completed=done, total=total_now, description=text)

        yield update
