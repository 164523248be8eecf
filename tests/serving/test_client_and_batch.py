"""The Python client against a running server, and batch transform from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run
from conftest import running_server
from loopwise.client import Client, ServerError
from loopwise.evaluation.service import load_model
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce.service import program_token

pytestmark = pytest.mark.sqlite_only

COURSE = ["I love this product!", "OK, but not great.", "This is not the right product."]


def test_the_client_predicts_invokes_posts_feedback_and_reads_metrics(two_models: Store) -> None:
    config = {"variants": [{"name": "A", "model": "small-tfidf:1"}, {"name": "B", "model": "small-tfidf:2"}]}
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    with (
        running_server(two_models) as (http, _),
        Client(str(http.base_url), token=program_token(two_models, "t")) as client,
    ):
        answer = client.predict("reviews", COURSE, target_variant="B", inference_id="my-id")
        assert (
            answer["variant"] == "B" and answer["inference_id"] == "my-id" and len(answer["predictions"]) == 3
        )
        sticky = {client.predict("reviews", ["x"], routing_key="user-1")["variant"] for _ in range(10)}
        assert len(sticky) == 1
        rows = client.invoke("reviews", COURSE, target_variant="A")
        assert [set(r) for r in rows] == [{"probability", "predicted_label"}] * 3
        assert client.feedback("reviews", [{"inference_id": "my-id", "labels": ["1", "0", "-1"]}]) == {
            "recorded": 1,
            "new": 1,
            "rewarded": 0,
        }
        assert sum(r["Invocations"] for r in client.metrics("reviews", period=60)) == 1 + 10 + 1
        with pytest.raises(ServerError, match="404: endpoint 'nope'") as missing:
            client.predict("nope", ["x"])
        assert missing.value.status == 404
        with pytest.raises(ServerError, match=r"400: .*text 1 is empty"):
            client.invoke("reviews", [" "])


def test_batch_transform_answers_a_file_in_order_or_writes_nothing(two_models: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    texts = [f"review number {i} {COURSE[i % 3]}" for i in range(2500)]  # more than one chunk
    source.write_text("".join(json.dumps({"features": [t]}) + "\n" for t in texts), encoding="utf-8")
    target = tmp_path / "out.jsonl"
    home, url = two_models.settings.home, two_models.settings.resolved_database_url
    command = ("batch-transform", "small-tfidf@champion")
    done = run(home, *command, str(source), str(target), check=False, database_url=url)
    assert done.returncode == 0, done.stderr
    assert "2500 lines answered" in done.stdout
    answers = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    expected = load_model(two_models, "small-tfidf@champion").classifier.predict(texts)
    assert [str(a["predicted_label"]) for a in answers] == expected  # in input order
    assert all(abs(sum(a["probabilities"].values()) - 1) < 1e-9 for a in answers)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"features": ["fine"]}\n{"features": []}\n', encoding="utf-8")
    failed = run(home, *command, str(bad), str(tmp_path / "never.jsonl"), check=False, database_url=url)
    assert failed.returncode == 1 and "bad.jsonl line 2" in failed.stderr
    assert not (tmp_path / "never.jsonl").exists() and not (tmp_path / "never.jsonl.partial").exists()
