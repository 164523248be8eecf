"""Experiments: the statistics of A/B tests and bandits, pure (numbers in, numbers out).

Always-valid sequential tests (the mSPRT), the sample-ratio-mismatch check, the verdict of an A/B test,
and Thompson sampling with its evidence. Serving keeps the traffic, the captures and the feedback and
imports these; nothing here imports serving. Names load lazily, so the serving data plane can import the
bandit without numpy or scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopwise._lazy import lazy_exports

if TYPE_CHECKING:
    from loopwise.experiments.bandit import BanditBook, Evidence, posterior_mean, thompson
    from loopwise.experiments.decisions import verdict
    from loopwise.experiments.ratio import SRM_ALPHA, sample_ratio_mismatch
    from loopwise.experiments.sequential import (
        DEFAULT_TAU,
        SequentialResult,
        msprt_lambda,
        peeking_false_positive_rate,
        sequential_test,
    )

_LAZY = {
    "BanditBook": "bandit",
    "Evidence": "bandit",
    "posterior_mean": "bandit",
    "thompson": "bandit",
    "verdict": "decisions",
    "SRM_ALPHA": "ratio",
    "sample_ratio_mismatch": "ratio",
    "DEFAULT_TAU": "sequential",
    "SequentialResult": "sequential",
    "msprt_lambda": "sequential",
    "peeking_false_positive_rate": "sequential",
    "sequential_test": "sequential",
}

__all__ = [
    "DEFAULT_TAU",
    "SRM_ALPHA",
    "BanditBook",
    "Evidence",
    "SequentialResult",
    "msprt_lambda",
    "peeking_false_positive_rate",
    "posterior_mean",
    "sample_ratio_mismatch",
    "sequential_test",
    "thompson",
    "verdict",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
