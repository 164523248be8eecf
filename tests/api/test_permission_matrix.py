"""Who reaches every route of the server, checked against one table written down here.

Every route the app serves (its routes, included routers and mounts, and the routes its middlewares
answer themselves) is sent a request by nobody and by each role, with an API token and with a browser's
session cookie (with the session's CSRF token on writes), on a real server on 127.0.0.1. A refused
request answers 401 to a program without credentials, a 303 to the sign-in page to a browser without
one asking for a page, and 403 to a signed-in role without the permission. Allowed means anything else:
the requests carry made-up ids and empty bodies, so 404, 400 or 422 are the usual answers.

A route that the table does not name fails :func:`test_the_table_names_every_route`: whoever adds a route
decides here who may use it. The table names roles, not permissions, so a wrong permission in
``loopwise.api.auth.POLICY`` or in ``ROLE_PERMISSIONS`` shows up as a mismatch.

:data:`MATRIX` is the one table of the server's routes: the sign-in tests
(tests/workforce/test_web_auth.py) and the security headers' (tests/workforce/test_security_headers.py)
walk it too, with :func:`concrete` paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from loopwise.api.auth import required
from loopwise.app import background_server, create_app
from loopwise.config import Settings
from loopwise.storage import Store
from loopwise.workforce import service
from loopwise.workforce.records import ROLE_PERMISSIONS

ROLES = ("worker", "reviewer", "service", "admin")
#: no account needed
EVERYONE = "everyone"
SIGNED_IN = frozenset(ROLES)
LABELERS = frozenset({"worker", "reviewer", "admin"})
REVIEWERS = frozenset({"reviewer", "admin"})
OBSERVERS = frozenset({"reviewer", "service", "admin"})
PROGRAMS = frozenset({"service", "admin"})
ADMINS = frozenset({"admin"})

#: (method, path as the app declares it) -> who may use it
MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    # signing in, liveness, the pages' style sheets
    ("GET", "/signin"): EVERYONE,
    ("POST", "/signin"): EVERYONE,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/static/{path}"): EVERYONE,
    # one's own account
    ("GET", "/"): SIGNED_IN,
    ("POST", "/signout"): SIGNED_IN,
    ("GET", "/account/password"): SIGNED_IN,
    ("POST", "/account/password"): SIGNED_IN,
    ("GET", "/api/v1/me"): SIGNED_IN,
    # the data plane: programs invoke endpoints and send feedback
    ("POST", "/endpoints/{name}/invocations"): PROGRAMS,
    ("POST", "/api/v1/endpoints/{name}/predict"): PROGRAMS,
    ("POST", "/api/v1/endpoints/{name}/feedback"): PROGRAMS,
    # endpoints' and monitoring's figures
    ("GET", "/api/v1/endpoints"): OBSERVERS,
    ("GET", "/api/v1/endpoints/{name}"): OBSERVERS,
    ("GET", "/api/v1/endpoints/{name}/metrics"): OBSERVERS,
    ("GET", "/api/v1/endpoints/{name}/shadow"): OBSERVERS,
    ("GET", "/api/v1/endpoints/{name}/bandit"): OBSERVERS,
    ("GET", "/api/v1/endpoints/{name}/scaling"): OBSERVERS,
    ("GET", "/api/v1/alerts"): OBSERVERS,
    ("GET", "/api/v1/monitoring/schedules"): OBSERVERS,
    ("GET", "/metrics"): OBSERVERS,
    ("GET", "/console"): OBSERVERS,
    ("GET", "/console/endpoints"): OBSERVERS,
    ("GET", "/console/endpoints/{name}"): OBSERVERS,
    ("GET", "/console/alerts"): OBSERVERS,
    ("GET", "/console/loop"): OBSERVERS,
    # labeling: the queue of one's teams
    ("GET", "/label"): LABELERS,
    ("GET", "/label/jobs/{job_id}"): LABELERS,
    ("GET", "/api/v1/labeling/jobs"): LABELERS,
    ("GET", "/api/v1/labeling/jobs/{job_id}"): LABELERS,
    ("GET", "/api/v1/labeling/jobs/{job_id}/answers"): LABELERS,
    ("POST", "/api/v1/labeling/jobs/{job_id}/next"): LABELERS,
    ("POST", "/api/v1/labeling/jobs/{job_id}/undo"): LABELERS,
    ("POST", "/api/v1/labeling/assignments/{assignment_id}/submit"): LABELERS,
    ("POST", "/api/v1/labeling/assignments/{assignment_id}/skip"): LABELERS,
    # labeling: the label-error review queue
    ("GET", "/api/v1/labeling/jobs/{job_id}/reviews"): REVIEWERS,
    ("POST", "/api/v1/labeling/reviews/{review_id}"): REVIEWERS,
    ("GET", "/review/jobs/{job_id}"): REVIEWERS,
    ("POST", "/review/reviews/{review_id}"): REVIEWERS,
    # labeling: managing jobs
    ("POST", "/api/v1/labeling/jobs"): ADMINS,
    ("GET", "/api/v1/labeling/jobs/{job_id}/progress"): ADMINS,
    ("POST", "/api/v1/labeling/jobs/{job_id}/stop"): ADMINS,
    ("POST", "/api/v1/labeling/jobs/{job_id}/find-errors"): ADMINS,
    ("GET", "/console/labeling"): ADMINS,
    ("GET", "/console/labeling/{job_id}"): ADMINS,
    ("POST", "/console/labeling/{job_id}/stop"): ADMINS,
    ("POST", "/console/labeling/{job_id}/find-errors"): ADMINS,
    # human review (Augmented AI): programs start and stop loops, observers read them, admins manage
    ("POST", "/api/v1/review/loops"): PROGRAMS,
    ("POST", "/api/v1/review/loops/{name}/stop"): PROGRAMS,
    ("GET", "/api/v1/review/loops"): OBSERVERS,
    ("GET", "/api/v1/review/loops/{name}"): OBSERVERS,
    ("GET", "/api/v1/review/loops/{name}/output"): OBSERVERS,
    ("DELETE", "/api/v1/review/loops/{name}"): ADMINS,
    ("GET", "/api/v1/review/flows"): OBSERVERS,
    ("GET", "/api/v1/review/flows/{name}"): OBSERVERS,
    ("POST", "/api/v1/review/flows"): ADMINS,
    ("DELETE", "/api/v1/review/flows/{name}"): ADMINS,
    # the workforce: API tokens and password resets
    ("GET", "/api/v1/workforce/tokens"): ADMINS,
    ("DELETE", "/api/v1/workforce/tokens/{token_id}"): ADMINS,
    ("POST", "/api/v1/workforce/workers/{email}/password-reset"): ADMINS,
    # the API's own documentation
    ("GET", "/openapi.json"): ADMINS,
    ("GET", "/docs"): ADMINS,
    ("GET", "/docs/oauth2-redirect"): ADMINS,
    ("GET", "/redoc"): ADMINS,
}

#: made-up values for the paths' parameters (nothing by these names or ids exists)
MADE_UP_NAME, MADE_UP_ID = "made-up", "987654"


def concrete(template: str, *, name: str = MADE_UP_NAME, made_up_id: str = MADE_UP_ID) -> str:
    """A path of the route ``template``: ``{..._id}`` filled with ``made_up_id``, ``{name}`` with
    ``name``, ``{path}`` (the static files) with the console's style sheet and ``{email}`` with an
    account nobody has."""
    fillers = {"name": name, "path": "console.css", "email": "nobody@example.com"}

    def fill(match: re.Match[str]) -> str:
        parameter = match.group(1)
        return made_up_id if parameter.endswith("_id") else fillers[parameter]

    return re.sub(r"\{(\w+)(?::\w+)?\}", fill, template)


def allowed(method: str, template: str) -> frozenset[str] | str:
    """Who may use the route: the roles of the table, or :data:`EVERYONE`."""
    return MATRIX[(method, template)]


def _is_page(method: str, path: str) -> bool:
    """A route a browser navigates to (anonymous: sent to sign in) rather than one a program calls."""
    return method == "GET" and not path.startswith(("/api/", "/endpoints/", "/metrics"))


def served_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path template) the app answers: its routes, included routers and mounts, and what
    its middlewares answer themselves (their ``ROUTES``)."""
    found: set[tuple[str, str]] = set()
    for middleware in app.user_middleware:
        found.update(getattr(middleware.cls, "ROUTES", ()))

    def walk(routes: list[Any], prefix: str = "") -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's wrapper of include_router
            if included is not None:
                walk(included.routes, prefix)
            elif isinstance(route, Mount):
                if route.routes:
                    walk(route.routes, prefix + route.path)
                else:  # an application mounted whole (the static files): any path below it
                    found.add(("GET", f"{prefix}{route.path}/{{path}}"))
            elif isinstance(route, APIRoute) or hasattr(route, "methods"):
                for method in route.methods - {"HEAD"}:
                    found.add((method, prefix + route.path))
            else:
                raise AssertionError(f"a route of a kind this test does not know: {route!r}")

    walk(app.routes)
    return found


class Caller:
    """One way of calling: nobody, or a role by API token or by session cookie."""

    def __init__(self, role: str | None, via: str, secret: str = "", csrf: str = "") -> None:
        self.role, self.via, self.secret, self.csrf = role, via, secret, csrf

    def headers(self, method: str) -> dict[str, str]:
        if self.via == "token":
            return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        headers = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # a browser
        if self.secret:
            headers["Cookie"] = f"lw_session={self.secret}"
            if method not in ("GET", "HEAD", "OPTIONS"):
                headers["X-CSRF-Token"] = self.csrf
        return headers

    def expected(self, method: str, template: str) -> str:
        allowed = MATRIX[(method, template)]
        if allowed == EVERYONE or (self.role is not None and self.role in allowed):
            return "allowed"
        if self.role is not None:
            return "403"
        return "303 sign-in" if self.via == "session" and _is_page(method, template) else "401"


def _outcome(answer: httpx.Response) -> str:
    """How the server treated the request: refused (401, 403, sent to sign in) or let through."""
    if answer.status_code == 401 and "Bearer" in answer.headers.get("www-authenticate", ""):
        return "401"  # (a failed sign-in on the sign-in form is a 401 of the form's own, without it)
    if answer.status_code == 403:
        return "403"
    if answer.status_code == 303 and answer.headers.get("location", "").startswith("/signin?next="):
        return "303 sign-in"
    return "allowed"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, dict[str, Caller]]]:
    home: Path = tmp_path_factory.mktemp("matrix")
    store = Store.open(Settings(home=home / "home"))
    callers = {"anonymous-token": Caller(None, "token"), "anonymous-session": Caller(None, "session")}
    for role in ROLES:
        email = f"{role}@example.com"
        with store.uow() as uow:  # accounts that never sign in with a password: no argon2 hashing
            worker = uow.workforce.add_worker(email, role, role, "no password", must_change=False)
        callers[f"{role}-token"] = Caller(role, "token", service.create_token(store, email, "matrix"))
        signed = service.start_session(store, worker)
        callers[f"{role}-session"] = Caller(role, "session", signed.token, signed.csrf_token)
    other = service.start_session(store, worker)  # the admin's second session, never signed out
    callers["admin-other-session"] = Caller("admin", "session", other.token, other.csrf_token)
    try:
        with background_server(store, credentials_ttl_s=60.0) as (url, app):
            yield url, app, callers
    finally:
        store.close()


def test_the_table_names_every_route(server: tuple[str, Any, dict[str, Caller]]) -> None:
    _, app, _ = server
    served = served_routes(app)
    assert ("POST", "/endpoints/{name}/invocations") in served  # answered by a middleware
    missing, gone = sorted(served - set(MATRIX)), sorted(set(MATRIX) - served)
    assert not missing, f"routes nobody decided who may use: add them to MATRIX: {missing}"
    assert not gone, f"MATRIX names routes the app no longer serves: {gone}"


def test_the_policy_gives_each_route_the_permission_of_the_roles_the_table_names(tmp_path: Path) -> None:
    """Without a server: the permission :data:`loopwise.api.auth.POLICY` asks of each route is held by
    exactly the roles of its row (``public``: everyone), and the app serves exactly the table's routes."""
    store = Store.open(Settings(home=tmp_path / "home"))
    try:
        served = served_routes(create_app(store))
    finally:
        store.close()
    assert served == set(MATRIX), (
        f"add to MATRIX: {sorted(served - set(MATRIX))}; no longer served: {sorted(set(MATRIX) - served)}"
    )
    wrong = []
    for method, template in MATRIX:
        need = required(method, concrete(template, name="reviews", made_up_id="1"))
        roles = EVERYONE if need == "public" else frozenset(r for r in ROLES if need in ROLE_PERMISSIONS[r])
        if roles != allowed(method, template):
            wrong.append(f"{method} {template}: POLICY asks {need!r}, which {sorted(roles)} have")
    assert not wrong, "; ".join(wrong)


CALLERS = [f"{who}-{via}" for who in ("anonymous", *ROLES) for via in ("token", "session")]


@pytest.mark.parametrize("who", CALLERS)
def test_each_caller_reaches_exactly_what_the_table_allows(
    server: tuple[str, Any, dict[str, Caller]], who: str
) -> None:
    url, _, callers = server
    caller = callers[who]
    wrong = []
    # signing out ends the session: last
    routes = sorted(MATRIX, key=lambda route: (route == ("POST", "/signout"), route))
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as client:
        for method, template in routes:
            answer = client.request(method, concrete(template), headers=caller.headers(method))
            expected, got = caller.expected(method, template), _outcome(answer)
            if got != expected:
                wrong.append(f"{method} {template}: expected {expected}, got {answer.status_code}")
    assert not wrong, f"{who}: " + "; ".join(wrong)


def test_no_write_by_a_browser_session_goes_through_without_its_csrf_token(
    server: tuple[str, Any, dict[str, Caller]],
) -> None:
    url, _, callers = server
    admin = callers["admin-other-session"]
    writes = [
        (method, template)
        for (method, template), allowed in MATRIX.items()
        if method not in ("GET", "HEAD", "OPTIONS") and allowed != EVERYONE
    ]
    assert writes
    forged = {"Cookie": f"lw_session={admin.secret}", "X-CSRF-Token": "forged"}
    wrong = []
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as client:
        for method, template in writes:
            for headers in ({"Cookie": forged["Cookie"]}, forged):
                answer = client.request(method, concrete(template), headers=headers)
                if answer.status_code != 403 or "CSRF" not in answer.text:
                    wrong.append(f"{method} {template} ({sorted(headers)}): {answer.status_code}")
    assert not wrong, "; ".join(wrong)
