"""Sessions end with a password change or reset, and admins list and revoke API tokens, over HTTP on a
real server on 127.0.0.1 (SQLite and PostgreSQL). The server keeps credentials for a minute here, so
every refusal below comes from the cache being forgotten, not from it running out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from auth_helpers import admin_token, bearer, ensure_admin
from cli_helpers import run
from loopwise.app import background_server
from loopwise.errors import AuthError
from loopwise.storage import Store
from loopwise.workforce import service

NEW = "ann's new passw0rd"


def _signed_in(url: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=url, headers={"Accept": "text/html"})
    signed = browser.post("/signin", data={"email": "ann@example.com", "password": password})
    assert signed.status_code == 303, signed.text
    assert browser.get("/api/v1/me").status_code == 200  # now in the server's credentials cache
    return browser


def _csrf(browser: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/account/password").text)
    assert found
    return found.group(1)


def test_a_password_change_or_reset_ends_the_accounts_other_sessions(store: Store) -> None:
    _, temporary = service.create_worker(store, "ann@example.com")
    admin = bearer(admin_token(store))
    with background_server(store, credentials_ttl_s=60) as (url, _):
        here, elsewhere = _signed_in(url, temporary), _signed_in(url, temporary)
        form = {"current": temporary, "new": NEW, "confirm": NEW, "csrf_token": _csrf(here)}
        assert here.post("/account/password", data=form).status_code == 303
        assert here.get("/api/v1/me").json()["must_change_password"] is False  # this one stays in
        assert elsewhere.get("/api/v1/me").status_code == 401  # the other is out, at once
        assert elsewhere.get("/label").headers["location"].startswith("/signin")

        # an admin's reset ends every session, and the temporary password it answers signs in
        again = _signed_in(url, NEW)
        reset = httpx.post(f"{url}/api/v1/workforce/workers/ann@example.com/password-reset", headers=admin)
        assert reset.status_code == 200 and reset.json()["email"] == "ann@example.com"
        assert here.get("/api/v1/me").status_code == 401 and again.get("/api/v1/me").status_code == 401
        fresh = _signed_in(url, reset.json()["temporary_password"])
        assert fresh.get("/api/v1/me").json()["must_change_password"] is True
        unknown = httpx.post(f"{url}/api/v1/workforce/workers/bob@example.com/password-reset", headers=admin)
        assert unknown.status_code == 404 and "no worker" in unknown.json()["error"]["message"]
        for client in (here, elsewhere, again, fresh):
            client.close()

    # outside a server (the CLI's `workforce password`): every session ends, none is kept
    worker = service.sign_in(store, "ann@example.com", reset.json()["temporary_password"])
    first, second = service.start_session(store, worker), service.start_session(store, worker)
    service.change_password(
        store, "ann@example.com", reset.json()["temporary_password"], NEW, keep_session=None
    )
    for session in (first, second):
        with pytest.raises(AuthError, match="sign in again"):
            service.session_worker(store, session.token)


def test_admins_list_and_revoke_api_tokens(store: Store) -> None:
    ensure_admin(store)
    service.create_worker(store, "ann@example.com", role="service")
    etl = service.create_token(store, "ann@example.com", "etl")
    bot = service.create_token(store, "ann@example.com", "bot")
    admin = bearer(admin_token(store))
    with (
        background_server(store, credentials_ttl_s=60) as (url, _),
        httpx.Client(base_url=url, headers=admin) as client,
    ):
        assert client.get("/api/v1/me", headers=bearer(etl)).status_code == 200  # used, and cached
        listed = client.get("/api/v1/workforce/tokens", params={"email": "Ann@Example.com"})
        assert listed.status_code == 200
        tokens = {t["name"]: t for t in listed.json()}
        assert set(tokens) == {"etl", "bot"}
        assert tokens["etl"]["last_used_at"] is not None and tokens["bot"]["last_used_at"] is None
        assert set(tokens["etl"]) == {"id", "email", "name", "created_at", "last_used_at", "revoked_at"}
        everyone = client.get("/api/v1/workforce/tokens").text
        assert "admin@example.com" in everyone and "ann@example.com" in everyone
        with store.uow() as uow:
            digests = [t.digest for t in uow.workforce.tokens()]
        assert not any(secret in everyone for secret in (etl, bot, admin["Authorization"][7:], *digests))
        # a non-admin may not look
        assert client.get("/api/v1/workforce/tokens", headers=bearer(bot)).status_code == 403

        revoked = client.delete(f"/api/v1/workforce/tokens/{tokens['etl']['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert client.get("/api/v1/me", headers=bearer(etl)).status_code == 401  # at once
        assert client.get("/api/v1/me", headers=bearer(bot)).status_code == 200
        twice = client.delete(f"/api/v1/workforce/tokens/{tokens['etl']['id']}")
        assert twice.status_code == 200 and twice.json()["already_revoked"] is True
        assert client.delete("/api/v1/workforce/tokens/999999").status_code == 404
        refused = client.delete("/api/v1/workforce/tokens/etl")
        assert refused.status_code == 400 and "token_id" in refused.json()["error"]["message"]
        huge = client.delete("/api/v1/workforce/tokens/99999999999999999999")
        assert huge.status_code == 400 and "token_id" in huge.json()["error"]["message"]
        nul = client.post("/api/v1/workforce/workers/a%00b@example.com/password-reset")
        assert nul.status_code == 400
        nobody = client.get("/api/v1/workforce/tokens", params={"email": "nobody@example.com"})
        assert nobody.status_code == 404 and "workforce worker list" in nobody.json()["error"]["message"]


def test_the_token_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "workforce", "admin", "root@shop.example", "--password-stdin", input="correct horse battery\n")
    run(home, "workforce", "worker", "create", "ann@shop.example", "--role", "service")
    made = run(home, "workforce", "token", "create", "ann@shop.example", "--name", "etl").stdout
    secret = made.split("(shown once): ")[1].split()[0]
    run(home, "workforce", "token", "create", "root@shop.example", "--name", "ops")
    listed = json.loads(run(home, "workforce", "token", "list", "--json").stdout)
    assert [(t["email"], t["name"], t["revoked_at"]) for t in listed] == [
        ("ann@shop.example", "etl", None),
        ("root@shop.example", "ops", None),
    ]
    table = run(home, "workforce", "token", "list", "ann@shop.example").stdout
    assert "etl" in table and "ops" not in table and "never" in table and secret not in table
    revoked = run(home, "workforce", "token", "revoke", "--id", str(listed[0]["id"])).stdout
    assert f"token {listed[0]['id']} revoked" in revoked
    assert "revoked" in run(home, "workforce", "token", "list", "ann@shop.example").stdout
    vague = run(home, "workforce", "token", "revoke", "ann@shop.example", check=False)
    assert vague.returncode != 0 and "--name" in vague.stderr
    reset = run(home, "workforce", "worker", "reset-password", "ann@shop.example").stdout
    assert "temporary password (shown once): " in reset and "sessions ended" in reset
