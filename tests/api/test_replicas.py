"""Several servers on one database: each background duty runs in one of them at a time (``/healthz``
says which this server runs), a server that stops hands its duties to the others at once, and a second
``loopwise server`` on a SQLite database is refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from cli_helpers import first_line, run_process
from loopwise.app import DUTIES, background_server
from loopwise.storage import Store
from loopwise.storage.leases import RENEW_S


@pytest.fixture
def replica(store: Store) -> Iterator[Store]:
    """A second server's store on the same database."""
    other = Store.open(store.settings, migrate=False)
    yield other
    other.close()


def _duties(url: str) -> set[str]:
    return set(httpx.get(f"{url}/healthz", timeout=10).json()["duties"])


def _until(what: str, check: Callable[[], bool], within_s: float) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {within_s} s"
        time.sleep(0.1)


def test_each_duty_runs_on_one_server_and_a_stopping_server_hands_its_duties_over(
    store: Store, replica: Store
) -> None:
    with ExitStack() as running_first:
        first, _ = running_first.enter_context(background_server(store))
        _until("the first server holds every duty", lambda: _duties(first) == set(DUTIES), 30)
        with background_server(replica) as (second, _):
            for _ in range(int(2 * RENEW_S / 0.2)):  # over two renewals: one holder a duty, never two
                assert _duties(first) == set(DUTIES) and _duties(second) == set()
                time.sleep(0.2)
            running_first.close()  # the first server stops: it gives its leases up
            stopped = time.monotonic()
            _until("the second server took every duty", lambda: _duties(second) == set(DUTIES), RENEW_S + 3)
            print(f"duties handed over {time.monotonic() - stopped:.1f} s after a server stopped")


def test_a_second_server_on_a_sqlite_database_is_refused_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "LOOPWISE_HOME": str(home), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("LOOPWISE_DATABASE_URL", None)
    first = subprocess.Popen(
        [sys.executable, "-c", "from loopwise.cli import main; main()", "server", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert "loopwise server on" in first_line(first, timeout_s=120)  # printed once it holds the database
        refused = run_process(home, "server", "--port", "0", check=False)
        assert first.poll() is None, "the first server keeps serving"
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert f"another loopwise server (pid {first.pid}) already serves the SQLite database" in message
    assert "run several on PostgreSQL" in message
