"""Several servers on one database: each background duty runs in one of them at a time (``/healthz``
says which this server runs), a server that stops hands its duties to the others at once, and a second
``loopwise server`` on a SQLite database is refused at start. On PostgreSQL: a sign-in on one server is
valid on the other (session cookie, CSRF token, API token) and failed sign-ins count on both; new weights
reach the other server's router within a second; the autoscaler sets one count from both servers'
load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, admin_token, bearer, ensure_admin
from cli_helpers import first_line, run_process
from loopwise.api.auth import SESSION_COOKIE, SignInLimiter
from loopwise.app import DUTIES, background_server
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint, update_weights
from loopwise.storage import Store
from loopwise.storage.leases import RENEW_S

#: the tests that are about several servers sharing PostgreSQL
on_postgresql = pytest.mark.parametrize(
    "store", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


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


@contextmanager
def two_servers(store: Store, replica: Store) -> Iterator[tuple[httpx.Client, httpx.Client, Any, Any]]:
    """Servers A (over ``store``) and B (over ``replica``, the same database), started together, each
    with a client holding an admin's API token; yields the clients and the apps."""
    from concurrent.futures import ThreadPoolExecutor

    headers = bearer(admin_token(store))
    with ExitStack() as stack:
        servers = [background_server(store), background_server(replica)]
        with ThreadPoolExecutor(2) as starting:
            started = [starting.submit(server.__enter__) for server in servers]
        for server, future in zip(servers, started, strict=True):
            if future.exception() is None:
                stack.push(server)  # stopped on the way out
        (url_a, app_a), (url_b, app_b) = (future.result() for future in started)
        a = stack.enter_context(httpx.Client(base_url=url_a, headers=headers, timeout=30))
        b = stack.enter_context(httpx.Client(base_url=url_b, headers=headers, timeout=30))
        yield a, b, app_a, app_b


@on_postgresql
def test_a_sign_in_on_one_server_is_valid_on_the_other_and_failures_count_on_both(
    store: Store, replica: Store
) -> None:
    ensure_admin(store)
    with two_servers(store, replica) as (a, b, app_a, app_b):
        # an API token works on both (a, b carry one)
        assert a.get("/api/v1/me").json()["via"] == b.get("/api/v1/me").json()["via"] == "token"
        signed_in = httpx.post(
            f"{a.base_url}/signin", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert signed_in.status_code == 303
        cookie = {SESSION_COOKIE: signed_in.cookies[SESSION_COOKIE]}
        with httpx.Client(base_url=b.base_url, cookies=cookie) as browser_b:
            me = browser_b.get("/api/v1/me")
            assert me.status_code == 200 and me.json()["via"] == "session"
            page = browser_b.get("/account/password")  # B renders the session's CSRF token
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            assert browser_b.post("/signout").status_code == 403  # no CSRF token: refused
            assert browser_b.post("/signout", headers={"X-CSRF-Token": csrf[1]}).status_code == 303
        # signed out on B: A refuses the cookie (A had not kept it)
        assert httpx.get(f"{a.base_url}/api/v1/me", cookies=cookie).status_code == 401

        # one budget of failed sign-ins from an address, whichever server they reach
        for app in (app_a, app_b):
            app.state.signin_limiter = SignInLimiter(app.state.store, limit=3)
        wrong = {"email": "guess@example.com", "password": "not the password"}
        failures = [
            httpx.post(f"{url}/signin", data=wrong).status_code
            for url in (a.base_url, a.base_url, b.base_url)
        ]
        assert failures == [401, 401, 401]
        refused = httpx.post(f"{b.base_url}/signin", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert httpx.post(f"{a.base_url}/signin", data=wrong).status_code == 429


def _variant(client: httpx.Client) -> str:
    answer = client.post("/endpoints/reviews/invocations", json={"features": ["great lovely"]})
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Amzn-Invoked-Production-Variant"]


@on_postgresql
def test_new_weights_reach_the_other_servers_router_within_a_second(
    two_models: Store, replica: Store
) -> None:
    variants = [
        {"name": "VariantA", "model": "small-tfidf:1", "weight": 100},
        {"name": "VariantB", "model": "small-tfidf:2", "weight": 0},
    ]
    create_endpoint(two_models, "reviews", parse_endpoint_config({"variants": variants}))
    with two_servers(two_models, replica) as (_, b, _, _):
        assert {_variant(b) for _ in range(5)} == {"VariantA"}
        delays = []
        for flip in range(4):  # all the traffic to B, then to A, ... through server A's store
            to, other = ("VariantB", "VariantA") if flip % 2 == 0 else ("VariantA", "VariantB")
            update_weights(two_models, "reviews", {to: 100, other: 0})
            changed = time.monotonic()
            while _variant(b) != to:
                assert time.monotonic() - changed < 1.0, f"B still routes to {other} a second later"
            delays.append(time.monotonic() - changed)
            assert {_variant(b) for _ in range(10)} == {to}  # and by the new weights from then on
    print(f"new weights routed by the other server after {', '.join(f'{d * 1000:.0f}' for d in delays)} ms")


@on_postgresql
def test_the_autoscaler_counts_both_servers_load_and_sets_one_count_for_both(
    two_models: Store, replica: Store
) -> None:
    # target 10 invocations per instance a minute, up to 4 instances a server: 36 invocations on A
    # alone would ask for 4 there, and none on B for 1; over both servers, 36 / (2 x 1) = 18 per
    # instance asks for 2 a server, and at 2 a server 36 / 4 = 9 per instance stays at 2
    policy = {
        "target": 10,
        "min_instances": 1,
        "max_instances": 4,
        "scale_out_cooldown_s": 0,
        "scale_in_cooldown_s": 600,
    }
    variants = [{"name": "VariantA", "model": "small-tfidf:1", "autoscaling": policy}]
    create_endpoint(two_models, "reviews", parse_endpoint_config({"variants": variants}))
    with two_servers(two_models, replica) as (a, b, _, _):

        def view() -> dict[str, Any]:
            found: dict[str, Any] = b.get("/api/v1/endpoints/reviews/scaling").json()
            return found

        def reports() -> list[tuple[int, int]]:
            return sorted((s["invocations"], s["instances"]) for s in view()["servers"])

        _until("both servers report their load", lambda: reports() == [(0, 1), (0, 1)], 5)
        for _ in range(36):
            _variant(a)

        def scaled(client: httpx.Client) -> bool:
            instances = client.get("/api/v1/endpoints/reviews/scaling").json()["instances"]["VariantA"]
            return instances == {"target": 2, "live": 2}

        # a worker starts in seconds, more on a loaded machine
        _until("both servers run 2 instances", lambda: scaled(a) and scaled(b), 45)
        # each server's latest report: A's 36 invocations and B's none, both at 2 live instances
        _until("both servers report their load at 2 instances", lambda: reports() == [(0, 2), (36, 2)], 5)
        events = view()["events"]
    assert [(e["instances_before"], e["instances_after"], e["replicas"]) for e in events] == [(1, 2, 2)]
    assert events[0]["invocations"] >= 21  # 2 a server once over 20 invocations in all


def test_a_poll_of_the_versions_says_what_to_stop_apply_or_restate() -> None:
    from loopwise.serving.records import EndpointStatus, EndpointVersion
    from loopwise.serving.replica import changes

    def seen(key: int, name: str, config: int, state: int, status: str = "InService") -> EndpointVersion:
        return EndpointVersion(key, name, EndpointStatus(status), config, state)

    applied = {
        n: seen(i, n, 1, 0) for i, n in enumerate(["same", "weights", "scaled", "gone", "again", "off"])
    }
    polled = [
        seen(0, "same", 1, 0),
        seen(1, "weights", 2, 0),  # a new configuration
        seen(2, "scaled", 1, 3),  # new instance counts or bandit evidence
        seen(9, "again", 1, 0),  # deleted and made anew under the same name
        seen(5, "off", 1, 0, "Failed"),
        seen(7, "new", 1, 0),
    ]
    stopped, configured, restated = changes(applied, polled)
    assert sorted(stopped) == ["again", "gone", "off"]
    assert sorted(v.name for v in configured) == ["again", "new", "weights"]
    assert [v.name for v in restated] == ["scaled"]


def test_every_write_of_an_endpoints_live_state_raises_its_state_version(sqlite_store: Store) -> None:
    from loopwise.serving.records import ScalingEvent

    def versions() -> tuple[int, int]:
        with sqlite_store.uow() as uow:
            (seen,) = uow.endpoints.versions()
        return seen.config_version, seen.state_version

    with sqlite_store.uow() as uow:
        uow.endpoints.add("reviews", {"variants": [{"name": "A", "model": "m:1"}]})
        now = uow.scaling.clock()
    assert versions() == (1, 0)
    with sqlite_store.uow() as uow:
        uow.bandits.add("reviews", {"A": (1.0, 1)})  # feedback through any server
    assert versions() == (1, 1)
    with sqlite_store.uow() as uow:
        uow.scaling.set_count(ScalingEvent("reviews", "A", now, 1, 2, 6.0, 12, 2))
    with sqlite_store.uow() as uow:
        assert uow.scaling.scales("reviews")["A"].instances == 2
        assert [e.instances_after for e in uow.scaling.events("reviews")] == [2]
    assert versions() == (1, 2)
    for _ in range(2):  # the policy removed: the count goes, once
        with sqlite_store.uow() as uow:
            uow.scaling.forget("reviews", "A")
    assert versions() == (1, 3)
    with sqlite_store.uow() as uow:
        uow.endpoints.add_config("reviews", {"variants": [{"name": "A", "model": "m:1"}]}, "weights")
    assert versions() == (2, 3)
