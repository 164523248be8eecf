"""Sample-ratio mismatch: is the traffic split the one that was configured?

A chi-square goodness-of-fit test (scipy) of the requests each variant got against the configured weights.
A mismatch means the split itself is broken (a sticky key that is not random, a variant that drops
requests, capture that samples one variant more than another), and no comparison of the variants is to be
trusted, however significant it looks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

#: below this sample-ratio-mismatch p-value the split is broken
SRM_ALPHA = 0.001


def sample_ratio_mismatch(counts: Mapping[str, int], weights: Mapping[str, float]) -> tuple[float, float]:
    """Chi-square goodness of fit of the traffic ``counts`` against the ``weights``: (statistic, p).

    Variants at weight 0 are left out; with fewer than two weighted variants, or no traffic yet, there is
    nothing to test and the answer is ``(0.0, 1.0)``."""
    names = [n for n in weights if weights[n] > 0]
    observed = np.array([counts.get(n, 0) for n in names], dtype=np.float64)
    if len(names) < 2 or observed.sum() == 0:
        return 0.0, 1.0
    shares = np.array([weights[n] for n in names], dtype=np.float64)
    expected = observed.sum() * shares / shares.sum()
    statistic, p_value = stats.chisquare(observed, expected)
    return float(statistic), float(p_value)
