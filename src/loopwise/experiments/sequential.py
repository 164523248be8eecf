"""A/B statistics that stay valid while people look: the mixture sequential probability ratio test.

A fixed-sample test (a z-test of two accuracies) is only valid when read once, at a sample size chosen
beforehand; read after every batch of feedback and stopped at the first p < 0.05, it declares a winner
between two identical models far more often than 5% of the time. The mSPRT (Johari, Koomen, Pekelis and
Walsh, "Always valid inference", 2017/2022) is valid at every sample size at once: with the difference of
two proportions estimated as ``d`` with variance ``V`` and a normal mixture ``N(0, tau^2)`` over the
alternative, the likelihood ratio is

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

and ``p = min(1, 1 / max Lambda so far)`` is an always-valid p-value: the chance that it ever drops below
``alpha`` under no difference is at most ``alpha`` however often it is computed. Inverting the test gives
the always-valid confidence sequence ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V +
tau^2) / V)))``. No library ships this (statsmodels and scipy have fixed-sample tests only), so it is
written here and tested by simulation (:func:`peeking_false_positive_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: the mixture's spread: the size of difference the test is tuned to find fastest (5 points of accuracy)
DEFAULT_TAU = 0.05


@dataclass(frozen=True)
class SequentialResult:
    """The always-valid comparison of two proportions after all observations so far."""

    n_a: int
    n_b: int
    rate_a: float
    rate_b: float
    #: rate_b - rate_a
    difference: float
    #: always-valid p-value (the smallest over every look so far)
    p_value: float
    #: always-valid confidence sequence for the difference, at 1 - alpha
    low: float
    high: float


def msprt_lambda(difference: np.ndarray, variance: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """The mixture likelihood ratio for estimated differences and their variances (element-wise; a
    variance of 0, before there is data, gives 1)."""
    difference, variance = np.asarray(difference, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    safe = np.where(variance > 0, variance, 1.0)
    tau2 = tau * tau
    log_lambda = 0.5 * np.log(safe / (safe + tau2)) + difference**2 * tau2 / (2 * safe * (safe + tau2))
    return np.where(variance > 0, np.exp(np.minimum(log_lambda, 700.0)), 1.0)


def sequential_test(
    outcomes_a: Sequence[float], outcomes_b: Sequence[float], *, alpha: float = 0.05, tau: float = DEFAULT_TAU
) -> SequentialResult:
    """Compare the proportions of two variants' 0/1 outcomes (correct or not), looking after every
    observation in the order given (the order feedback arrived), with the mSPRT."""
    a, b = np.asarray(outcomes_a, dtype=np.float64), np.asarray(outcomes_b, dtype=np.float64)
    n_a, n_b = len(a), len(b)
    rate_a = float(a.mean()) if n_a else math.nan
    rate_b = float(b.mean()) if n_b else math.nan
    if min(n_a, n_b) < 2:
        return SequentialResult(n_a, n_b, rate_a, rate_b, rate_b - rate_a, 1.0, -1.0, 1.0)
    # Looks: after each observation of the shorter stream, with the other stream at the same share.
    looks = np.arange(2, min(n_a, n_b) + 1)
    ka = np.minimum(n_a, np.ceil(looks * n_a / min(n_a, n_b)).astype(int))
    kb = np.minimum(n_b, np.ceil(looks * n_b / min(n_a, n_b)).astype(int))
    ca, cb = np.cumsum(a), np.cumsum(b)
    pa, pb = ca[ka - 1] / ka, cb[kb - 1] / kb
    variance = _variance(pa, ka) + _variance(pb, kb)
    lambdas = msprt_lambda(pb - pa, variance, tau)
    p_value = float(min(1.0, 1.0 / lambdas.max()))
    v = float(variance[-1])
    d = rate_b - rate_a
    half = (
        math.sqrt(v * (v + tau**2) / tau**2 * (2 * math.log(1 / alpha) + math.log((v + tau**2) / v)))
        if v > 0
        else 1.0
    )
    return SequentialResult(n_a, n_b, rate_a, rate_b, d, p_value, max(-1.0, d - half), min(1.0, d + half))


def _variance(rate: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The variance of an estimated proportion, kept off 0 (a run of all-correct answers is not
    certainty) with the Agresti-Coull-style pseudo-counts."""
    adjusted = (rate * n + 1) / (n + 2)
    return adjusted * (1 - adjusted) / n


def peeking_false_positive_rate(
    *,
    rate: float = 0.7,
    n: int = 2000,
    replicates: int = 500,
    alpha: float = 0.05,
    tau: float = DEFAULT_TAU,
    seed: int = 0,
) -> tuple[float, float]:
    """Simulate A/A tests (both variants right with probability ``rate``) looked at after every pair of
    observations up to ``n``; returns how often each test ever declared a difference: (mSPRT, the naive
    two-proportion z-test)."""
    rng = np.random.default_rng(seed)
    a = rng.random((replicates, n)) < rate
    b = rng.random((replicates, n)) < rate
    k = np.arange(1, n + 1)
    pa, pb = np.cumsum(a, axis=1) / k, np.cumsum(b, axis=1) / k
    variance = _variance(pa, k) + _variance(pb, k)
    msprt = (msprt_lambda(pb - pa, variance, tau)[:, 1:] >= 1 / alpha).any(axis=1)
    pooled = (pa + pb) / 2
    z_variance = np.where(pooled * (1 - pooled) > 0, 2 * pooled * (1 - pooled) / k, np.inf)
    z = np.abs(pb - pa) / np.sqrt(z_variance)
    naive = (z[:, 29:] > stats.norm.ppf(1 - alpha / 2)).any(axis=1)  # from 30 observations on
    return float(msprt.mean()), float(naive.mean())
