"""Credentials for tests that talk to a real server: an admin's API token, a browser signed in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from loopwise.storage import Store
from loopwise.workforce.service import create_admin, create_token, normal_email

#: where browser tests keep their screenshots (kept by CI as test artifacts)
ARTIFACTS = Path(
    os.environ.get("LOOPWISE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an-Admin-passw0rd-for-tests"


def ensure_admin(store: Store) -> str:
    """The tests' admin (made on first use); returns its email."""
    with store.uow() as uow:
        missing = uow.workforce.find(normal_email(ADMIN_EMAIL)) is None
    if missing:
        create_admin(store, ADMIN_EMAIL, ADMIN_PASSWORD)
    return ADMIN_EMAIL


def admin_token(store: Store) -> str:
    """A new API token of the tests' admin."""
    return create_token(store, ensure_admin(store), f"test-{secrets.token_hex(4)}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(page: Any, base: str, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    """Sign the browser ``page`` in on the server at ``base`` through the sign-in form."""
    page.goto(f"{base}/signin")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.click('main button[type="submit"]')
    page.wait_for_load_state()


#: makes every Content-Security-Policy violation of a page a console error the watcher below sees
#: (Playwright's init scripts run outside the page's policy)
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => console.error(
    `Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`))"""


def csp_violations(page: Any) -> list[str]:
    """Record the Content Security Policy violations of the browser ``page`` from now on (Chromium's
    console messages about the policy and the document's ``securitypolicyviolation`` events); returns the
    list they are added to, for the test to assert empty."""
    found: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: found.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return found
