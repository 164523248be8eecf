"""Per-variant metrics: period tables by SageMaker's names, and Prometheus' text."""

from __future__ import annotations

import pytest

from loopwise.serving import metrics as metrics_module
from loopwise.serving.metrics import Metrics


def test_periods_add_up_per_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_020.0]
    monkeypatch.setattr(metrics_module.time, "time", lambda: clock[0])
    recorded = Metrics()
    recorded.resources("reviews", "A", instances=2, cpu_percent=50.0)
    for model_ms in (1.0, 2.0, 3.0, 100.0):
        recorded.answered("reviews", "A", model_ms=model_ms, overhead_ms=0.5)
    recorded.answered("reviews", "B", model_ms=4.0, overhead_ms=0.25)
    recorded.failed("reviews", "B", 500)
    recorded.failed("reviews", None, 415)
    clock[0] += 60  # the next minute
    recorded.answered("reviews", "A", model_ms=2.0, overhead_ms=1.0)
    recorded.answered("other", "A", model_ms=2.0, overhead_ms=1.0)

    rows = recorded.table("reviews", period_s=60, now=clock[0])
    assert [(r["period_start"], r["variant"]) for r in rows] == [
        (1_000_020, "-"),
        (1_000_020, "A"),
        (1_000_020, "B"),
        (1_000_080, "A"),
    ]
    first_a = rows[1]
    assert first_a["Invocations"] == 4 and first_a["Instances"] == 2
    assert first_a["InvocationsPerInstance"] == 2.0
    assert first_a["ModelLatency"] == pytest.approx(26.5) and first_a["OverheadLatency"] == pytest.approx(0.5)
    assert 100.0 <= first_a["ModelLatencyP99"] < 115.0  # the upper edge of 100 ms's bin
    assert first_a["CPUUtilization"] == 50.0
    assert rows[2]["Invocation5XXErrors"] == 1 and rows[2]["Invocations"] == 1
    assert rows[0]["Invocation4XXErrors"] == 1 and rows[0]["Invocations"] == 0
    assert rows[3]["Invocations"] == 1 and rows[3]["Instances"] == 2  # instances carry over
    assert [r["period_start"] for r in recorded.table("reviews", period_s=60, window_s=30, now=clock[0])] == [
        1_000_080
    ]  # the window looks back 30 s only


def test_prometheus_counts_match(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import generate_latest

    recorded = Metrics()
    for _ in range(3):
        recorded.answered("reviews", "A", model_ms=2.0, overhead_ms=0.5)
    recorded.failed("reviews", "A", 503)
    text = generate_latest(recorded.registry).decode()
    assert 'loopwise_invocations_total{endpoint="reviews",variant="A"} 3.0' in text
    assert 'loopwise_invocation_errors_total{endpoint="reviews",status="5xx",variant="A"} 1.0' in text
    assert 'loopwise_model_latency_seconds_count{endpoint="reviews",variant="A"} 3.0' in text
