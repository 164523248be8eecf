"""One answered request, and the record the capture keeps of it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Invocation:
    """One answered request."""

    inference_id: str
    endpoint: str
    variant: str
    #: the model version that answered (``name:version``)
    model: str
    labels: list[str]
    proba: np.ndarray
    model_ms: float
    #: what the router added: the whole request minus the model call
    overhead_ms: float
    #: the human loop each text started (None: its prediction did not fire the attached flow's conditions)
    human_loops: tuple[str | None, ...] = ()


def capture_record(
    result: Invocation,
    texts: Sequence[str],
    embeddings: np.ndarray | None,
    latency_ms: float,
    config_version: int | None,
    shadow_of: str | None = None,
) -> dict[str, Any]:
    """What the capture writes for ``result`` (a shadow's answer names the production variant it
    shadowed in ``shadow_of``)."""
    record = {
        "inference_id": result.inference_id,
        "endpoint": result.endpoint,
        "variant": result.variant,
        "model": result.model,
        "config_version": config_version,
        "time": time.time(),
        "latency_ms": round(latency_ms, 3),
        "model_ms": round(result.model_ms, 3),
        "input": list(texts),
        "labels": result.labels,
        "probabilities": result.proba,
        "predicted_label": [result.labels[int(i)] for i in result.proba.argmax(axis=1)],
        "embedding": embeddings,
    }
    if shadow_of is not None:
        record["shadow_of"] = shadow_of
    return record
