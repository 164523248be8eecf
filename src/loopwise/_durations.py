"""Durations as people write them: ``30s``, ``15m``, ``1h``, ``10d``."""

from __future__ import annotations

import re

from loopwise.errors import DataFormatError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> float:
    """Seconds of ``text``; the error names ``option`` (like ``--every``)."""
    found = _DURATION.match(text)
    if found is None:
        raise DataFormatError(f"{option} {text!r}: give a number and a unit, like 30s, 15m, 1h or 1d")
    return float(found.group(1)) * _UNIT_S[found.group(2)]
