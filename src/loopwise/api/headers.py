"""The browser security headers of every response the server makes (see docs/security.md).

Every HTML page gets a Content-Security-Policy that runs only the server's own script files (no inline
script, no inline style, no plugins, no framing, forms and ``<base>`` to this origin only), with
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and ``X-Frame-Options: DENY`` for
browsers that predate ``frame-ancestors``. Every other response (JSON, scripts, CSS, metrics) gets
``nosniff``, so a browser never runs a JSON answer as a page or a script.

:class:`SecurityHeadersMiddleware` adds them to what the app answers; the middlewares that answer by
themselves ahead of it (:mod:`loopwise.api.auth`'s refusals, the invocations fast path) add
:func:`headers_for` / :data:`NOSNIFF` to their own headers. A response that sets a header already keeps
its own value.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the policy of every HTML page of the console, the labeling and the review UI
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's API explorers (``/docs``, ``/redoc``, admins only) are pages of inline script and a CDN's
#: files: they keep the framing, form and plugin rules, with scripts and styles from that CDN
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})

NOSNIFF = (b"x-content-type-options", b"nosniff")
_PAGE = (NOSNIFF, (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"))
PAGE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    *_PAGE,
)
DOCS_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-security-policy", DOCS_POLICY.encode()), *_PAGE)
OTHER_HEADERS: tuple[tuple[bytes, bytes], ...] = (NOSNIFF,)


def headers_for(content_type: bytes, path: str = "") -> tuple[tuple[bytes, bytes], ...]:
    """The security headers of a response of ``content_type`` (the header's raw value) to ``path``."""
    if content_type[:9].lower() != b"text/html":
        return OTHER_HEADERS
    return DOCS_HEADERS if path in DOCS_PATHS else PAGE_HEADERS


def with_security_headers(headers: list[tuple[bytes, bytes]], path: str = "") -> list[tuple[bytes, bytes]]:
    """``headers`` (raw, lower-case names) with the security headers they lack added."""
    content_type = b""
    present = set()
    for name, value in headers:
        present.add(name.lower())
        if name.lower() == b"content-type":
            content_type = value
    extra = [header for header in headers_for(content_type, path) if header[0] not in present]
    return [*headers, *extra] if extra else headers


class SecurityHeadersMiddleware:
    """Pure ASGI: adds :func:`headers_for` to the start of every HTTP response of the app it wraps (a
    ``BaseHTTPMiddleware`` would put a task and a queue on every request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", ())), path)
            await send(message)

        await self.app(scope, receive, send_secured)
