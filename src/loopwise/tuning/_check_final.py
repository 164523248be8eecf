"""The checker's part for ``final_fit``: what a tuning job trains once its search ends (see
:class:`~loopwise.tuning.spec.FinalFit`). Private to :mod:`loopwise.tuning._check`."""

from __future__ import annotations

import typing
from typing import Any

from loopwise.tuning._problems import Problems
from loopwise.tuning.spec import FinalFit, FinalFitData


def check_final_fit(problems: Problems, raw: Any, path: str = "final_fit") -> FinalFit:
    """``final_fit: {enabled, data, epochs}``; a bare ``true``/``false`` is ``enabled``. Problems are
    added to ``problems``; a bad field falls back to its default."""
    if raw is None:
        return FinalFit()
    if isinstance(raw, bool):
        return FinalFit(enabled=raw)
    body = {
        key: value for key, (_, value) in problems.keys(raw, path, ["enabled", "data", "epochs"], {}).items()
    }
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{path}.enabled", f"expected true or false, got {enabled!r}")
        enabled = True
    choices = typing.get_args(FinalFitData)
    data: FinalFitData = problems.choice(body.get("data", "train"), f"{path}.data", choices) or "train"
    epochs = body.get("epochs")
    if epochs is not None:
        epochs = problems.number(epochs, f"{path}.epochs", True, 1)
    return FinalFit(enabled=enabled, data=data, epochs=epochs)
