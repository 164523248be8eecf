"""Sign-in over HTTP on a real server on 127.0.0.1: every route needs an account but sign-in, each role
reaches what its permissions allow and nothing else, sessions with CSRF-checked forms, temporary
passwords changed first, sign-out, disabled accounts and revoked tokens shut out, guessing slowed."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.test_permission_matrix import EVERYONE, MATRIX, concrete
from auth_helpers import ADMIN_PASSWORD, admin_token, bearer, ensure_admin
from loopwise.app import DUTIES, background_server
from loopwise.storage import Store
from loopwise.workforce import service
from loopwise.workforce.records import ROLE_PERMISSIONS, ROLES

#: the server's routes as paths, each with who may use it (tests/api/test_permission_matrix.py's table):
#: ``{name}`` is "reviews" and ids are 1, so that the admin's DELETE /api/v1/workforce/tokens/1 revokes
#: the first token made
ROUTES = {
    (method, concrete(template, name="reviews", made_up_id="1")): allowed
    for (method, template), allowed in MATRIX.items()
}


@pytest.fixture
def server(sqlite_store: Store) -> Iterator[tuple[str, object]]:
    with background_server(sqlite_store, credentials_ttl_s=0.2) as (url, app):
        yield url, app


def test_nothing_but_sign_in_answers_without_an_account(server: tuple[str, object]) -> None:
    url, _ = server
    with httpx.Client(base_url=url) as anonymous:
        for (method, path), who in ROUTES.items():
            answer = anonymous.request(method, path)
            if who == EVERYONE:  # an empty sign-in form is a failed sign-in, on the page
                assert answer.status_code == (401 if method == "POST" else 200), (method, path)
                assert "Bearer" not in answer.headers.get("www-authenticate", ""), (method, path)
                continue
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "Bearer" in answer.headers["www-authenticate"]
            assert "loopwise workforce token create" in answer.json()["error"]["message"]
            page = anonymous.request(method, path, headers={"Accept": "text/html", **bearer("lw_made-up")})
            assert page.status_code in (303, 401), (method, path)
        # a browser asking for a page is sent to sign in, and comes back after
        page = anonymous.get("/console/alerts?status=open", headers={"Accept": "text/html"})
        assert (
            page.status_code == 303
            and page.headers["location"] == "/signin?next=%2Fconsole%2Falerts%3Fstatus%3Dopen"
        )
        health = anonymous.get("/healthz").json()  # says nothing about the endpoints
        assert health["status"] == "ok" and set(health) == {"status", "duties"}
        assert set(health["duties"]) <= set(DUTIES)  # the background duties this server runs now


def test_each_role_reaches_what_its_permissions_allow_and_nothing_else(
    sqlite_store: Store, server: tuple[str, object]
) -> None:
    url, _ = server
    service.create_worker(sqlite_store, "spare@example.com", role="service")
    spare = service.create_token(sqlite_store, "spare@example.com", "spare")  # id 1: the one DELETE revokes
    tokens = {"admin": admin_token(sqlite_store)}
    for role in ROLES[1:]:
        service.create_worker(sqlite_store, f"{role}@example.com", role=role)
        tokens[role] = service.create_token(sqlite_store, f"{role}@example.com", "matrix")
    for role, token in tokens.items():
        with httpx.Client(base_url=url, headers=bearer(token)) as client:
            for (method, path), who in ROUTES.items():
                if who == EVERYONE or (method, path) in {
                    ("POST", "/signout"),
                    ("POST", "/account/password"),
                }:
                    continue
                status = client.request(method, path).status_code
                if role in who:
                    assert status not in (401, 403), (role, method, path, status)
                else:
                    assert status == 403, (role, method, path, status)
        with httpx.Client(base_url=url, headers={**bearer(token), "Accept": "text/html"}) as client:
            page = client.get("/console/endpoints")
            allowed = "observe" in ROLE_PERMISSIONS[role]
            assert page.status_code == (200 if allowed else 403)
            if not allowed:
                assert "may not do this" in page.text and page.headers["content-type"].startswith("text/html")
    # the admin's DELETE /api/v1/workforce/tokens/1 revoked the spare token, and the others' were refused
    assert httpx.get(f"{url}/api/v1/me", headers=bearer(spare)).status_code == 401


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_a_worker_signs_in_changes_the_temporary_password_and_signs_out(store: Store) -> None:
    ensure_admin(store)
    worker, temporary = service.create_worker(store, "Ann@Example.com")
    with (
        background_server(store, credentials_ttl_s=0.2) as (url, _),
        httpx.Client(base_url=url, headers={"Accept": "text/html"}) as browser,
    ):
        wrong = browser.post("/signin", data={"email": "ann@example.com", "password": "nope-nope-nope"})
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        signed = browser.post(
            "/signin", data={"email": "ann@example.com", "password": temporary, "next": "//evil.example/x"}
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/account/password"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "lw_session=" in cookie
        # until the temporary password is changed, nothing else opens
        assert browser.get("/console/endpoints").headers["location"] == "/account/password"
        assert browser.get("/api/v1/me").json()["must_change_password"] is True
        form = browser.get("/account/password")
        new = {"current": temporary, "new": "my own passw0rd here", "confirm": "my own passw0rd here"}
        assert browser.post("/account/password", data=new).status_code == 403  # no CSRF token
        forged = browser.post("/account/password", data={**new, "csrf_token": "forged"})
        assert forged.status_code == 403 and service.sign_in(store, "ann@example.com", temporary)
        changed = browser.post("/account/password", data={**new, "csrf_token": _csrf(form)})
        assert changed.status_code == 303 and changed.headers["location"] == "/label"
        me = browser.get("/api/v1/me").json()
        assert me == {
            "email": "ann@example.com",
            "name": "ann",
            "role": "worker",
            "teams": [],
            "via": "session",
            "must_change_password": False,
        }
        assert browser.get("/console/endpoints").status_code == 403  # a worker's role
        # another application's malformed cookie on the same host does not sign anyone out
        session = browser.cookies["lw_session"]
        odd = {"Cookie": f'other="unterminated; bad cookie; lw_session={session}'}
        assert httpx.get(f"{url}/api/v1/me", headers=odd).json()["email"] == "ann@example.com"
        # a JSON call from the page sends the token in a header instead of a form field
        assert browser.post("/signout").status_code == 403
        out = browser.post("/signout", headers={"X-CSRF-Token": _csrf(browser.get("/account/password"))})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert browser.get("/api/v1/me").status_code == 401
        # the admin lands on the console; an account that is disabled is shut out at once
        again = browser.post(
            "/signin",
            data={
                "email": "ann@example.com",
                "password": "my own passw0rd here",
                "next": "https://evil.example",
            },
        )
        assert again.headers["location"] == "/label"  # never sent on to another site
        assert browser.get("/api/v1/me").status_code == 200
        service.set_disabled(store, "ann@example.com")
        time.sleep(0.3)  # what the server keeps of a session lives credentials_ttl_s
        assert browser.get("/api/v1/me").status_code == 401
        admin = browser.post("/signin", data={"email": "admin@example.com", "password": ADMIN_PASSWORD})
        assert admin.headers["location"] == "/console/labeling"
        assert worker.email == "ann@example.com"


def test_revoked_tokens_stop_working_and_guessing_is_slowed(sqlite_store: Store) -> None:
    token = admin_token(sqlite_store)
    with (
        background_server(sqlite_store, credentials_ttl_s=0.2) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/api/v1/me", headers=bearer(token)).json()["via"] == "token"
        name = next(iter(service_token_names(sqlite_store)))
        assert service.revoke_token(sqlite_store, "admin@example.com", name)
        time.sleep(0.3)
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
        assert client.get("/api/v1/me", headers={"Authorization": f"Basic {token}"}).status_code == 401
        # from one address: at most 20 failed sign-ins in five minutes, whichever emails they try
        statuses = [
            client.post("/signin", data={"email": f"guess{i}@example.com", "password": "x" * 12}).status_code
            for i in range(21)
        ]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429
        refused = client.post("/signin", data={"email": "admin@example.com", "password": ADMIN_PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        # a form posted from another site is refused
        other = client.post(
            "/signin",
            data={"email": "admin@example.com", "password": ADMIN_PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
        assert other.status_code == 403


def service_token_names(store: Store) -> set[str]:
    with store.uow() as uow:
        admin = uow.workforce.get("admin@example.com")
        return uow.workforce.token_names(admin.id)


def test_requests_that_miss_the_credentials_cache_at_once_share_one_lookup(sqlite_store: Store) -> None:
    from loopwise.api.auth import Credentials

    token = admin_token(sqlite_store)
    credentials = Credentials(sqlite_store, ttl_s=60)
    lookups: list[str] = []
    real = credentials._lookup

    def counted(via: str, secret: str, key: str) -> object:
        lookups.append(key)
        time.sleep(0.2)  # a slow database: the other requests arrive while it runs
        return real(via, secret, key)  # type: ignore[arg-type]

    credentials._lookup = counted  # type: ignore[assignment,method-assign]

    async def many() -> list[object]:
        return await asyncio.gather(*(credentials.find("token", token) for _ in range(20)))

    found = run_in_own_loop(many())
    assert len(lookups) == 1 and all(f is not None and f.worker.email == "admin@example.com" for f in found)  # type: ignore[attr-defined]
    assert run_in_own_loop(credentials.find("token", "lw_nothing")) is None and len(lookups) == 2


def run_in_own_loop(coroutine: Any) -> Any:
    """``asyncio.run`` in a thread of its own: the session's Playwright browser keeps an event loop
    running in the main thread once a browser test has run, and asyncio.run refuses to nest in it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)
