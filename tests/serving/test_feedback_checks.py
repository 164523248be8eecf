"""Feedback that names an inference the endpoint never answered, or a label its models do not have, is
refused (400, naming them) unless the caller says it is deliberate: it would feed A/B reports and
monitoring silently. Known ids: the ones this server answered lately, the capture's, and those with
feedback already (``loopwise.serving.known``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_helpers import run
from conftest import running_server
from loopwise.client import Client, ServerError
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.known import RecentAnswers
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce.service import program_token

pytestmark = pytest.mark.sqlite_only

FEEDBACK = "/api/v1/endpoints/reviews/feedback"
PREDICT = "/api/v1/endpoints/reviews/predict"


def _recorded(store: Store) -> dict[str, tuple[str, ...] | None]:
    with store.uow() as uow:
        return {f.inference_id: f.labels for f in uow.feedback.for_endpoint("reviews")}


def test_feedback_for_ids_not_served_or_labels_not_the_models_is_refused_unless_deliberate(
    two_models: Store,
) -> None:
    config = {"variants": [{"name": "A", "model": "small-tfidf:1"}, {"name": "B", "model": "small-tfidf:2"}]}
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))  # no capture: memory alone
    with running_server(two_models) as (client, _):
        served = [client.post(PREDICT, json={"texts": [f"great item {i}"]}).json() for i in range(3)]
        mine = client.post(PREDICT, json={"texts": ["ok", "bad"], "inference_id": "order-17"}).json()
        ids = [a["inference_id"] for a in served]
        ok = client.post(FEEDBACK, json=[{"inference_id": i, "label": "1"} for i in ids])
        assert ok.status_code == 200 and ok.json()["new"] == 3
        both = client.post(FEEDBACK, json={"inference_id": mine["inference_id"], "labels": ["0", -1]})
        assert both.status_code == 200  # a single item; labels as numbers are the classes' names

        wrong = [
            {"inference_id": ids[0], "label": "1"},
            {"inference_id": "made-up-1", "label": "1"},
            {"inference_id": "made-up-2", "label": "positive"},
            {"inference_id": ids[1], "labels": ["5"]},
            {"inference_id": "made-up-3", "reward": 1},
        ]
        refused = client.post(FEEDBACK, json=wrong)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "ValidationError"
        message = error["message"]
        assert "3 inference id(s) it did not answer (made-up-1, made-up-2, made-up-3)" in message
        assert "'positive', '5'" in message and "its classes: -1, 0, 1" in message
        assert '"allow_unknown": true' in message
        assert ids[0] not in message.split("did not answer")[1]
        assert set(_recorded(two_models)) == {*ids, "order-17"}  # nothing of the refused body
        labels_only = client.post(FEEDBACK, json=[{"inference_id": ids[2], "label": "neutral"}])
        assert (
            labels_only.status_code == 400 and "did not answer" not in labels_only.json()["error"]["message"]
        )

        deliberate = client.post(FEEDBACK, json={"items": wrong, "allow_unknown": True})
        assert deliberate.status_code == 200 and deliberate.json()["new"] == 3
        assert _recorded(two_models)["made-up-2"] == ("positive",)
        # an id with feedback already is known: correcting it needs no flag
        again = client.post(FEEDBACK, json=[{"inference_id": "made-up-1", "label": "0"}])
        assert again.status_code == 200 and again.json()["new"] == 0

        for body, field in (
            ({"items": wrong, "allow_unkown": True}, "allow_unkown: not a field"),
            ({"items": wrong, "allow_unknown": "yes"}, "allow_unknown: true or false"),
            ({"items": {"inference_id": "x"}}, "items: a list"),
        ):
            answer = client.post(FEEDBACK, json=body)
            assert answer.status_code == 400 and field in answer.json()["error"]["message"], body
        assert client.post("/api/v1/endpoints/nope/feedback", json=wrong).status_code == 404

        with Client(str(client.base_url), token=program_token(two_models, "feedback")) as program:
            with pytest.raises(ServerError, match=r"400: .*made-up-9") as caught:
                program.feedback("reviews", [{"inference_id": "made-up-9", "label": "1"}])
            assert caught.value.status == 400
            sent = program.feedback(
                "reviews", [{"inference_id": "made-up-9", "label": "1"}], allow_unknown=True
            )
            assert sent["new"] == 1


def _loopwise(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    return run(store.settings.home, *args, check=False, database_url=store.settings.resolved_database_url)


def test_the_capture_makes_ids_known_to_a_restarted_server_and_to_the_command_line(
    two_models: Store, tmp_path: Path
) -> None:
    config = {
        "variants": [{"name": "A", "model": "small-tfidf:2"}],
        "capture": {"share": 1.0, "embeddings": False},
    }
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    with running_server(two_models) as (client, app):
        ids = [
            client.post(PREDICT, json={"texts": [f"awful item {i}"]}).json()["inference_id"] for i in range(4)
        ]
        app.state.plane.capture_writers["reviews"].flush()
    with running_server(two_models) as (client, app):  # a new server: nothing answered here
        assert app.state.plane.known.answered.unanswered("reviews", ids) == ids
        ok = client.post(FEEDBACK, json=[{"inference_id": i, "label": "-1"} for i in ids[:2]])
        assert ok.status_code == 200 and ok.json()["new"] == 2
        refused = client.post(FEEDBACK, json=[{"inference_id": "elsewhere-1", "label": "-1"}])
        assert refused.status_code == 400 and "(elsewhere-1)" in refused.json()["error"]["message"]
        # answered after the index was first read: the new capture lines are read too
        later = client.post(PREDICT, json={"texts": ["late"], "inference_id": "later-1"}).json()
        app.state.plane.capture_writers["reviews"].flush()
        app.state.plane.known.answered = RecentAnswers()  # as if another replica answered it
        assert (
            client.post(FEEDBACK, json=[{"inference_id": later["inference_id"], "label": "1"}]).status_code
            == 200
        )

    file = tmp_path / "truth.jsonl"
    file.write_text(
        "".join(json.dumps({"inference_id": i, "label": "0"}) + "\n" for i in [ids[2], "elsewhere-2"]),
        encoding="utf-8",
    )
    refused = _loopwise(two_models, "endpoint", "feedback", "reviews", str(file))
    assert refused.returncode != 0 and "elsewhere-2" in refused.stdout + refused.stderr
    assert ids[2] not in _recorded(two_models)
    allowed = _loopwise(two_models, "endpoint", "feedback", "reviews", str(file), "--allow-unknown")
    assert allowed.returncode == 0, allowed.stderr
    assert _recorded(two_models)[ids[2]] == ("0",) and _recorded(two_models)["elsewhere-2"] == ("0",)
