"""Data capture off the request path, and shadow variants compared with production."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import running_server
from loopwise.serving.capture import CaptureWriter, read_captures
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only

URL = "/endpoints/reviews/invocations"


def _record(at: float, variant: str = "A", inference_id: str = "x") -> dict[str, object]:
    return {
        "inference_id": inference_id,
        "endpoint": "reviews",
        "variant": variant,
        "time": at,
        "input": ["t"],
    }


def test_records_are_written_in_hour_partitions_and_read_back(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path)
    ten, eleven = (
        datetime(2026, 11, 28, 10, 59, tzinfo=UTC).timestamp(),
        datetime(2026, 11, 28, 11, 1, tzinfo=UTC).timestamp(),
    )
    for at, variant, inference_id in ((ten, "A", "1"), (eleven, "A", "2"), (eleven, "B", "3")):
        assert writer.offer(_record(at, variant, inference_id))
    writer.close()
    hours = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert hours == ["reviews/A/2026/11/28/10", "reviews/A/2026/11/28/11", "reviews/B/2026/11/28/11"]
    assert [r["inference_id"] for r in read_captures(tmp_path, "reviews", "A")] == ["1", "2"]
    assert next(iter(read_captures(tmp_path, "reviews", "B")))["time"] == "2026-11-28T11:01:00.000Z"
    assert writer.written == 3 and writer.dropped == 0


def test_a_full_queue_drops_and_counts_and_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = CaptureWriter._write

    def stuck(self: CaptureWriter, record: dict[str, object]) -> None:
        release.wait(10)  # a disk that stopped answering
        original(self, record)

    monkeypatch.setattr(CaptureWriter, "_write", stuck)
    writer = CaptureWriter(tmp_path, max_queue=3)
    started = time.perf_counter()
    accepted = [writer.offer(_record(time.time(), inference_id=str(i))) for i in range(50)]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # offering never waited for the writer
    assert sum(accepted) <= 4 and writer.dropped == 50 - sum(accepted)
    release.set()
    writer.close()
    assert writer.written == sum(accepted)


def test_captured_requests_and_shadow_answers_are_recorded_but_never_returned(two_models: Store) -> None:
    config = {
        "variants": [
            {"name": "VariantA", "model": "small-tfidf:1"},
            {"name": "Shadow", "model": "small-tfidf:2", "role": "shadow", "shadow_share": 1.0},
        ],
        "data_capture": {"sampling_percentage": 100},
    }
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    texts = ["I love this product!", "OK, but not great.", "This is not the right product."]
    with running_server(two_models) as (client, app):
        ids = []
        for _ in range(20):
            answer = client.post("/api/v1/endpoints/reviews/predict", json={"texts": texts})
            assert answer.status_code == 200 and answer.json()["variant"] == "VariantA"
            ids.append(answer.json()["inference_id"])
        plane = app.state.plane
        deadline = time.monotonic() + 30
        while plane.shadow_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        plane.capture_writers["reviews"].flush()
        report = client.get("/api/v1/endpoints/reviews/shadow").json()["shadows"]
    root = two_models.artifacts.host_dir("capture")
    production = list(read_captures(root, "reviews", "VariantA"))
    shadowed = list(read_captures(root, "reviews", "Shadow"))
    assert sorted(r["inference_id"] for r in production) == sorted(ids)
    assert sorted(r["inference_id"] for r in shadowed) == sorted(ids)  # the same inference, shadowed
    record = production[0]
    assert record["input"] == texts and record["model"] == "small-tfidf:1" and record["embedding"] is None
    assert len(record["probabilities"]) == 3 and record["predicted_label"][0] in record["labels"]
    assert all(r["shadow_of"] == "VariantA" and r["model"] == "small-tfidf:2" for r in shadowed)
    figures = report["Shadow"]
    assert figures["compared"] == 60
    assert sum(n for row in figures["flip_matrix"].values() for n in row.values()) == 60
    agree = sum(row.get(label, 0) for label, row in figures["flip_matrix"].items())
    assert figures["agreement"] == pytest.approx(agree / 60)


def test_capture_samples_its_share_of_requests(two_models: Store) -> None:
    config = {"variants": [{"name": "VariantA", "model": "small-tfidf:1"}], "capture": {"share": 0.25}}
    create_endpoint(two_models, "reviews", parse_endpoint_config(config))
    with running_server(two_models) as (client, app):
        for _ in range(200):
            assert client.post(URL, json={"features": ["fine"]}).status_code == 200
        app.state.plane.capture_writers["reviews"].flush()
    captured = len(list(read_captures(two_models.artifacts.host_dir("capture"), "reviews")))
    assert 26 <= captured <= 74  # binomial(200, 0.25): 50 +- 4 sd
