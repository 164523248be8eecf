"""A real loopwise server on 127.0.0.1 for the serving tests: uvicorn in a thread of the test process (the
models they serve, ``two_models`` and ``flaky_model``, are in the top conftest: pipelines serve them too)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from auth_helpers import admin_token, bearer
from cli_helpers import run
from loopwise.app import background_server
from loopwise.storage import Store


@contextmanager
def running_server(store: Store, **options: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """A real server over ``store`` on 127.0.0.1; yields an HTTP client on it (with an admin's API token)
    and the app."""
    headers = bearer(admin_token(store))
    with (
        background_server(store, **options) as (url, app),
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        yield client, app


def run_loopwise(home: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """``loopwise ARGS`` with ``home`` as its LOOPWISE_HOME (on SQLite), as :func:`cli_helpers.run` runs
    it: its output and exit status, whatever the status."""
    return run(home, *args, check=False, columns=columns)
