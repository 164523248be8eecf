"""Webhooks are signed and their URLs are secrets: ``loopwise.webhooks`` signs each delivery (Stripe's
``t=...,v1=...`` shape), a real receiver on 127.0.0.1 verifies it and refuses a tampered body, both
outboxes (monitoring's alerts, review's loop events) deliver through it, and only admins see a URL
whole (API on a real server, CLI)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_helpers import admin_token, bearer
from cli_helpers import run
from loopwise import webhooks
from loopwise.app import background_server
from loopwise.errors import WebhookSignatureError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.review import service as review
from loopwise.storage import Store
from loopwise.workforce import service as workforce

HOOK = "https://hooks.example.com/services/T0001/B0002/XyZsecretPath?token=abc123"


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks every delivery with ``webhooks.verify`` and answers
    204 when it is good, 400 when it is not."""

    def __init__(self) -> None:
        self.secret = ""
        self.accepted: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.refused: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    webhooks.verify(receiver.secret, body, self.headers.get("X-Loopwise-Signature"))
                except WebhookSignatureError as exc:
                    receiver.refused.append(str(exc))
                    self.send_response(400)
                else:
                    receiver.accepted.append((dict(self.headers), json.loads(body)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def test_a_signature_verifies_and_nothing_else_does() -> None:
    secret = webhooks.new_secret()
    body = b'{"type":"loopwise.alert"}'
    header = webhooks.sign(secret, body, timestamp=1_800_000_000)
    assert header.startswith("t=1800000000,v1=") and len(header.split("v1=")[1]) == 64
    webhooks.verify(secret, body, header, now=1_800_000_100)
    webhooks.verify(secret, body.decode(), f"{header},v1={'0' * 64}", now=1_800_000_000)  # any v1 matching
    cases = {
        "does not match": (secret, body + b" ", header, 1_800_000_000),
        "does not match ": (webhooks.new_secret(), body, header, 1_800_000_000),
        "more than 300 s": (secret, body, header, 1_800_000_301),
        "no X-Loopwise-Signature": (secret, body, None, 1_800_000_000),
        "is not 't=<unix time>": (secret, body, "v1=abc", 1_800_000_000),
        "no secret": ("", body, header, 1_800_000_000),
    }
    for says, (key, sent, signature, now) in cases.items():
        with pytest.raises(WebhookSignatureError, match=says.strip()):
            webhooks.verify(key, sent, signature, now=now)
    # the timestamp is signed too: moving it forward breaks the signature
    moved = header.replace("t=1800000000", "t=1800000200")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        webhooks.verify(secret, body, moved, now=1_800_000_200)


def test_urls_are_redacted_to_their_host() -> None:
    assert webhooks.redact(HOOK) == "https://hooks.example.com/…"
    assert webhooks.redact("http://user:pw@127.0.0.1:8080/x?y=1") == "http://127.0.0.1:8080/…"
    assert webhooks.redact("http://[::1]:9/a") == "http://[::1]:9/…"


def test_a_real_receiver_verifies_deliveries_and_refuses_a_tampered_body(receiver: Receiver) -> None:
    receiver.secret = webhooks.new_secret()
    payload = {"type": "loopwise.alert", "alert": {"id": 7, "endpoint": "reviews"}}
    status = webhooks.deliver(
        receiver.url, receiver.secret, event="loopwise.alert", delivery_id="alert-delivery-1", payload=payload
    )
    assert status == 204 and receiver.accepted[0][1] == payload
    headers = receiver.accepted[0][0]
    assert headers["X-Loopwise-Event"] == "loopwise.alert"
    assert headers["X-Loopwise-Delivery"] == "alert-delivery-1"
    assert headers["Content-Type"] == "application/json"

    def tampering(url: str, body: bytes, sent: dict[str, str]) -> int:
        altered = body.replace(b'"reviews"', b'"other"')
        return httpx.post(url, content=altered, headers=sent).status_code

    refused = webhooks.deliver(
        receiver.url,
        receiver.secret,
        event="loopwise.alert",
        delivery_id="alert-delivery-2",
        payload=payload,
        post=tampering,
    )
    assert refused == 400 and "does not match the body" in receiver.refused[0]


def _answered_loop(store: Store, webhook: str) -> str:
    workforce.create_team(store, "reviewers")
    worker, _ = workforce.create_worker(store, "r@example.com", teams=("reviewers",))
    flow = review.create_flow(
        store, "hooked", team="reviewers", categories=list(COURSE_CATEGORIES), webhook=webhook
    )
    assert flow.webhook_secret and flow.webhook_secret.startswith("whsec_")
    review.start_loop(store, "loop-1", "hooked", {"taskObject": "It is okay"})
    (task,) = labeling.next_tasks(store, worker, flow.job_id)[:1]
    labeling.submit(store, worker, task.assignment_id, "1")
    assert review.describe_loop(store, "loop-1").status == "Completed"
    return flow.webhook_secret


def test_both_outboxes_send_signed_deliveries(store: Store, receiver: Receiver) -> None:
    from loopwise.monitoring.scheduling import add_webhook, deliver_due, record_alerts

    receiver.secret = _answered_loop(store, receiver.url)
    assert review.deliver_events(store) == (1, 0)
    headers, body = receiver.accepted[0]
    assert body["humanLoopName"] == "loop-1" and body["humanLoopStatus"] == "Completed"
    assert headers["X-Loopwise-Event"] == body["type"] == "loopwise.human-loop-status-change"
    assert headers["X-Loopwise-Delivery"].startswith("loop-event-")

    hook, made = add_webhook(store, receiver.url)
    assert made and hook.secret and hook.secret != receiver.secret
    assert add_webhook(store, receiver.url)[1] is False  # the same URL: the same webhook
    assert hook.secret not in repr(hook)
    receiver.secret = hook.secret
    violation = {"check": "data-quality", "constraint": "garbled_rate", "observed": 0.9, "threshold": 0.1}
    report = {
        "endpoint": "reviews",
        "variants": {"A": {"violations": [{**violation, "message": "garbled", "p_value": None}]}},
    }
    assert len(record_alerts(store, report)) == 1
    assert deliver_due(store) == (1, 0)
    headers, body = receiver.accepted[1]
    assert headers["X-Loopwise-Event"] == body["type"] == "loopwise.alert"
    assert headers["X-Loopwise-Alert-Id"] == str(body["alert"]["id"])


def test_only_admins_see_a_webhook_url_whole(sqlite_store: Store, tmp_path: Path) -> None:
    store = sqlite_store
    workforce.create_team(store, "reviewers")
    # a member of the flow's team (flows are scoped by team), but no admin
    workforce.create_worker(store, "obs@example.com", role="service", teams=("reviewers",))
    observer = bearer(workforce.create_token(store, "obs@example.com", "read"))
    admin = bearer(admin_token(store))
    flow = {"name": "hooked", "team": "reviewers", "categories": [{"label": "1"}, {"label": "0"}]}
    with background_server(store) as (url, _), httpx.Client(base_url=url) as client:
        made = client.post("/api/v1/review/flows", json={**flow, "webhook": HOOK}, headers=admin)
        assert made.status_code == 201, made.text
        assert made.json()["webhook"] == HOOK and made.json()["webhook_secret"].startswith("whsec_")
        secret = made.json()["webhook_secret"]
        for path in ("/api/v1/review/flows", "/api/v1/review/flows/hooked"):
            seen = client.get(path, headers=admin)
            assert HOOK in seen.text and secret not in seen.text
            other = client.get(path, headers=observer)
            assert other.status_code == 200 and "https://hooks.example.com/…" in other.text
            assert "XyZsecretPath" not in other.text and "abc123" not in other.text
            assert secret not in other.text
        bad = client.post(
            "/api/v1/review/flows", json={**flow, "name": "other", "webhook": "ftp://x"}, headers=admin
        )
        assert bad.status_code == 400 and "http:// or https://" in bad.json()["error"]["message"]


def test_the_cli_redacts_webhook_urls_unless_asked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = run(home, "monitor", "webhook", "add", HOOK).stdout
    assert "signing secret (shown once): whsec_" in added
    secret = added.split("(shown once): ")[1].split()[0]
    listed = run(home, "monitor", "webhook", "list").stdout
    assert "https://hooks.example.com/…" in listed and "XyZsecretPath" not in listed
    assert HOOK in run(home, "monitor", "webhook", "list", "--reveal").stdout
    again = run(home, "monitor", "webhook", "add", HOOK).stdout
    assert secret not in again and "already" in again
    rotated = run(home, "monitor", "webhook", "rotate-secret", "1").stdout
    assert "whsec_" in rotated and secret not in rotated

    run(home, "workforce", "team", "create", "reviewers")
    flow = run(home, "review", "flow", "create", "hooked", "--team", "reviewers", "--webhook", HOOK).stdout
    assert "webhook signing secret (shown once): whsec_" in flow
    first = flow.split("(shown once): ")[1].split()[0]
    listed = json.loads(run(home, "review", "flow", "list", "--json").stdout)
    assert listed[0]["webhook"] == "https://hooks.example.com/…" and first not in str(listed)
    described = json.loads(run(home, "review", "flow", "describe", "hooked", "--reveal").stdout)
    assert described["webhook"] == HOOK and first not in str(described)
    rotated = run(home, "review", "flow", "rotate-secret", "hooked").stdout
    assert "whsec_" in rotated and first not in rotated
