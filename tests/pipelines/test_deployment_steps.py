"""A pipeline's canary, A/B test and promotion against a real server on 127.0.0.1 (on SQLite: the steps
store through the repositories that run on both databases): the candidate deployed as a new variant,
rolled out to its canary share and on to the A/B split, the sequential test waited for while traffic and
feedback arrive, then promoted (all the traffic, the alias) or retired (out of the endpoint, the alias
unmoved); and the step's bad inputs refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from auth_helpers import admin_token, bearer
from loopwise import registry
from loopwise.app import background_server
from loopwise.errors import PipelineError
from loopwise.pipelines import service
from loopwise.pipelines.deployment import canary, variant_name
from loopwise.pipelines.records import PipelineRun
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint, describe_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

pytestmark = pytest.mark.sqlite_only

PIPELINE = """\
name: ship
steps:
  - name: canary
    uses: canary
    with: {endpoint: reviews, model: "small-tfidf:2", percent: 20, share: 50, bake: 1s, poll: 0.2s,
           min_requests: 1, timeout: 90s}
  - name: ab
    uses: ab-test
    with: {endpoint: reviews, candidate: "${canary.variant}", config: "${canary.config}", poll: 0.3s,
           timeout: 90s}
  - name: promote
    uses: promote
    with: {model: "small-tfidf:2", comparison: tie, endpoint: reviews, variant: "${canary.variant}",
           ab: "${ab.decision}"}
"""


def _setup(store: Store, import_small: Callable[[Store], str], tmp_path: Path) -> None:
    dataset = import_small(store)
    for _ in range(2):
        train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:1", "champion")
    # an earlier variant kept at weight 0 comes first: the A/B test's control is the one with the traffic
    variants = [
        {"name": "Old", "model": "small-tfidf:1", "weight": 0},
        {"name": "Champion", "model": "small-tfidf:1"},
    ]
    create_endpoint(store, "reviews", parse_endpoint_config({"variants": variants, "capture": {"share": 1}}))
    path = tmp_path / "ship.yaml"
    path.write_text(PIPELINE, encoding="utf-8")
    service.create_pipeline(store, path)


def _while_serving(store: Store, work: Callable[[], None], send: Callable[[httpx.Client, int], None]) -> None:
    """Run ``work`` in a thread while a client of a real server over ``store`` calls ``send`` again and
    again (with a counter), until ``work`` ends."""
    with (
        background_server(store) as (url, _),
        httpx.Client(base_url=url, timeout=30, headers=bearer(admin_token(store))) as client,
    ):
        runner = threading.Thread(target=work)
        runner.start()
        deadline = time.monotonic() + 120
        i = 0
        while runner.is_alive():
            assert time.monotonic() < deadline, "the work did not end in 120 s"
            send(client, i)
            i += 1
            time.sleep(0.01)
        runner.join()


def _run_with_traffic(store: Store, right: str) -> tuple[PipelineRun, list[str]]:
    """Run the pipeline while a client sends reviews and posts ground truth that says the ``right``
    variant ("candidate" or "champion") answered correctly and the other wrongly."""
    finished: list[PipelineRun] = []
    said: list[str] = []

    def send(client: httpx.Client, i: int) -> None:
        answer = client.post(
            "/api/v1/endpoints/reviews/predict", json={"texts": [f"great lovely item {i}"]}
        ).json()
        correct = (answer["variant"] != "Champion") == (right == "candidate")
        said_label = answer["predictions"][0]["label"]
        label = said_label if correct else next(x for x in ("-1", "0", "1") if x != said_label)
        client.post(
            "/api/v1/endpoints/reviews/feedback",
            json=[{"inference_id": answer["inference_id"], "label": label}],
        ).raise_for_status()

    _while_serving(
        store, lambda: finished.append(service.run_pipeline(store, "ship", progress=said.append)), send
    )
    return finished[0], said


def test_a_candidate_that_wins_its_ab_test_is_promoted(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    _setup(store, import_small, tmp_path)
    run, said = _run_with_traffic(store, right="candidate")
    assert run.status == "Succeeded", (run.error, said)
    outputs = run.outputs()
    assert outputs["canary"]["variant"] == "small-tfidf-v2" and outputs["canary"]["share"] == 0.5
    assert outputs["ab"]["decision"] == "candidate" and outputs["ab"]["winner"] == "small-tfidf-v2"
    assert outputs["ab"]["accuracy_candidate"] > outputs["ab"]["accuracy_champion"]
    assert outputs["ab"]["p_value"] < 0.05
    assert outputs["promote"]["outcome"] == "promoted"
    endpoint, history = describe_endpoint(store, "reviews")
    assert endpoint.config.traffic_shares() == {"small-tfidf-v2": 1.0}
    notes = [h.note for h in history[1:]]
    assert notes[0] == "variant small-tfidf-v2: small-tfidf:2, weight 0"
    assert [n.split(": ")[-1] for n in notes[1:3]] == ["small-tfidf-v2 20%", "small-tfidf-v2 50%"]
    assert notes[-2:] == ["Old replaced by small-tfidf-v2", "Champion replaced by small-tfidf-v2"]
    with store.uow() as uow:
        assert registry.resolve(uow, "small-tfidf@champion").ref == "small-tfidf:2"
    assert any("rollout" in line and "20% then 50%" in line for line in said)


def test_a_candidate_that_loses_its_ab_test_is_retired(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    _setup(store, import_small, tmp_path)
    run, said = _run_with_traffic(store, right="champion")
    assert run.status == "Succeeded", (run.error, said)
    outputs = run.outputs()
    assert outputs["ab"]["decision"] == "champion" and outputs["ab"]["winner"] == "Champion"
    assert outputs["promote"] == {"model": "small-tfidf:2", "previous": "small-tfidf:1", "outcome": "retired"}
    endpoint, history = describe_endpoint(store, "reviews")
    assert endpoint.config.traffic_shares() == {"Old": 0.0, "Champion": 1.0}
    assert history[-1].note == "small-tfidf-v2 retired"
    with store.uow() as uow:
        assert registry.resolve(uow, "small-tfidf@champion").ref == "small-tfidf:1"


def test_the_canary_step_refuses_bad_inputs_and_waits_no_longer_than_told(
    store: Store, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    _setup(store, import_small, tmp_path)
    said: list[str] = []
    base = {"endpoint": "reviews", "model": "small-tfidf:2"}
    with pytest.raises(PipelineError, match="percent: a percentage of the traffic above 0 and at most 100"):
        canary(store, {**base, "percent": 150}, said.append)
    with pytest.raises(PipelineError, match="the canary's rollout plan: min_requests: Input should be"):
        canary(store, {**base, "min_requests": 0}, said.append)
    assert describe_endpoint(store, "reviews")[0].config.traffic_shares() == {"Old": 0.0, "Champion": 1.0}
    # no server advances the rollout here: the step gives up at its timeout and says why
    with pytest.raises(PipelineError, match=r"is still at step 1/2 after 1 s: a `loopwise server`"):
        canary(store, {**base, "bake": "1h", "timeout": "1s", "poll": "0.2s"}, said.append)
    # taken up again (a resumed run), the rollout is the same one, not a second
    with pytest.raises(PipelineError, match="still at step 1/2"):
        canary(store, {**base, "bake": "1h", "timeout": "1s", "poll": "0.2s"}, said.append)
    assert any("rollout 1 of small-tfidf-v2 taken up (running)" in line for line in said)
    endpoint, _ = describe_endpoint(store, "reviews")
    assert endpoint.config.traffic_shares() == {"Old": 0.0, "Champion": 0.9, "small-tfidf-v2": 0.1}
    with pytest.raises(PipelineError, match="a rollout of small-tfidf-v2 in progress"):
        canary(store, {**base, "model": "small-tfidf:1", "variant": "Other"}, said.append)


def test_variant_names_follow_model_versions() -> None:
    assert variant_name("reviews-bert:3") == "reviews-bert-v3"
    assert variant_name("my_model.v2:12") == "my-model-v2-v12"
    assert variant_name("plain") == "plain"


def test_a_canary_that_breaks_its_alarm_is_rolled_back_and_the_run_stops(flaky_model: Store) -> None:
    config = {"variants": [{"name": "Champion", "model": "small-tfidf:1"}], "capture": {"share": 1}}
    create_endpoint(flaky_model, "reviews", parse_endpoint_config(config))
    said: list[str] = []
    inputs = {
        "endpoint": "reviews", "model": "flaky:1", "percent": 50, "bake": "1m", "poll": "0.2s",
        "max_error_rate": 0.1, "min_requests": 5, "timeout": "60s",
    }  # fmt: skip
    failed: list[BaseException] = []

    def step() -> None:
        try:
            canary(flaky_model, inputs, said.append)
        except PipelineError as exc:
            failed.append(exc)

    _while_serving(
        flaky_model,
        step,
        lambda client, _: client.post(
            "/api/v1/endpoints/reviews/predict", json={"texts": ["boom, it broke"]}
        ),
    )
    assert len(failed) == 1 and "the canary of flaky:1 on reviews was rolled back (5XX error rate" in str(
        failed[0]
    )
    endpoint, history = describe_endpoint(flaky_model, "reviews")
    assert endpoint.config.traffic_shares() == {"Champion": 1.0}
    assert [h.note for h in history[-2:]] == [
        "rollout 1: rolled back",
        "rollout 1 rolled back: flaky-v1 retired",
    ]
