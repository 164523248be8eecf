"""Signing a delivery and checking its signature (HMAC-SHA256, the shape Stripe uses), and the URL as
non-admins see it. Pure functions: no I/O, no store."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from loopwise.errors import WebhookSignatureError

SIGNATURE_HEADER = "X-Loopwise-Signature"
EVENT_HEADER = "X-Loopwise-Event"
DELIVERY_HEADER = "X-Loopwise-Delivery"
SECRET_PREFIX = "whsec_"
#: how old a signature's time may be, either way, before :func:`verify` refuses it
TOLERANCE_S = 300


def new_secret() -> str:
    """A new webhook secret (256 bits), ``whsec_`` and URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Loopwise-Signature`` value of ``body`` sent at ``timestamp`` (default: now)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: str,
    body: bytes | str,
    header: str | None,
    tolerance_s: float = TOLERANCE_S,
    *,
    now: float | None = None,
) -> None:
    """Check a delivery's ``X-Loopwise-Signature`` ``header`` against the raw ``body`` and the webhook's
    ``secret``; returns None when it is good and raises :class:`loopwise.errors.WebhookSignatureError`
    (saying why) when the header is missing or malformed, no ``v1`` signature matches, or its time is
    more than ``tolerance_s`` seconds from ``now`` (default: the clock). Several ``v1=`` values are
    accepted (any one matching is enough)."""
    if not secret:
        raise WebhookSignatureError("no secret to check the signature with: give the webhook's secret")
    if not header:
        raise WebhookSignatureError(f"the delivery has no {SIGNATURE_HEADER} header")
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} is not 't=<unix time>,v1=<hex>': {header[:200]!r}")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise WebhookSignatureError(
            f"the signature's time is {abs(age):.0f} s from now (more than {tolerance_s:.0f} s): "
            "a replay, or a clock that is off"
        )
    expected = _mac(secret, timestamp, raw)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookSignatureError("the signature does not match the body: not from loopwise, or altered")


def redact(url: str) -> str:
    """The URL as non-admins see it: scheme and host (and port), the path and query hidden
    (``https://hooks.example.com/…``); user info is dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…" if parts.scheme and host else "…"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "new_secret",
    "redact",
    "sign",
    "verify",
]
