"""A baseline from a data set and a model, then captured traffic checked against it: in-distribution
traffic passes, a garbled surge is caught with examples, a small window gets no verdict, corrupt capture
lines are skipped and counted, and edited constraints are checked and used."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from loopwise.classifiers import TrainConfig
from loopwise.config import Settings
from loopwise.data.splits import read_split
from loopwise.errors import DataFormatError, NotFoundError
from loopwise.monitoring.report import write_report
from loopwise.monitoring.service import create_baseline, load_baseline, run_monitor
from loopwise.registry.exports import serving_dir
from loopwise.serving.capture import CaptureWriter
from loopwise.serving.worker import load_for_serving
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


@pytest.fixture
def monitored(sqlite_store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path) -> Store:
    """``tiny:1`` (a tiny BERT trained on the small data set) and its baseline ``tiny-base``."""
    dataset = import_small(sqlite_store)
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32)
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=config)
    assert train(sqlite_store, request, progress=False).model is not None
    said: list[str] = []
    create_baseline(sqlite_store, dataset, "tiny:1", name="tiny-base", progress=said.append)
    assert said and "83 texts" in said[0]
    return sqlite_store


def _capture(store: Store, texts: list[str], variant: str = "A", model_ref: str = "tiny:1") -> None:
    """Capture records of ``texts`` as the data plane writes them: the served model's answers and
    embeddings (where it has them), one request per text."""
    with store.uow() as uow:
        from loopwise import registry

        model = registry.resolve(uow, model_ref)
    classifier = load_for_serving(serving_dir(store, model))
    proba, embeddings = classifier.predict_with_embeddings(texts)
    writer = CaptureWriter(store.artifacts.host_dir("capture"))
    for i, text in enumerate(texts):
        writer.offer(
            {
                "inference_id": f"{variant}-{i}",
                "endpoint": "reviews",
                "variant": variant,
                "model": model_ref,
                "time": time.time(),
                "latency_ms": 1.0,
                "model_ms": 0.5,
                "input": [text],
                "labels": list(classifier.labels),
                "probabilities": proba[i : i + 1],
                "predicted_label": [classifier.labels[int(proba[i].argmax())]],
                "embedding": None if embeddings is None else embeddings[i : i + 1],
            }
        )
    writer.close()


def _small_texts(store: Store) -> list[str]:
    with store.uow() as uow:
        dataset = uow.datasets.get("small", None)
    return [t for split in ("train", "validation", "test") for t in read_split(dataset.split(split).uri)[0]]


def test_the_baseline_describes_the_data_and_suggests_constraints(monitored: Store) -> None:
    baseline = load_baseline(monitored, "tiny-base")
    statistics = baseline.statistics
    assert statistics["count"] == 83 and statistics["source"]["model"] == "tiny:1"
    assert statistics["text"]["empty_rate"] == 0.0 and statistics["text"]["garbled_rate"] == 0.0
    assert sum(statistics["predictions"]["class_counts"].values()) == 83
    assert sum(statistics["predictions"]["confidence_histogram"]) == 83
    assert baseline.embeddings is not None and baseline.embeddings.shape == (83, 32)
    assert "item" in baseline.vocabulary
    files = {p.name for p in baseline.directory.iterdir() if not p.name.startswith(".loopwise-")}
    assert files == {"statistics.json", "constraints.json", "vocabulary.json", "embeddings.npy"}
    with pytest.raises(NotFoundError, match="loopwise monitor baseline"):
        load_baseline(monitored, "nope")


def test_a_model_s_answers_come_from_the_split_it_did_not_learn_from(
    sqlite_store: Store, import_small: Callable[..., str], tiny_bert_dir: Path
) -> None:
    """On its training data a model is surer than on traffic: a baseline of those answers would flag
    every window, so they are taken on the held-out split (the text statistics still on the training
    split)."""
    dataset = import_small(sqlite_store, rows_per_class=100)  # 209 / 45 / 46
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32)
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=config)
    assert train(sqlite_store, request, progress=False).model is not None
    said: list[str] = []
    create_baseline(sqlite_store, dataset, "tiny:1", name="held-out", progress=said.append)
    assert "45 texts" in said[0] and "(validation)" in said[0] and "209 texts (train)" in said[0]
    statistics = load_baseline(sqlite_store, "held-out").statistics
    assert statistics["count"] == 209 and statistics["answers_count"] == 45
    assert statistics["source"]["answers_from"] == "validation"
    assert sum(statistics["predictions"]["class_counts"].values()) == 45
    assert len(statistics["samples"]["confidence"]) == 45 and len(statistics["samples"]["chars"]) == 209
    assert load_baseline(sqlite_store, "held-out").embeddings.shape == (45, 32)  # type: ignore[union-attr]
    # a model trained elsewhere answers on the split itself
    create_baseline(sqlite_store, dataset, "tiny:1", name="on-test", split="test")
    assert load_baseline(sqlite_store, "on-test").statistics["source"]["answers_from"] == "test"


def test_in_distribution_traffic_passes_and_a_garbled_surge_is_caught(monitored: Store) -> None:
    _capture(monitored, _small_texts(monitored)[:60], variant="A")
    garbled = [f"#### {i} $$$ %% {i * 7} !!" if i % 2 else f"Ã©tÃ© {i} â€™â€™ ÃƒÂ" for i in range(60)]
    _capture(monitored, garbled, variant="B")
    report = run_monitor(monitored, "reviews", "tiny-base")

    clean = report["variants"]["A"]
    assert clean["texts"] == 60 and clean["status"] == "ok", clean["violations"]
    assert set(clean["drift"]) == {"embeddings", "predicted_class", "confidence", "length"}

    surge = report["variants"]["B"]
    assert surge["status"] == "violations"
    garbled_rate = next(v for v in surge["violations"] if v["constraint"] == "garbled_rate")
    assert garbled_rate["observed"] == 1.0 and garbled_rate["threshold"] == 0.02
    assert garbled_rate["p_value"] < 0.01 and garbled_rate["examples"][0] == garbled[0]
    assert {"garbled_rate", "oov_rate"} <= {v["constraint"] for v in surge["violations"]}
    assert any(v["check"] == "drift" for v in surge["violations"])
    written = json.loads(monitored.artifacts.read_uri(report["path"]))
    assert written["variants"]["B"]["status"] == "violations"
    histograms = surge["histograms"]["confidence"]
    assert sum(histograms["window"]) == 60 and sum(histograms["baseline"]) == 83

    page = write_report(monitored, "reviews")
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 3  # drift over time, histograms, accuracy
    assert "garbled_rate" in html and "Monitoring: reviews" in html
    summary = json.loads((page.parent / "report.json").read_text())
    assert summary["runs"] == 1 and set(summary["series"]) == {"A", "B"}
    assert summary["series"]["B"][0]["drift"]["length"]["effect"] > 0


def test_a_small_window_gets_no_verdict_and_corrupt_lines_are_counted(monitored: Store) -> None:
    _capture(monitored, ["#### $$$"] * 10, variant="A")
    files = list((monitored.artifacts.host_dir("capture") / "reviews" / "A").rglob("*.jsonl"))
    with files[0].open("ab") as handle:
        handle.write(b'{"not": "a record"}\n{broken json\n')
    report = run_monitor(monitored, "reviews", "tiny-base")
    assert report["skipped_lines"] == 2
    small = report["variants"]["A"]
    assert small["status"] == "too_few_records" and small["violations"] == []
    assert "10 texts" in small["message"] and "min_records" in small["message"]
    # the hour before the window is not read
    earlier = run_monitor(monitored, "reviews", "tiny-base", now=datetime(2020, 1, 1, tzinfo=UTC))
    assert earlier["variants"] == {} and "no captured records" in earlier["message"]


def test_edited_constraints_are_checked_and_used(monitored: Store) -> None:
    garbled = [f"#### {i} $$$ %%" for i in range(60)]
    _capture(monitored, garbled, variant="A")
    path = load_baseline(monitored, "tiny-base").directory / "constraints.json"
    constraints = json.loads(path.read_text())
    constraints["data_quality"]["garbled_rate"]["max"] = 1.0  # garbled traffic is expected here
    path.write_text(json.dumps(constraints))
    found = run_monitor(monitored, "reviews", "tiny-base", kinds=("data-quality",))["variants"]["A"]
    assert "garbled_rate" not in {v["constraint"] for v in found["violations"]}
    assert found["drift"] == {}  # only what was asked for

    constraints["alpha"] = "high"
    constraints["drift"]["confidence"]["max_p_value"] = 2
    path.write_text(json.dumps(constraints))
    with pytest.raises(DataFormatError) as refused:
        run_monitor(monitored, "reviews", "tiny-base")
    message = str(refused.value)
    assert "constraints.json" in message and "alpha must be a number" in message
    assert "drift.confidence.max_p_value is out of range: 2" in message
    with pytest.raises(DataFormatError, match="unknown monitoring type quality"):
        run_monitor(monitored, "reviews", "tiny-base", kinds=("quality",))
    assert np.isfinite(constraints["min_records"])


def test_the_monitor_commands_without_embeddings(
    settings: Settings, import_small: Callable[[Store], str]
) -> None:
    """A TF-IDF model has no sentence embeddings: the baseline and checks go on without the MMD test."""
    from cli_helpers import run_process as run  # the command as users run it, as a process

    store = Store.open(settings)
    dataset = import_small(store)
    train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    store.close()
    made = run(settings.home, "monitor", "baseline", "--dataset", dataset, "--model", "small-tfidf:1")
    assert "baseline written to" in made.stdout and "constraints.json" in made.stdout
    store = Store.open(settings)
    _capture(store, _small_texts(store)[:55] + ["#### $$$ 1234"] * 5, model_ref="small-tfidf:1")
    store.close()
    checked = run(settings.home, "monitor", "run", "reviews", "--baseline", "small-tfidf-v1", "--json")
    report = json.loads(checked.stdout)
    found = report["variants"]["A"]
    assert found["texts"] == 60 and "embeddings" not in found["drift"]
    assert found["data_quality"]["garbled_rate"]["count"] == 5
    shown = run(settings.home, "monitor", "run", "reviews", "--baseline", "small-tfidf-v1").stdout
    assert "60 records, 60 texts" in shown and "garbled_rate" in shown
    missing = run(settings.home, "monitor", "run", "reviews", "--baseline", "nope", check=False)
    assert missing.returncode != 0 and "loopwise monitor baseline" in missing.stderr


def _labelled(store: Store) -> tuple[list[str], list[str]]:
    with store.uow() as uow:
        dataset = uow.datasets.get("small", None)
    texts, labels = [], []
    for split in ("train", "validation", "test"):
        more_texts, more_labels = read_split(dataset.split(split).uri)
        texts += more_texts
        labels += more_labels
    return texts, labels


def test_model_quality_from_ground_truth_beside_the_estimate(monitored: Store) -> None:
    from loopwise.serving.records import Feedback

    statistics = load_baseline(monitored, "tiny-base").statistics
    assert statistics["model_quality"]["n"] == 18 and statistics["source"]["held_out_split"] == "validation"
    assert len(statistics["calibration"]["x"]) == len(statistics["calibration"]["y"]) >= 1
    texts, labels = _labelled(monitored)
    _capture(monitored, texts[:60], variant="A")
    before = run_monitor(monitored, "reviews", "tiny-base", kinds=("model-quality",))["variants"]["A"]
    quality = before["model_quality"]
    assert quality["labelled"] == 0 and 0 < quality["estimated_accuracy"] <= 1 and "accuracy" not in quality

    # ground truth for 55 of the captured inferences, one with a label the model does not know, and
    # three for inferences that are not in the window
    items = [Feedback(f"A-{i}", (labels[i],)) for i in range(54)]
    items += [Feedback("A-54", ("no-such-class",))]
    items += [Feedback(f"ghost-{i}", ("pos",)) for i in range(3)]
    with monitored.uow() as uow:
        uow.feedback.put("reviews", items)
    report = run_monitor(monitored, "reviews", "tiny-base", kinds=("model-quality",))
    assert report["ground_truth_outside_window"] == {
        "count": 3,
        "examples": ["ghost-0", "ghost-1", "ghost-2"],
    }
    quality = report["variants"]["A"]["model_quality"]
    assert quality["labelled"] == 54 and quality["unknown_labels"] == 1

    with monitored.uow() as uow:
        from loopwise import registry

        model = registry.resolve(uow, "tiny:1")
    classifier = load_for_serving(serving_dir(monitored, model))
    predicted = classifier.predict(texts[:54])
    expected = float(np.mean(np.array(predicted) == np.array(labels[:54])))
    assert quality["accuracy"] == pytest.approx(expected)
    assert quality["estimate_error"] == pytest.approx(quality["estimate_on_labelled"] - expected)
    assert set(quality["per_class_f1"]) == set(statistics["predictions"]["labels"])

    path = load_baseline(monitored, "tiny-base").directory / "constraints.json"
    constraints = json.loads(path.read_text())
    constraints["model_quality"]["min_accuracy"] = 0.99  # stricter than this model can be
    path.write_text(json.dumps(constraints))
    strict = run_monitor(monitored, "reviews", "tiny-base", kinds=("model-quality",))["variants"]["A"]
    accuracy = next(v for v in strict["violations"] if v["constraint"] == "accuracy")
    assert accuracy["observed"] == pytest.approx(expected) and accuracy["threshold"] == 0.99
    assert accuracy["p_value"] < 0.01
