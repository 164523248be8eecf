"""Who the client is, over HTTP on a real server on 127.0.0.1: its socket's address, unless that is a
configured proxy (then the right-most address of X-Forwarded-For that is not one); the sign-in budget
and the lock-out count by it. A lock-out neither says whether an account exists nor shuts its owner out
from every address."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from auth_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, ensure_admin
from cli_helpers import run_process
from loopwise.app import background_server
from loopwise.config import Settings, parse_networks
from loopwise.storage import Store
from loopwise.workforce.service import LOCK_AFTER


def _fail(client: httpx.Client, forwarded: str | None, email: str = "guess@example.com") -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/signin", data={"email": email, "password": "x" * 12}, headers=headers)


def test_a_client_cannot_reset_its_sign_in_budget_with_x_forwarded_for(sqlite_store: Store) -> None:
    with background_server(sqlite_store) as (url, _), httpx.Client(base_url=url) as client:
        statuses = [_fail(client, f"198.51.100.{i}").status_code for i in range(21)]
        assert statuses[:20] == [401] * 20 and statuses[20] == 429


def test_behind_a_configured_proxy_the_forwarded_client_is_counted(sqlite_store: Store) -> None:
    ensure_admin(sqlite_store)
    proxies = parse_networks("127.0.0.1, 10.0.0.0/8")
    with (
        background_server(sqlite_store, forwarded_allow_ips=proxies) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        assert [_fail(client, "203.0.113.5").status_code for _ in range(20)] == [401] * 20
        assert _fail(client, "203.0.113.5").status_code == 429
        # a client's own made-up hops before the real one change nothing; a trusted hop is skipped
        assert _fail(client, "1.2.3.4, 203.0.113.5").status_code == 429
        assert _fail(client, "203.0.113.5, 10.1.2.3").status_code == 429
        assert _fail(client, "203.0.113.6").status_code == 401  # another client behind the proxy

        # lock-out: the pair (email, address), never the account alone
        wrong = {"email": ADMIN_EMAIL, "password": "not the password"}
        right = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        attacker, owner = {"X-Forwarded-For": "192.0.2.66"}, {"X-Forwarded-For": "192.0.2.10"}
        for _ in range(LOCK_AFTER):
            assert client.post("/signin", data=wrong, headers=attacker).status_code == 401
        locked = client.post("/signin", data=right, headers=attacker)
        assert locked.status_code == 401 and "failed attempts in a row" in locked.text
        assert client.post("/signin", data=right, headers=owner).status_code == 303  # the admin gets in

        # the same answer for an unknown email as for a wrong password, locked or not
        def answer(email: str, address: str) -> tuple[int, str]:
            sent = client.post(
                "/signin",
                data={"email": email, "password": "not the password"},
                headers={"X-Forwarded-For": address},
            )
            # the two answers compared may fall either side of a minute: the time the lock ends is not
            # what tells one account from another
            return sent.status_code, re.sub(r"after \d\d:\d\d UTC", "after HH:MM UTC", sent.text).replace(
                email, "EMAIL"
            )

        assert answer(ADMIN_EMAIL, "192.0.2.20") == answer("nobody@example.com", "192.0.2.21")
        for _ in range(LOCK_AFTER):
            answer("nobody@example.com", "192.0.2.21")
        assert answer(ADMIN_EMAIL, "192.0.2.66") == answer("nobody@example.com", "192.0.2.21")


def test_the_proxies_setting_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_networks("") == () and parse_networks(" 10.0.0.1/32 ,::1") == ("10.0.0.1", "::1")
    with pytest.raises(ValueError, match=r"'proxy\.local' is not an IP address or a CIDR"):
        parse_networks("10.0.0.1,proxy.local")
    monkeypatch.setenv("LOOPWISE_FORWARDED_ALLOW_IPS", "10.0.0.0/8,172.16.0.0/12")
    assert Settings(home=tmp_path).forwarded_allow_ips == "10.0.0.0/8,172.16.0.0/12"
    monkeypatch.setenv("LOOPWISE_FORWARDED_ALLOW_IPS", "everyone")
    with pytest.raises(ValueError, match="LOOPWISE_FORWARDED_ALLOW_IPS: 'everyone'"):
        Settings(home=tmp_path)
    monkeypatch.delenv("LOOPWISE_FORWARDED_ALLOW_IPS")
    refused = run_process(tmp_path / "home", "server", "--forwarded-allow-ips", "10.0.0.300", check=False)
    assert refused.returncode != 0 and "'10.0.0.300' is not an IP address" in refused.stderr
