"""One delivery: a signed ``POST`` of a JSON body. The outbox (:mod:`loopwise.webhooks.outbox`) calls
:func:`deliver` for every queued event; tests and receivers' checks call it directly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from loopwise.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

#: sends one delivery: (url, body, headers) -> the answer's HTTP status; raises when nothing answered
Post = Callable[[str, bytes, dict[str, str]], int]


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


__all__ = ["Post", "deliver", "http_post"]
