"""Outgoing webhooks: one outbox for every event loopwise sends, and the check receivers run.

Monitoring alerts (``loopwise.alert``), human loops' status changes
(``loopwise.human-loop-status-change``) and pipeline runs that end (``loopwise.pipeline-run-status-change``)
are queued with :func:`enqueue` in the transaction that makes them, and delivered by :func:`deliver_due`
(the server's one delivery duty) until a receiver answers 2xx, retried with exponential backoff
(:mod:`loopwise.webhooks.retry`).

Every delivery is a ``POST`` of a JSON body with these headers:

- ``X-Loopwise-Event``: what happened (the event names above);
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

Modules: ``signing`` (sign, verify, redact), ``delivery`` (one signed POST), ``retry`` (the backoff
policy), ``records`` (what storage takes and returns), ``outbox`` (queue and deliver). Their names load
on first use, so the storage layer can import ``records`` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports

if TYPE_CHECKING:
    from loopwise.webhooks.delivery import Post, deliver, http_post
    from loopwise.webhooks.outbox import deliver_due, enqueue, new_delivery_id
    from loopwise.webhooks.records import Outgoing, PendingDelivery
    from loopwise.webhooks.retry import MAX_ATTEMPTS, backoff_s
    from loopwise.webhooks.signing import (
        DELIVERY_HEADER,
        EVENT_HEADER,
        SECRET_PREFIX,
        SIGNATURE_HEADER,
        TOLERANCE_S,
        new_secret,
        redact,
        sign,
        verify,
    )

_LAZY = {
    "DELIVERY_HEADER": "signing",
    "EVENT_HEADER": "signing",
    "MAX_ATTEMPTS": "retry",
    "Outgoing": "records",
    "PendingDelivery": "records",
    "Post": "delivery",
    "SECRET_PREFIX": "signing",
    "SIGNATURE_HEADER": "signing",
    "TOLERANCE_S": "signing",
    "backoff_s": "retry",
    "deliver": "delivery",
    "deliver_due": "outbox",
    "enqueue": "outbox",
    "http_post": "delivery",
    "new_delivery_id": "outbox",
    "new_secret": "signing",
    "redact": "signing",
    "sign": "signing",
    "verify": "signing",
}

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "MAX_ATTEMPTS",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "Outgoing",
    "PendingDelivery",
    "Post",
    "backoff_s",
    "deliver",
    "deliver_due",
    "enqueue",
    "http_post",
    "new_delivery_id",
    "new_secret",
    "redact",
    "sign",
    "verify",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
