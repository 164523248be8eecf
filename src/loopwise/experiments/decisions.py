"""The decision of an A/B test, from its sequential comparisons and its sample-ratio check.

Each comparison is a challenger against the control (a mapping with at least ``control``, ``challenger``,
``alpha``, ``p_value``, ``difference``, ``low`` and ``high``, as the A/B report builds them from
:class:`~loopwise.experiments.sequential.SequentialResult`). The verdict:

- ``invalid split`` overrides all when the traffic does not match the weights (sample-ratio p below
  :data:`~loopwise.experiments.ratio.SRM_ALPHA`): the split itself is broken;
- ``winner`` when a comparison is significant at its own ``alpha``: the challenger that beat the control
  by the most, or the control when it beat every challenger;
- ``no difference`` when every confidence sequence lies within ``+-min_effect``;
- else ``keep running``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopwise.experiments.ratio import SRM_ALPHA


def verdict(
    comparisons: Sequence[Mapping[str, Any]], min_effect: float, srm_p: float
) -> tuple[str, str | None]:
    """``(verdict, winner)``: the winner's variant name with ``winner``, else ``None``."""
    if srm_p < SRM_ALPHA:
        return "invalid split", None
    if not comparisons:
        return "keep running", None
    significant = [c for c in comparisons if c["p_value"] < c["alpha"]]
    if significant:
        # the best: a challenger that beat the control by the most, else the control
        better = [c for c in significant if c["difference"] > 0]
        if better:
            return "winner", max(better, key=lambda c: c["difference"])["challenger"]
        if len(significant) == len(comparisons):
            return "winner", comparisons[0]["control"]
        return "keep running", None
    if all(-min_effect <= c["low"] and c["high"] <= min_effect for c in comparisons):
        return "no difference", None
    return "keep running", None
