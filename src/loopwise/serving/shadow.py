"""Shadow variants compared with production: agreement and the per-class flip matrix.

Each shadow answer is compared with the production answer of the same request: the share of texts where
both predicted the same label, and how often production's label ``a`` became the shadow's ``b``. A high
agreement with a few systematic flips is what to look at before promoting a shadow.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any


class ShadowComparison:
    """Running comparison counts per (endpoint, shadow variant); thread-safe."""

    def __init__(self) -> None:
        self._flips: dict[tuple[str, str], Counter[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def add(self, endpoint: str, shadow: str, production: Sequence[str], shadowed: Sequence[str]) -> None:
        """Count one request: production's and the shadow's predicted labels, text by text."""
        with self._lock:
            flips = self._flips.setdefault((endpoint, shadow), Counter())
            flips.update(zip(production, shadowed, strict=True))

    def report(self, endpoint: str) -> dict[str, Any]:
        """Per shadow variant: texts compared, agreement, and the flip matrix (production label ->
        shadow label -> count)."""
        with self._lock:
            items = {s: Counter(c) for (e, s), c in self._flips.items() if e == endpoint}
        report = {}
        for shadow, flips in sorted(items.items()):
            compared = sum(flips.values())
            agree = sum(n for (a, b), n in flips.items() if a == b)
            matrix: dict[str, dict[str, int]] = {}
            for (a, b), n in sorted(flips.items()):
                matrix.setdefault(a, {})[b] = n
            report[shadow] = {
                "compared": compared,
                "agreement": agree / compared if compared else None,
                "flip_matrix": matrix,
            }
        return report
