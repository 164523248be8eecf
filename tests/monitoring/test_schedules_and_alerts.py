"""Monitoring on a schedule in a real server: violations become alerts, alerts reach a webhook on
127.0.0.1 at least once (a failed POST is retried), and a schedule runs once however many servers claim it
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from test_monitoring_flow import _capture

from auth_helpers import admin_token, bearer
from loopwise.app import background_server
from loopwise.errors import DataFormatError, NotFoundError
from loopwise.monitoring.scheduling import add_webhook, create_schedule, deliver_due, run_due
from loopwise.monitoring.service import create_baseline
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def watched(store: Store, import_small: Callable[[Store], str]) -> Store:
    """Endpoint ``reviews`` (variant A: a TF-IDF model), baseline ``b`` of that model, and garbled
    traffic captured for A."""
    dataset = import_small(store)
    train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    create_endpoint(
        store, "reviews", parse_endpoint_config({"variants": [{"name": "A", "model": "small-tfidf:1"}]})
    )
    create_baseline(store, dataset, "small-tfidf:1", name="b")
    _capture(store, [f"#### {i} $$$ %% {i * 7}" for i in range(60)], variant="A", model_ref="small-tfidf:1")
    return store


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 1) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.fail_first > 0
                receiver.fail_first -= 1
                if not failing:
                    receiver.received.append((self.headers["X-Loopwise-Alert-Id"], body))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def test_scheduled_runs_raise_alerts_that_reach_a_webhook_at_least_once(
    watched: Store, receiver: Receiver
) -> None:
    add_webhook(watched, receiver.url)
    now = datetime.now(UTC)  # a run looks at the hour before it: the captures just written
    schedule = create_schedule(
        watched, "reviews", "b", every="1h", kinds=("data-quality",), action="retrain", now=now
    )
    assert schedule.every_s == 3600 and schedule.window_s == 3600
    assert run_due(watched, now=now - timedelta(seconds=1)) == []  # not yet due
    outcomes = run_due(watched, now=now)
    assert len(outcomes) == 1 and outcomes[0]["alerts"] >= 1, outcomes
    assert run_due(watched, now=now) == []  # claimed: the next run is an hour later
    with watched.uow() as uow:
        alerts = uow.monitoring.alerts(endpoint="reviews")
        (stored,) = uow.monitoring.schedules()
    assert {a.constraint for a in alerts} >= {"garbled_rate"}
    assert all(a.action == "retrain" and a.schedule_id == schedule.id and a.status == "open" for a in alerts)
    assert stored.last_status.startswith("ok:") and stored.next_run_at == now + timedelta(hours=1)

    sent = datetime.now(UTC)
    delivered, failed = deliver_due(watched, now=sent)
    assert (delivered, failed) == (len(alerts) - 1, 1)  # the receiver refused the first POST
    assert deliver_due(watched, now=sent + timedelta(seconds=1)) == (0, 0)  # it waits out its backoff
    assert deliver_due(watched, now=sent + timedelta(seconds=3)) == (1, 0)
    assert sorted(int(i) for i, _ in receiver.received) == sorted(a.id for a in alerts)
    body = receiver.received[0][1]
    assert body["type"] == "loopwise.alert" and body["alert"]["endpoint"] == "reviews"
    with watched.uow() as uow:
        records = [d for a in alerts for d in uow.monitoring.deliveries(a.id)]
    assert sorted(d["attempts"] for d in records) == [1] * (len(alerts) - 1) + [2]
    assert all(d["delivered_at"] is not None for d in records)


def test_the_server_runs_schedules_and_shows_alerts(watched: Store, receiver: Receiver) -> None:
    receiver.fail_first = 0
    add_webhook(watched, receiver.url)
    create_schedule(watched, "reviews", "b", every="1h", kinds=("data-quality",))
    headers = bearer(admin_token(watched))
    with (
        background_server(watched, monitor_interval_s=0.2) as (url, _),
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        alerts = client.get("/api/v1/alerts", params={"endpoint": "reviews"}).json()
        assert alerts and receiver.received, "the server did not run the schedule or send its alerts"
        assert {a["constraint"] for a in alerts} >= {"garbled_rate"}
        (schedule,) = client.get("/api/v1/monitoring/schedules").json()
        assert schedule["last_status"].startswith("ok:")
        page = client.get("/console/alerts")
        assert page.status_code == 200 and "garbled_rate" in page.text and 'id="schedules"' in page.text


def test_bad_schedules_are_refused_and_a_failing_run_is_recorded(watched: Store) -> None:
    for every, says in (("5s", "too often"), ("often", "a number and a unit")):
        with pytest.raises(DataFormatError, match=says):
            create_schedule(watched, "reviews", "b", every=every)
    with pytest.raises(NotFoundError, match="no baseline"):
        create_schedule(watched, "reviews", "nope", every="1h")
    with pytest.raises(NotFoundError):
        create_schedule(watched, "nope", "b", every="1h")
    with pytest.raises(DataFormatError, match="unknown monitoring type"):
        create_schedule(watched, "reviews", "b", every="1h", kinds=("vibes",))
    with pytest.raises(DataFormatError, match="http"):
        add_webhook(watched, "ftp://example")

    create_schedule(watched, "reviews", "b", every="1h", now=T0)
    (watched.artifacts.local("monitoring/baselines/b") / "constraints.json").write_text("{broken")
    (outcome,) = run_due(watched, now=T0)
    assert "failed: DataFormatError" in outcome["error"]
    with watched.uow() as uow:
        (stored,) = uow.monitoring.schedules()
    assert stored.last_status.startswith("failed:") and "constraints.json" in stored.last_status


def test_a_due_schedule_is_claimed_by_one_server_only(watched: Store) -> None:
    create_schedule(watched, "reviews", "b", every="1h", now=T0)
    claims: list[int] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        with watched.uow() as uow:
            claims.extend(s.id for s in uow.monitoring.claim_due(T0 + timedelta(seconds=1)))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claims) == 1
