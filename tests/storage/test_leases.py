"""Duty leases on SQLite and PostgreSQL: two server processes on one database contend for a duty, exactly
one holds it at a time; when the holder dies (a child process killed with SIGKILL) the other takes it
over within 10 s with a higher token; a holder whose lease was taken over cannot commit a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_helpers import first_line
from loopwise.errors import ConfigurationError, LeaseLostError
from loopwise.storage import Store
from loopwise.storage.engine import build_engine
from loopwise.storage.fencing import Fence, fenced
from loopwise.storage.leases import RENEW_S, TTL_S, LeaseKeeper, run_fenced
from loopwise.storage.locks import only_server

DUTY = "webhook-outbox"
#: the issue's bound on how long a dead holder's duty may go without a holder
TAKEOVER_LIMIT_S = 10.0

#: a server process in miniature: it holds DUTY's lease (renewing it as the server does), then says so
HOLDER = """
import asyncio
from loopwise.config import Settings
from loopwise.storage import Store
from loopwise.storage.leases import LeaseKeeper

async def hold():
    keeper = LeaseKeeper(Store.open(Settings()), [{duty!r}])
    keeper.start()
    while keeper.fence({duty!r}) is None:
        await asyncio.sleep(0.05)
    print(keeper.fence({duty!r}).token, flush=True)
    await asyncio.sleep(3600)

asyncio.run(hold())
"""


@pytest.fixture
def replica(store: Store) -> Iterator[Store]:
    """A second server's store on the same database."""
    other = Store.open(store.settings, migrate=False)
    yield other
    other.close()


def _webhooks(store: Store) -> list[str]:
    with store.uow() as uow:
        return [hook.url for hook in uow.monitoring.webhooks()]


def _add_webhook(url: str) -> Callable[[Store], None]:
    """A duty's step that writes: it adds a webhook."""

    def step(store: Store) -> None:
        with store.uow() as uow:
            uow.monitoring.add_webhook(url, "secret")

    return step


def test_one_holder_at_a_time_and_each_takeover_raises_the_token(store: Store, replica: Store) -> None:
    first, second = LeaseKeeper(store, [DUTY], holder="a"), LeaseKeeper(replica, [DUTY], holder="b")
    first.renew()
    second.renew()
    assert first.held() == [DUTY] and second.held() == []
    assert second.fence(DUTY) is None
    held = first.fence(DUTY)
    assert held is not None
    first.renew()  # a renewal keeps the token
    assert first.fence(DUTY) == held

    first.release()  # a server that stops gives its duties up: the other takes them at once
    second.renew()
    taken = second.fence(DUTY)
    assert first.held() == [] and taken is not None and taken.token == held.token + 1
    first.renew()
    assert first.held() == []  # the lease runs: the first waits
    with store.uow() as uow:
        assert [(lease.duty, lease.holder, lease.token) for lease in uow.leases.all()] == [
            (DUTY, "b", taken.token)
        ]


def test_of_servers_racing_for_a_free_duty_exactly_one_gets_it(store: Store, replica: Store) -> None:
    barrier = threading.Barrier(8)
    tokens: dict[str, int | None] = {}

    def race(holder: str, on: Store) -> None:
        barrier.wait()
        with on.uow() as uow:
            tokens[holder] = uow.leases.acquire(DUTY, holder, 30.0)

    threads = [threading.Thread(target=race, args=(f"h{i}", (store, replica)[i % 2])) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(tokens) == 8 and sorted(t for t in tokens.values() if t is not None) == [1]


def test_a_lease_runs_out_after_its_time_to_live(store: Store, replica: Store) -> None:
    with store.uow() as uow:
        first = uow.leases.acquire(DUTY, "a", 0.3)
    with replica.uow() as uow:
        assert uow.leases.acquire(DUTY, "b", 0.3) is None
    deadline = time.monotonic() + 10
    while True:  # the database's clock decides when it ran out
        with replica.uow() as uow:
            taken = uow.leases.acquire(DUTY, "b", 5.0)
        if taken is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert first is not None and taken == first + 1


def test_a_stale_holders_write_is_refused_and_the_new_holders_goes_through(
    store: Store, replica: Store
) -> None:
    with store.uow() as uow:
        old = uow.leases.acquire(DUTY, "a", 0.2)
    assert old is not None
    deadline = time.monotonic() + 10
    new = None
    while new is None and time.monotonic() < deadline:
        with replica.uow() as uow:
            new = uow.leases.acquire(DUTY, "b", 30.0)
        time.sleep(0.05)
    assert new == old + 1

    # the first holder was only slow: its pass, and a write in the middle of one, are both refused
    with pytest.raises(LeaseLostError, match="moved to another server"):
        run_fenced(store, Fence(DUTY, old), _add_webhook("http://stale.example/a"))
    with fenced(Fence(DUTY, old)), pytest.raises(LeaseLostError), store.uow() as uow:
        uow.monitoring.add_webhook("http://stale.example/b", "secret")
    assert _webhooks(store) == []

    run_fenced(replica, Fence(DUTY, new), _add_webhook("http://current.example/"))
    assert _webhooks(store) == ["http://current.example/"]


def test_a_takeover_waits_for_the_fenced_transaction_in_flight(store: Store, replica: Store) -> None:
    """The check and the takeover are ordered: a write that passed its check commits before the next
    holder's token exists, never after (PostgreSQL: the lease row is share-locked until the commit;
    SQLite: the transaction holds the write lock)."""
    with store.uow() as uow:
        old = uow.leases.acquire(DUTY, "a", 0.2)
    assert old is not None
    with replica.uow() as uow:  # the lease runs out while the holder is in the middle of a pass
        expires_at = uow.leases.all()[0].expires_at
    while datetime.now(UTC) < expires_at + timedelta(seconds=0.1):  # the database runs on this host
        time.sleep(0.05)
    taken: list[int | None] = []

    def take_over() -> None:
        with replica.uow() as uow:
            taken.append(uow.leases.acquire(DUTY, "b", 30.0))

    successor = threading.Thread(target=take_over)
    with store.uow() as uow:
        uow.leases.check(DUTY, old)
        successor.start()
        successor.join(timeout=1.0)
        assert successor.is_alive() and not taken, "the takeover did not wait for the fenced transaction"
        uow.monitoring.add_webhook("http://in-flight.example/", "secret")
    successor.join(timeout=60)
    assert taken == [old + 1] and _webhooks(store) == ["http://in-flight.example/"]


def test_a_keeper_lets_go_of_a_duty_whose_write_found_the_lease_gone(store: Store) -> None:
    keeper = LeaseKeeper(store, [DUTY], holder="a", ttl_s=0.5, renew_s=0.1)
    keeper.renew()
    assert keeper.held() == [DUTY]
    keeper.lost(DUTY)
    assert keeper.held() == [] and keeper.fence(DUTY) is None
    keeper.renew()  # nobody else took it: the same holder, the same token
    assert keeper.held() == [DUTY]
    with pytest.raises(ValueError, match="renew_s"):
        LeaseKeeper(store, [DUTY], ttl_s=2.0, renew_s=2.0)


def test_a_dead_holders_duty_is_taken_over_within_10_seconds(store: Store, tmp_path: Path) -> None:
    """The holder is a process killed with SIGKILL (it never releases); the survivor tries every
    ``RENEW_S`` seconds, as a server does, and gets the duty within ``TTL_S + RENEW_S``."""
    env = {**os.environ, "LOOPWISE_HOME": str(store.settings.home), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("LOOPWISE_DATABASE_URL", None)
    if store.settings.database_url:
        env["LOOPWISE_DATABASE_URL"] = store.settings.database_url
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(duty=DUTY)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        token = int(first_line(holder, timeout_s=60))
        survivor = LeaseKeeper(store, [DUTY], holder="survivor")
        survivor.renew()
        assert survivor.held() == []  # the child holds it
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        holder.wait(timeout=30)
        while survivor.fence(DUTY) is None and time.monotonic() - killed < TAKEOVER_LIMIT_S + RENEW_S:
            time.sleep(RENEW_S)
            survivor.renew()
        takeover_s = time.monotonic() - killed
    finally:
        holder.kill()
        holder.wait(timeout=30)
    taken = survivor.fence(DUTY)
    assert taken is not None and taken.token == token + 1
    assert TTL_S - RENEW_S <= takeover_s <= TAKEOVER_LIMIT_S, takeover_s
    print(f"takeover after SIGKILL: {takeover_s:.1f} s")


def test_only_one_server_on_a_sqlite_database(tmp_path: Path) -> None:
    first = build_engine(f"sqlite:///{tmp_path / 'loopwise.db'}")
    second = build_engine(f"sqlite:///{tmp_path / 'loopwise.db'}")
    try:
        refused = rf"another loopwise server \(pid {os.getpid()}\) already serves the SQLite database"
        with only_server(first), pytest.raises(ConfigurationError, match=refused), only_server(second):
            pass
        with only_server(second):  # the first one stopped: a server may start again
            pass
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.postgres
def test_servers_on_postgresql_share_the_database(postgres_url: str) -> None:
    engine = build_engine(postgres_url)
    try:
        with only_server(engine), only_server(engine):
            pass
    finally:
        engine.dispose()
