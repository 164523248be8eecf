"""The main job's Lab 2 step on a real server: two variants at 50/50, traffic, plots, the shift to
VariantB, traffic and plots again, the course's autoscaling policy attached."""

from __future__ import annotations

from PIL import Image

from loopwise.cli._course_lab2 import ENDPOINT, course_lab2
from loopwise.serving.service import describe_endpoint
from loopwise.storage import Store


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
