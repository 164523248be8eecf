"""Who is calling, and may they: sign-in for every route of the server but the sign-in page.

A caller proves who they are with an API token (``Authorization: Bearer lw_...``, for programs) or the
session cookie a browser gets at sign-in. Every request goes through :class:`AuthMiddleware` before
anything else (the invocations fast path included): it finds the principal, refuses the request when the
route's permission (:data:`POLICY`, first match wins, unknown routes need ``manage``) is not the role's,
and checks the CSRF token of every state-changing request a browser session makes (the ``X-CSRF-Token``
header, or the ``csrf_token`` field of a form). An account whose password is temporary may only change it.

Credentials are looked up in the database once and then kept for ``ttl_s`` seconds (two by default), so
the data plane's hot path pays a hash and a dict lookup; signing out, changing or resetting a password
(which ends the account's other sessions), or revoking a token through this server takes effect at once,
through another process (the CLI, another replica) within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, quote

import orjson
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopwise.api.headers import with_security_headers
from loopwise.errors import AuthError
from loopwise.workforce.records import Permission, Worker

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopwise.storage import Store

SESSION_COOKIE = "lw_session"
CSRF_HEADER = b"x-csrf-token"
CSRF_FIELD = "csrf_token"
#: where a principal is kept in the ASGI scope for the routes (``principal(request)``)
SCOPE_KEY = "loopwise.principal"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_BYTES = 64 * 1024

FORBIDDEN_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed · loopwise</title>'
    '<link rel="stylesheet" href="/static/console.css"></head><body><main><h1>Not allowed</h1>'
    '<p class="refused">{message}</p><p><a href="/">Back to your start page</a></p></main></body></html>'
)

Need = Permission | Literal["public"]


def _methods(names: str | None) -> frozenset[str] | None:
    """The methods a rule names (HEAD goes with GET); None: any method."""
    if names is None:
        return None
    found = set(names.split())
    return frozenset(found | {"HEAD"} if "GET" in found else found)


#: (methods or None for any, path pattern, permission): the first rule that matches a request decides.
#: A route no rule names needs ``manage``; tests/api/test_permission_matrix.py checks who reaches every
#: route (each role, by API token and by session), against a table of its own.
POLICY: tuple[tuple[frozenset[str] | None, re.Pattern[str], Need], ...] = tuple(
    (_methods(methods), re.compile(pattern), need)  # type: ignore[misc]
    for methods, pattern, need in (
        ("GET POST", r"^/signin$", "public"),
        ("GET", r"^/healthz$", "public"),
        ("GET", r"^/static/[\w./-]+$", "public"),
        ("GET", r"^/$", "account"),
        ("POST", r"^/signout$", "account"),
        ("GET POST", r"^/account/password$", "account"),
        ("GET", r"^/api/v1/me$", "account"),
        ("POST", r"^/endpoints/[^/]+/invocations$", "invoke"),
        ("POST", r"^/api/v1/endpoints/[^/]+/(predict|feedback)$", "invoke"),
        ("GET", r"^/api/v1/endpoints(/[^/]+(/(metrics|shadow|bandit|scaling))?)?$", "observe"),
        ("GET", r"^/api/v1/(alerts|monitoring/schedules)$", "observe"),
        ("GET", r"^/metrics$", "observe"),
        ("GET", r"^/console(/endpoints(/[^/]+)?|/alerts|/loop)?$", "observe"),
        ("GET", r"^/label(/jobs/\d+)?$", "label"),
        ("GET", r"^/api/v1/labeling/jobs$", "label"),
        ("GET", r"^/api/v1/labeling/jobs/\d+(/answers)?$", "label"),
        ("POST", r"^/api/v1/labeling/jobs/\d+/(next|undo)$", "label"),
        ("POST", r"^/api/v1/labeling/assignments/\d+/(submit|skip)$", "label"),
        ("GET", r"^/api/v1/labeling/jobs/\d+/reviews$", "review"),
        ("POST", r"^/api/v1/labeling/reviews/\d+$", "review"),
        ("GET", r"^/review/jobs/\d+$", "review"),
        ("POST", r"^/review/reviews/\d+$", "review"),
        ("POST", r"^/api/v1/review/loops$", "invoke"),
        ("POST", r"^/api/v1/review/loops/[^/]+/stop$", "invoke"),
        ("GET", r"^/api/v1/review/loops(/[^/]+(/output)?)?$", "observe"),
        ("GET", r"^/api/v1/review/flows(/[^/]+)?$", "observe"),
        (None, r"^/console/labeling(/.*)?$", "manage"),
        (None, r"^/api/v1/labeling(/.*)?$", "manage"),
    )
)


def required(method: str, path: str) -> Need:
    """The permission a request of ``method`` on ``path`` needs."""
    for methods, pattern, need in POLICY:
        if (methods is None or method in methods) and pattern.match(path):
            return need
    return "manage"


@dataclass(frozen=True)
class Principal:
    """A signed-in caller: the account, how it proved itself, and (for a browser session) the session's
    secret's digest and its CSRF token."""

    worker: Worker
    via: Literal["session", "token"]
    digest: str
    csrf_token: str | None = None


def principal(request: Request) -> Principal:
    """The caller of a route (the middleware let the request through, so there is one)."""
    found = request.scope.get(SCOPE_KEY)
    if found is None:
        raise AuthError("not signed in")
    return found


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Credentials:
    """Sessions and API tokens looked up in the database and kept for ``ttl_s`` seconds."""

    def __init__(self, store: Store, *, ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[Principal | None, float]] = {}
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}

    async def find(self, via: Literal["session", "token"], secret: str) -> Principal | None:
        key = digest(secret)
        now = time.monotonic()
        cached = self._known.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        # one lookup for all the requests that miss at once (a client's parallel connections share a
        # token: without this they all went to the database together and filled the thread pool)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._lookup, via, secret, key))
            self._pending[key] = pending
            try:
                found = await pending
            finally:
                self._pending.pop(key, None)
            if len(self._known) > 10_000:  # bounded: a flood of made-up tokens cannot grow it forever
                self._known.clear()
            self._known[key] = (found, time.monotonic() + self.ttl_s)
            return found
        return await asyncio.shield(pending)

    def _lookup(self, via: Literal["session", "token"], secret: str, key: str) -> Principal | None:
        from loopwise.workforce.service import session_worker, token_worker

        try:
            if via == "token":
                return Principal(token_worker(self.store, secret), "token", key)
            worker, csrf = session_worker(self.store, secret)
            return Principal(worker, "session", key, csrf)
        except AuthError:
            return None

    def forget(self, *, key: str | None = None, worker_id: int | None = None) -> None:
        """Drop what is kept of one secret, or of every secret of one worker (signed out, disabled)."""
        if key is not None:
            self._known.pop(key, None)
        if worker_id is not None:
            for known, (found, _) in list(self._known.items()):
                if found is not None and found.worker.id == worker_id:
                    self._known.pop(known, None)


class SignInLimiter:
    """At most ``limit`` failed sign-ins per client address in ``window_s`` seconds (on top of the lock
    of an (email, address) pair after five failures in a row): a guesser spraying many emails is slowed
    too. The address is the ASGI scope's client: the socket's, or what a configured proxy forwarded.
    The failures are counted in the database (:func:`loopwise.workforce.service.address_wait`), so a
    guesser whose requests a load balancer spreads over several servers meets one budget."""

    def __init__(self, store: Store, limit: int = 20, window_s: float = 300.0) -> None:
        self.store = store
        self.limit, self.window = limit, timedelta(seconds=window_s)

    async def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        from loopwise.workforce.service import address_wait

        return await asyncio.to_thread(address_wait, self.store, client, limit=self.limit, window=self.window)

    async def failed(self, client: str) -> None:
        from loopwise.workforce.service import address_failed

        await asyncio.to_thread(address_failed, self.store, client, window=self.window)


class AuthMiddleware:
    """Authentication, the permission policy and CSRF, in pure ASGI ahead of everything else."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        need = required(method, path)
        if need == "public":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        found = await self._principal(headers)
        if found is None:
            await _refuse_anonymous(scope, send, path)
            return
        worker = found.worker
        if found.via == "session" and worker.must_change_password and need != "account":
            await _refuse(
                scope, send, 403, "PasswordChangeRequired",
                "change your temporary password first (at /account/password)", "/account/password",
            )  # fmt: skip
            return
        if not worker.can(need):
            await _refuse(
                scope, send, 403, "Forbidden", f"the {worker.role} role may not do this (it needs {need!r})"
            )
            return
        if found.via == "session" and method not in SAFE_METHODS:
            checked = await _csrf_checked(headers, receive, found.csrf_token or "")
            if checked is None:
                await _refuse(
                    scope,
                    send,
                    403,
                    "CsrfFailed",
                    "the form's CSRF token is missing or wrong: reload the page",
                )
                return
            receive = checked
        scope[SCOPE_KEY] = found
        await self.app(scope, receive, send)

    async def _principal(self, headers: dict[bytes, bytes]) -> Principal | None:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return None
            return await self.credentials.find("token", secret.strip())
        cookie = headers.get(b"cookie")
        if cookie:
            # Starlette's lenient parser: http.cookies drops every cookie of the header when one of them
            # (another application's on the same host) is malformed, which would sign the user out
            session = cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE)
            if session:
                return await self.credentials.find("session", session)
        return None


async def _csrf_checked(headers: dict[bytes, bytes], receive: Receive, expected: str) -> Receive | None:
    """A ``receive`` that replays the body when the request carries ``expected`` in the CSRF header or
    its form's ``csrf_token`` field; None when it does not."""
    import hmac

    given = headers.get(CSRF_HEADER)
    if given is not None:
        return receive if hmac.compare_digest(given.decode("latin-1"), expected) else None
    content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if content_type != FORM_TYPES[0]:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM_BYTES:
            return None
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    field = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [""])[0]
    if not hmac.compare_digest(field, expected):
        return None
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _wants_page(scope: Scope, path: str) -> bool:
    """A browser asking for a page (redirected to sign-in) rather than a program (answered 401)."""
    if scope["method"] not in SAFE_METHODS or path.startswith(("/api/", "/endpoints/", "/metrics")):
        return False
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    return "text/html" in accept


async def _refuse_anonymous(scope: Scope, send: Send, path: str) -> None:
    if _wants_page(scope, path):
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        await _respond(send, 303, b"", [(b"location", f"/signin?next={quote(target, safe='')}".encode())])
        return
    body = _error(
        "Unauthorized",
        "sign in, or send 'Authorization: Bearer <API token>' (an admin makes one with "
        "`loopwise workforce token create EMAIL --name NAME`)",
    )
    await _respond(
        send, 401, body, [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    )


async def _refuse(
    scope: Scope, send: Send, status: int, kind: str, message: str, page: str | None = None
) -> None:
    if _wants_page(scope, scope["path"]):
        if page is not None:
            await _respond(send, 303, b"", [(b"location", page.encode())])
            return
        document = FORBIDDEN_PAGE.format(message=html.escape(message)).encode()
        await _respond(send, status, document, [(b"content-type", b"text/html; charset=utf-8")])
        return
    await _respond(send, status, _error(kind, message), [(b"content-type", b"application/json")])


def _error(kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": kind, "message": message}})


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = with_security_headers([*headers, (b"content-length", str(len(body)).encode())])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
