"""One outbox for every outgoing event: monitoring alerts, human loops' status changes and pipeline runs
are queued in the same table and sent by the same delivery loop, retried with the one backoff policy,
each signed with its webhook's secret, to a real receiver on 127.0.0.1. The upgrade that made the outbox
moves the two old outboxes' rows into it."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from loopwise import webhooks
from loopwise.errors import PipelineError, WebhookSignatureError
from loopwise.labeling import service as labeling
from loopwise.labeling.jobs import COURSE_CATEGORIES
from loopwise.monitoring.scheduling import add_webhook, record_alerts, rotate_webhook_secret
from loopwise.pipelines import operations
from loopwise.pipelines import service as pipelines
from loopwise.review import service as review
from loopwise.storage import Store
from loopwise.storage.engine import build_engine
from loopwise.storage.migrate import upgrade
from loopwise.workforce import service as workforce

VIOLATION = {"check": "data-quality", "constraint": "garbled_rate", "observed": 0.9, "threshold": 0.1}
REPORT = {
    "endpoint": "reviews",
    "variants": {"A": {"violations": [{**VIOLATION, "message": "garbled", "p_value": None}]}},
}


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class Receiver:
    """A webhook receiver on 127.0.0.1: each path has its secret; every POST is verified with
    ``webhooks.verify`` (400 when forged), and the first ``fail_next`` good ones are answered 503."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.fail_next = 0
        self.seen: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    webhooks.verify(
                        receiver.secrets[self.path], raw, self.headers.get("X-Loopwise-Signature")
                    )
                    status = 204
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        status = 503
                except WebhookSignatureError:
                    status = 400
                receiver.seen.append(Received(self.path, dict(self.headers), json.loads(raw), status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[Received]:
        return [r for r in self.seen if r.status == 204]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _alert_hook(store: Store, receiver: Receiver) -> None:
    hook, _ = add_webhook(store, f"{receiver.base}/alerts")
    assert hook.secret
    receiver.secrets["/alerts"] = hook.secret


def test_a_failing_delivery_is_retried_with_backoff_until_it_is_taken(
    store: Store, receiver: Receiver
) -> None:
    _alert_hook(store, receiver)
    (alert,) = record_alerts(store, REPORT)
    receiver.fail_next = 2
    t0 = datetime.now(UTC)
    assert webhooks.deliver_due(store, now=t0) == (0, 1)
    assert webhooks.deliver_due(store, now=t0 + timedelta(seconds=1)) == (0, 0)  # backing off 2 s
    t1 = t0 + timedelta(seconds=2)
    assert webhooks.deliver_due(store, now=t1) == (0, 1)
    assert webhooks.deliver_due(store, now=t1 + timedelta(seconds=3)) == (0, 0)  # then 4 s
    assert webhooks.deliver_due(store, now=t1 + timedelta(seconds=4)) == (1, 0)
    assert webhooks.deliver_due(store, now=t1 + timedelta(hours=2)) == (0, 0)  # taken: never again

    assert [r.status for r in receiver.seen] == [503, 503, 204]  # every attempt's signature verified
    assert len({r.headers["X-Loopwise-Delivery"] for r in receiver.seen}) == 1  # one delivery, retried
    taken = receiver.seen[-1]
    assert taken.headers["X-Loopwise-Event"] == taken.body["type"] == "loopwise.alert"
    assert taken.headers["X-Loopwise-Alert-Id"] == str(alert.id) == str(taken.body["alert"]["id"])
    with store.uow() as uow:
        (record,) = uow.monitoring.deliveries(alert.id)
    assert record["attempts"] == 3 and record["delivered_at"] is not None
    assert record["last_error"] == "HTTP 503"


def test_the_retry_policy_is_exponential_and_bounded() -> None:
    from loopwise.webhooks.retry import MAX_ATTEMPTS, backoff_s, next_attempt_at

    assert [backoff_s(n) for n in range(1, 5)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(20) == 3600.0 and MAX_ATTEMPTS == 12
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_attempt_at(3, now) == now + timedelta(seconds=8)


def _answered_loop(store: Store, url: str) -> str:
    workforce.create_team(store, "reviewers")
    worker, _ = workforce.create_worker(store, "r@example.com", teams=("reviewers",))
    flow = review.create_flow(
        store, "hooked", team="reviewers", categories=list(COURSE_CATEGORIES), webhook=url
    )
    review.start_loop(store, "loop-1", "hooked", {"taskObject": "It is okay"})
    (task,) = labeling.next_tasks(store, worker, flow.job_id)[:1]
    labeling.submit(store, worker, task.assignment_id, "1")
    assert review.describe_loop(store, "loop-1").status == "Completed"
    assert flow.webhook_secret
    return flow.webhook_secret


def _pipeline_runs(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """One run that succeeds and one that fails, of a one-step pipeline."""
    outcomes = iter([None, PipelineError("the model is gone")])

    def step(store: Store, inputs: dict[str, Any], log: Any) -> dict[str, Any]:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return {"model": "m:1"}

    real = operations.OPERATIONS["set-alias"]
    monkeypatch.setitem(operations.OPERATIONS, "set-alias", dataclasses.replace(real, run=step))
    spec = tmp_path / "p.yaml"
    spec.write_text("name: p\nsteps:\n  - name: alias\n    uses: set-alias\n    with: {model: m, alias: x}\n")
    pipelines.create_pipeline(store, spec)
    succeeded = pipelines.run_pipeline(store, "p")
    failed = pipelines.run_pipeline(store, "p")
    assert (succeeded.status, failed.status) == ("Succeeded", "Failed")
    return succeeded.id, failed.id


def test_alerts_loop_events_and_pipeline_runs_go_through_one_outbox(
    store: Store, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.secrets["/loops"] = _answered_loop(store, f"{receiver.base}/loops")
    _alert_hook(store, receiver)
    (alert,) = record_alerts(store, REPORT)
    succeeded, failed = _pipeline_runs(store, tmp_path, monkeypatch)

    assert webhooks.deliver_due(store) == (4, 0)  # one loop, every kind
    assert all(r.status == 204 for r in receiver.seen), receiver.seen
    by_event: dict[str, list[Received]] = {}
    for r in receiver.seen:
        assert r.headers["X-Loopwise-Event"] == r.body["type"]
        by_event.setdefault(r.body["type"], []).append(r)
    assert sorted(by_event) == [
        "loopwise.alert",
        "loopwise.human-loop-status-change",
        "loopwise.pipeline-run-status-change",
    ]
    (loop,) = by_event["loopwise.human-loop-status-change"]
    assert loop.path == "/loops" and loop.body["humanLoopName"] == "loop-1"
    assert loop.body["humanLoopStatus"] == "Completed"
    assert loop.headers["X-Loopwise-Delivery"].startswith("loop-event-")
    (sent,) = by_event["loopwise.alert"]
    assert sent.path == "/alerts" and sent.body["alert"]["id"] == alert.id
    runs = {r.body["runId"]: r for r in by_event["loopwise.pipeline-run-status-change"]}
    assert set(runs) == {succeeded, failed} and all(r.path == "/alerts" for r in runs.values())
    assert runs[succeeded].body["runStatus"] == "Succeeded" and runs[succeeded].body["error"] is None
    assert runs[failed].body["runStatus"] == "Failed"
    assert runs[failed].body["error"] == "step alias failed: the model is gone"
    assert runs[failed].body["pipeline"] == "p" and runs[failed].body["trigger"] == "manual"
    assert len({r.headers["X-Loopwise-Delivery"] for r in receiver.seen}) == 4
    with store.uow() as uow:
        assert [d["delivered_at"] is not None for d in uow.webhooks.deliveries(f"pipeline-run:{failed}")] == [
            True
        ]
        assert uow.review.events("loop-1")[0]["attempts"] == 1


def test_a_new_secret_signs_what_waits_and_a_deleted_webhook_drops_it(
    store: Store, receiver: Receiver
) -> None:
    _alert_hook(store, receiver)
    record_alerts(store, REPORT)
    rotated = rotate_webhook_secret(store, 1)
    assert rotated.secret and rotated.secret != receiver.secrets["/alerts"]
    receiver.secrets["/alerts"] = rotated.secret
    assert webhooks.deliver_due(store) == (1, 0)
    record_alerts(store, REPORT)
    with store.uow() as uow:  # a deleted webhook's deliveries go with it
        uow.monitoring.delete_webhook(1)
    assert webhooks.deliver_due(store) == (0, 0) and len(receiver.seen) == 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'loopwise.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    built = build_engine(url)
    yield built
    built.dispose()


def test_the_upgrade_moves_both_old_outboxes_into_one(engine: Engine) -> None:
    upgrade(engine, "0015")
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhooks (id, url, secret, created_at) VALUES (3, 'http://h/a', 'whsec_a', :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                'INSERT INTO alerts (id, endpoint, variant, "check", "constraint", observed, threshold, '
                "message, p_value, status, created_at) VALUES "
                "(7, 'reviews', 'A', 'data-quality', 'garbled_rate', 0.9, 0.1, 'garbled', NULL, 'open', :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO alert_deliveries (id, alert_id, webhook_id, attempts, next_attempt_at, "
                "last_error) VALUES (5, 7, 3, 2, :at, 'HTTP 503')"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO human_loop_events (id, loop_name, url, secret, body, attempts, next_attempt_at, "
                "delivered_at) VALUES (9, 'loop-1', 'http://h/l', 'whsec_l', :body, 1, :at, :at)"
            ),
            {"at": at, "body": json.dumps({"type": "loopwise.human-loop-status-change", "x": 1})},
        )
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT delivery_id, event, subject, webhook_id, url, secret, body, headers, attempts, "
                "last_error, delivered_at FROM webhook_deliveries ORDER BY id"
            )
        ).all()
    alert_row, loop_row = rows
    assert alert_row[:6] == ("alert-delivery-5", "loopwise.alert", "alert:7", 3, "http://h/a", "whsec_a")
    body = alert_row[6] if isinstance(alert_row[6], dict) else json.loads(alert_row[6])
    assert body["type"] == "loopwise.alert" and body["alert"]["id"] == 7
    assert body["alert"]["constraint"] == "garbled_rate" and body["alert"]["created_at"] == at.isoformat()
    headers = alert_row[7] if isinstance(alert_row[7], dict) else json.loads(alert_row[7])
    assert headers == {"X-Loopwise-Alert-Id": "7"}
    assert alert_row[8:10] == (2, "HTTP 503") and alert_row[10] is None
    assert loop_row[:6] == (
        "loop-event-9",
        "loopwise.human-loop-status-change",
        "human-loop:loop-1",
        None,
        "http://h/l",
        "whsec_l",
    )
    assert loop_row[8] == 1 and loop_row[10] is not None
