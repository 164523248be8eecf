"""The A/B report of an endpoint: traffic, latency and model quality per production variant, and a verdict.

It reads the endpoint's captured requests (capture every request for an A/B test: ``capture.share: 1``;
with a smaller share the figures are estimated from the sample) and joins the feedback posted for their
inference ids. Per variant: traffic against the configured weights (sample-ratio mismatch), latency
(mean, p50, p99), and accuracy on the texts that got ground truth. Each challenger is compared with the
control (the first production variant) by the always-valid mSPRT
(:mod:`loopwise.experiments.sequential`) in the order feedback arrived, at ``alpha`` split over the
comparisons (Bonferroni), so reading the report as often as one likes does not inflate false winners.

Verdict (:func:`loopwise.experiments.decisions.verdict`): ``winner`` when a comparison is significant (the
better of the two wins), ``no difference`` when every confidence sequence lies within ``+-min_effect``, else
``keep running``; ``invalid split`` overrides all when the traffic does not match the weights (SRM p <
0.001): the split itself is broken. The statistics live in :mod:`loopwise.experiments`; this module reads
the captures and the feedback they stand on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from loopwise.errors import EndpointConfigError
from loopwise.experiments.decisions import verdict as decide
from loopwise.experiments.ratio import SRM_ALPHA, sample_ratio_mismatch
from loopwise.experiments.sequential import sequential_test
from loopwise.serving.capture import read_captures
from loopwise.serving.endpoints import load

if TYPE_CHECKING:
    from loopwise.storage import Store


def ab_report(
    store: Store,
    endpoint: str,
    *,
    alpha: float = 0.05,
    min_effect: float = 0.01,
    since_config: int | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``since_config``: only the requests answered under that configuration version of the endpoint or
    a later one (the start of this split: earlier traffic under other weights would break the
    sample-ratio check and mix two experiments). ``only``: only these production variants, the
    first the control (a pipeline's A/B test: the champion against its candidate, whatever other
    variant the endpoint keeps at weight 0)."""
    with store.uow() as uow:
        current = load(uow, endpoint)
        feedback = {f.inference_id: f for f in uow.feedback.for_endpoint(endpoint)}
    config = current.config
    production = _compared(endpoint, [v.name for v in config.production], only)
    records = [
        r
        for r in read_captures(store.artifacts.host_dir("capture"), endpoint)
        if r["variant"] in production and "shadow_of" not in r and _since(r, since_config)
    ]
    traffic, latencies, outcomes = _tally(records, production, feedback)
    weights = {v.name: v.weight for v in config.production if v.name in production}
    srm_statistic, srm_p = sample_ratio_mismatch(traffic, weights)
    variants = {
        name: _variant_figures(traffic[name], weights[name], latencies[name], outcomes[name])
        for name in production
    }
    comparisons = _comparisons(production, outcomes, alpha)
    verdict, winner = decide(comparisons, min_effect, srm_p)
    return {
        "endpoint": endpoint,
        "config_version": current.current.version,
        "captured_requests": len(records),
        "feedback": len(feedback),
        "sample_ratio_mismatch": {"statistic": srm_statistic, "p_value": srm_p, "broken": srm_p < SRM_ALPHA},
        "variants": variants,
        "comparisons": comparisons,
        "verdict": verdict,
        "winner": winner,
        "alpha": alpha,
        "min_effect": min_effect,
        "since_config": since_config,
    }


def _compared(endpoint: str, production: list[str], only: Sequence[str] | None) -> list[str]:
    """The production variants compared, the control first: ``only`` when given (each must be one)."""
    if only is None:
        return production
    unknown = [v for v in only if v not in production]
    if unknown:
        raise EndpointConfigError(
            f"{', '.join(unknown)}: not production variants of {endpoint} ({', '.join(production)})",
            [("only", "unknown variant")],
        )
    return list(only)


#: per variant: (feedback time, 1.0 when the prediction was right else 0.0) for each labelled text
_Outcomes = dict[str, list[tuple[Any, float]]]


def _tally(
    records: list[dict[str, Any]], production: list[str], feedback: dict[str, Any]
) -> tuple[dict[str, int], dict[str, list[float]], _Outcomes]:
    """Per variant: its requests, their latencies, and the outcome of each text that got ground truth."""
    traffic = {name: 0 for name in production}
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: _Outcomes = defaultdict(list)
    for record in records:
        variant = record["variant"]
        traffic[variant] += 1
        latencies[variant].append(float(record["latency_ms"]))
        truth = feedback.get(record["inference_id"])
        if truth is None or truth.labels is None:
            continue
        for predicted, label in zip(record["predicted_label"], truth.labels, strict=False):
            outcomes[variant].append((truth.created_at, float(predicted == label)))
    return traffic, latencies, outcomes


def _in_order(outcomes: list[tuple[Any, float]]) -> list[float]:
    """The outcomes in the order their feedback arrived."""
    return [o for _, o in sorted(outcomes, key=lambda item: item[0])]


def _variant_figures(
    requests: int, weight: float, latencies: list[float], outcomes: list[tuple[Any, float]]
) -> dict[str, Any]:
    times = np.array(latencies) if latencies else None
    scored = _in_order(outcomes)
    return {
        "requests": requests,
        "weight": weight,
        "latency_ms": None
        if times is None
        else {
            "mean": float(times.mean()),
            "p50": float(np.percentile(times, 50)),
            "p99": float(np.percentile(times, 99)),
        },
        "labelled": len(scored),
        "accuracy": float(np.mean(scored)) if scored else None,
    }


def _comparisons(production: list[str], outcomes: _Outcomes, alpha: float) -> list[dict[str, Any]]:
    """Each challenger against the control (the first variant) by mSPRT, at ``alpha`` split over them."""
    control = production[0]
    comparisons = []
    level = alpha / max(1, len(production) - 1)
    for challenger in production[1:]:
        result = sequential_test(_in_order(outcomes[control]), _in_order(outcomes[challenger]), alpha=level)
        comparisons.append({"control": control, "challenger": challenger, "alpha": level, **asdict(result)})
    return comparisons


def _since(record: dict[str, Any], version: int | None) -> bool:
    return version is None or (record.get("config_version") or 0) >= version
