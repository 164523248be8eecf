"""The evaluation report on disk: the course's JSON shape, valid PNGs and one self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import loopwise.evaluation as evaluation
from loopwise.errors import DataFormatError
from loopwise.evaluation import (
    classification_metrics,
    confusion_matrix_png,
    paired_comparison,
    reliability_diagram_png,
    write_comparison_report,
    write_evaluation_report,
)

LABELS = ["-1", "0", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored() -> tuple[list[str], np.ndarray, dict]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], size=300)
    proba[np.arange(300), ids] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    y_true = [LABELS[i] for i in ids]
    return y_true, proba, classification_metrics(y_true, proba, LABELS, bootstrap=200)


@pytest.fixture(scope="module")
def report(scored, tmp_path_factory) -> evaluation.EvaluationReport:
    y_true, proba, metrics = scored
    context = {
        "model": "reviews-roberta:3 <best>",
        "dataset": "reviews:1",
        "split": "test",
        "date": datetime(2024, 5, 1, 12, 0),
    }
    out = tmp_path_factory.mktemp("report") / "nested"
    return write_evaluation_report(out, metrics, y_true=y_true, proba=proba, labels=LABELS, context=context)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000


def test_all_four_files_are_written_with_their_names(report) -> None:
    assert report.json.name == "evaluation.json"
    assert report.confusion_matrix_png.name == "confusion_matrix.png"
    assert report.reliability_png.name == "reliability_diagram.png"
    assert report.html.name == "report.html"
    assert sorted(p.name for p in report.json.parent.iterdir()) == sorted(
        ["evaluation.json", "confusion_matrix.png", "reliability_diagram.png", "report.html"]
    )  # and no temporary files left behind


def test_json_has_the_course_shape_and_every_scalar_metric(report, scored) -> None:
    _, _, metrics = scored
    document = json.loads(report.json.read_text())

    assert document["metrics"]["accuracy"]["value"] == metrics["accuracy"]  # what the course's reader does
    assert document["metrics"]["accuracy"]["ci95"] == metrics["intervals"]["accuracy"]
    assert document["metrics"]["macro_f1"]["ci95"] == metrics["intervals"]["macro_f1"]
    for name in ("macro_precision", "macro_recall", "log_loss", "ece", "brier", "roc_auc_ovr", "n"):
        assert document["metrics"][name]["value"] == metrics[name]
    assert document["per_class"] == metrics["per_class"]
    assert document["confusion_matrix"] == metrics["confusion_matrix"]
    assert document["context"]["date"] == "2024-05-01T12:00:00"
    assert document["context"]["split"] == "test"
    assert sum(row["count"] for row in document["reliability"]) == 300


def test_pngs_are_valid(report) -> None:
    assert_png(report.confusion_matrix_png)
    assert_png(report.reliability_png)


def test_html_embeds_the_images_and_lists_every_class(report, scored) -> None:
    _, _, metrics = scored
    html = report.html.read_text()

    for png in (report.confusion_matrix_png, report.reliability_png):
        assert "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() in html
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing fetched from elsewhere
    rows = re.findall(r'<tr class="class-row">\s*<td>(.*?)</td>', html)
    assert rows == LABELS
    assert f"{100 * metrics['accuracy']:.1f}%" in html
    low, high = metrics["intervals"]["accuracy"]
    assert f"95% CI {100 * low:.1f}% to {100 * high:.1f}%" in html
    assert "reviews:1" in html
    assert "reviews-roberta:3 &lt;best&gt;" in html  # context is escaped
    assert "<best>" not in html


def test_metrics_from_elsewhere_are_refused(tmp_path, scored) -> None:
    y_true, proba, _ = scored

    with pytest.raises(DataFormatError, match="classification_metrics"):
        write_evaluation_report(
            tmp_path, {"accuracy": 0.5}, y_true=y_true, proba=proba, labels=LABELS, context={}
        )


def test_comparison_report(tmp_path) -> None:
    y_true = ["0", "1", "1", "0"] * 25
    comparison = paired_comparison(y_true, ["0"] * 100, y_true, name_a="old", name_b="new")

    html_path = write_comparison_report(tmp_path, comparison, {"dataset": "reviews:1", "split": "test"})

    assert html_path == tmp_path / "comparison.html"
    document = json.loads((tmp_path / "comparison.json").read_text())
    assert document["comparison"]["summary"] == comparison["summary"]
    assert document["comparison"]["b01"] == 50
    assert document["context"] == {"dataset": "reviews:1", "split": "test"}
    html = html_path.read_text()
    assert comparison["summary"].split(",")[0] in html
    assert "Only new right (b01)</td><td>50</td>" in html


def test_plots_write_pngs_and_check_their_input(tmp_path) -> None:
    cm = confusion_matrix_png([[5, 1], [0, 4]], ["neg", "pos"], tmp_path / "cm.png", title="t")
    rel = reliability_diagram_png(
        [0, 1, 1], np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), tmp_path / "r.png"
    )

    assert_png(cm)
    assert_png(rel)
    with pytest.raises(DataFormatError, match=r"\(2, 2\)"):
        confusion_matrix_png([[1, 2, 3]], ["neg", "pos"], tmp_path / "bad.png")


def test_public_names_are_exported() -> None:
    for name in evaluation.__all__:
        assert getattr(evaluation, name).__module__.startswith("loopwise.evaluation")


def test_training_curves_are_drawn_and_an_empty_run_is_refused(tmp_path: Path) -> None:
    from loopwise.evaluation.plots import training_curves_png

    series = {
        "loss": [(step, 1.0 / step) for step in range(1, 50)],
        "val_loss": [(10, 0.9), (20, 0.7)],
        "val_acc": [(10, 0.5), (20, 0.6)],
        "learning_rate": [(step, 1e-4) for step in range(1, 50)],
    }
    path = training_curves_png(series, tmp_path / "curves.png")
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000
    with pytest.raises(DataFormatError, match="no loss or validation metrics"):
        training_curves_png({"learning_rate": [(1, 1e-4)]}, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
