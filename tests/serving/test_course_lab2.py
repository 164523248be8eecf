"""The main job's Lab 2 step on a real server: two variants at 50/50, traffic, plots, the shift to
VariantB, traffic and plots again, the course's autoscaling policy attached; then its monitoring step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image

from loopwise.cli._course_lab2 import ENDPOINT, course_lab2
from loopwise.cli._course_monitor import course_monitoring
from loopwise.monitoring.records import Alert
from loopwise.serving.service import describe_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

pytestmark = pytest.mark.sqlite_only


def test_the_course_lab2_step(two_models: Store, capsys: object) -> None:
    plots = course_lab2(two_models, "small-tfidf:1", "small-tfidf@champion", loops=4)
    assert [p.name for p in plots] == ["course-lab2-ab.png", "course-lab2-shifted.png"]
    for plot in plots:
        with Image.open(plot) as image:
            assert image.size[0] > 500 and image.size[1] > 500
    endpoint, history = describe_endpoint(two_models, ENDPOINT)
    assert endpoint.config.traffic_shares() == {"VariantA": 0.0, "VariantB": 1.0}
    policy = endpoint.config.variant("VariantB").autoscaling
    assert policy is not None and (policy.target, policy.min_instances, policy.max_instances) == (2.0, 1, 2)
    assert (policy.scale_out_cooldown_s, policy.scale_in_cooldown_s) == (60, 300)
    assert len(history) == 3  # created, weights shifted, autoscaling attached
    said = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "50/50: 12 requests served by" in said and "'VariantB': 12" in said.split("all to VariantB:")[1]


def test_the_monitoring_step(store: Store, import_small: Callable[..., str], capsys: object) -> None:
    dataset = import_small(store, rows_per_class=200)  # a test split of 91 reviews: enough for a verdict
    for _ in range(2):
        train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    course_lab2(store, "small-tfidf:1", "small-tfidf:2", loops=1)
    page = course_monitoring(store, ENDPOINT, dataset, "small-tfidf:2")
    assert page.name == "report.html" and page.read_text().count("data:image/png;base64,") == 3
    said = capsys.readouterr().out  # type: ignore[attr-defined]
    clean, broken = said.split("the test split's reviews: 91 requests")[1].split("a broken upstream system")
    # the reviews as they come pass, with their accuracy from feedback beside the estimate
    assert "VariantB: 91 texts, ok" in clean and "accuracy 1.000 on 91 labelled" in clean
    # a tenth of them garbled is caught, and each violation is an alert
    assert "VariantB: 91 texts, violations" in broken and "garbled_rate 11.0%" in broken
    with store.uow() as uow:
        alerts: list[Alert] = uow.monitoring.alerts(ENDPOINT)
    assert alerts and {a.constraint for a in alerts} >= {"garbled_rate"}
