"""Outgoing webhooks: the one place that signs and POSTs an event, and the check receivers run.

Every delivery is a ``POST`` of a JSON body with these headers:

- ``X-Loopwise-Event``: what happened (``loopwise.alert``, ``loopwise.human-loop-status-change``);
- ``X-Loopwise-Delivery``: the delivery's id, the same on every retry (deliveries are at least once: a
  receiver drops an id it has seen);
- ``X-Loopwise-Signature``: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` keyed with the
  webhook's secret (the UTF-8 bytes of the whole ``whsec_...`` string), the shape Stripe uses: the time
  is signed too, so a captured delivery cannot be replayed after ``tolerance_s``.

A webhook's secret is made when the webhook is (:func:`new_secret`) and shown once to the admin who made
it; the server keeps it to sign. A receiver checks each delivery with :func:`verify` on the raw body
(before parsing it)::

    from loopwise.webhooks import verify
    verify(secret, request_body_bytes, request.headers["X-Loopwise-Signature"])  # raises when forged

A webhook's URL is a secret too (it often holds a token): :func:`redact` is what non-admins see.
Monitoring's alert outbox and review's human-loop outbox both deliver through :func:`deliver`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from loopwise.errors import WebhookSignatureError

SIGNATURE_HEADER = "X-Loopwise-Signature"
EVENT_HEADER = "X-Loopwise-Event"
DELIVERY_HEADER = "X-Loopwise-Delivery"
SECRET_PREFIX = "whsec_"
#: how old a signature's time may be, either way, before :func:`verify` refuses it
TOLERANCE_S = 300

#: sends one delivery: (url, body, headers) -> the answer's HTTP status; raises when nothing answered
Post = Callable[[str, bytes, dict[str, str]], int]


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


def http_post(timeout_s: float = 5.0) -> Post:
    """A :data:`Post` over httpx that does not follow redirects (a redirect is not a delivery)."""
    import httpx

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        return httpx.post(url, content=body, headers=headers, timeout=timeout_s).status_code

    return post


def deliver(
    url: str,
    secret: str | None,
    *,
    event: str,
    delivery_id: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    post: Post | None = None,
    timeout_s: float = 5.0,
) -> int:
    """POST ``payload`` (as JSON) to ``url``, signed with ``secret`` (unsigned only for a webhook made
    before signing had one: there is no key), with the event and delivery headers and any extra
    ``headers``; returns the answer's status. Raises what ``post`` raises when nothing answered."""
    body = orjson.dumps(payload)
    sent = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        **(headers or {}),
    }
    if secret:
        sent[SIGNATURE_HEADER] = sign(secret, body)
    return (post or http_post(timeout_s))(url, body, sent)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "Post",
    "deliver",
    "http_post",
    "new_secret",
    "redact",
    "sign",
    "verify",
]
