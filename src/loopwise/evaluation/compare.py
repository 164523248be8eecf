"""Is model B really better than model A on the same rows? A paired bootstrap and McNemar's exact test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest

from loopwise.errors import ConfigurationError, DataFormatError

__all__ = ["paired_comparison"]


def paired_comparison(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    *,
    name_a: str = "A",
    name_b: str = "B",
    bootstrap: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Compare two models' predictions for the same rows; a JSON-able dict.

    Keys: ``n``, ``name_a``, ``name_b``, ``accuracy_a``, ``accuracy_b``, ``difference`` (accuracy of B minus
    accuracy of A), ``difference_ci`` (the paired bootstrap ``1 - alpha`` percentile interval of the
    difference, from ``bootstrap`` resamples), ``confidence``, the discordant counts ``b01`` (A wrong, B
    right) and ``b10`` (A right, B wrong), ``test`` ("mcnemar_exact": a two-sided binomial test of ``b01``
    out of ``b01 + b10`` at 1/2; p = 1 when there are no discordant rows), ``p_value``, ``alpha``,
    ``significant`` (``p_value < alpha``), ``better`` (the more accurate model's name when significant,
    else ``None``) and ``summary``, one plain-English line.

    Labels are compared as strings. Raises :class:`DataFormatError` when the three sequences differ in
    length or are empty; :class:`ConfigurationError` for ``alpha`` outside (0, 1) or ``bootstrap`` below 1.
    """
    if not 0 < alpha < 1:
        raise ConfigurationError(f"alpha must lie between 0 and 1 (e.g. 0.05), not {alpha}")
    if bootstrap < 1:
        raise ConfigurationError(f"bootstrap must be a positive number of resamples, not {bootstrap}")
    lengths = {
        "y_true": len(y_true),
        f"predictions of {name_a}": len(pred_a),
        f"predictions of {name_b}": len(pred_b),
    }
    if len(set(lengths.values())) != 1:
        described = ", ".join(f"{what} {count}" for what, count in lengths.items())
        raise DataFormatError(
            f"a paired comparison needs one prediction per row from each model, but the lengths differ "
            f"({described}); predict both models on the same rows"
        )
    n = len(y_true)
    if n == 0:
        raise DataFormatError("there are no rows to compare; check that the split is not empty")

    truth = np.array([str(v) for v in y_true])
    right_a = truth == np.array([str(v) for v in pred_a])
    right_b = truth == np.array([str(v) for v in pred_b])
    b01 = int(np.sum(~right_a & right_b))
    b10 = int(np.sum(right_a & ~right_b))
    p_value = float(binomtest(b01, b01 + b10, 0.5).pvalue) if b01 + b10 else 1.0
    p_value = min(p_value, 1.0)

    accuracy_a = float(right_a.mean())
    accuracy_b = float(right_b.mean())
    difference = accuracy_b - accuracy_a
    low, high = _paired_bootstrap_ci(b01, b10, n, bootstrap, seed, alpha)
    significant = p_value < alpha
    better = None
    if significant:
        better = name_b if difference > 0 else name_a

    result: dict[str, Any] = {
        "n": n,
        "name_a": name_a,
        "name_b": name_b,
        "accuracy_a": accuracy_a,
        "accuracy_b": accuracy_b,
        "difference": difference,
        "difference_ci": [low, high],
        "confidence": 1 - alpha,
        "b01": b01,
        "b10": b10,
        "test": "mcnemar_exact",
        "p_value": p_value,
        "alpha": alpha,
        "significant": significant,
        "better": better,
        "bootstrap": {"resamples": bootstrap, "seed": seed},
    }
    result["summary"] = _summary(result)
    return result


def _paired_bootstrap_ci(
    b01: int, b10: int, n: int, resamples: int, seed: int, alpha: float
) -> tuple[float, float]:
    """Percentile interval of ``accuracy_b - accuracy_a`` over row resamples.

    Each row contributes +1 (only B right), -1 (only A right) or 0 to ``n * difference``, so resampling rows
    with replacement is the same as drawing how many of each kind a resample holds from a multinomial;
    that makes the bootstrap cost O(resamples) whatever ``n`` is.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([b01, b10, n - b01 - b10], dtype=float) / n
    counts = rng.multinomial(n, shares, size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / n
    low, high = np.percentile(differences, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _summary(result: dict[str, Any]) -> str:
    """E.g. "B is better than A by 3.1 points (95% CI 0.8 to 5.4), McNemar p=0.004: significant at 0.05"."""
    name_a, name_b = result["name_a"], result["name_b"]
    low, high = result["difference_ci"]
    level = f"{100 * result['confidence']:g}%"
    p = result["p_value"]
    p_text = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    verdict = f"McNemar {p_text}: {'' if result['significant'] else 'not '}significant at {result['alpha']:g}"
    points = 100 * result["difference"]
    if result["better"] == name_a:  # say it from the winner's side, with the interval flipped to match
        points, low, high = -points, -high, -low
        winner, loser = name_a, name_b
    else:
        winner, loser = name_b, name_a
    interval = f"({level} CI {100 * low:.1f} to {100 * high:.1f})"
    if result["better"] is None:
        return (
            f"{name_b} and {name_a} are not significantly different: {name_b} minus {name_a} is "
            f"{points:.1f} points {interval}, {verdict}"
        )
    return f"{winner} is better than {loser} by {points:.1f} points {interval}, {verdict}"
