"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loopwise.storage import Store


@pytest.fixture
def small_dataset(store: Store, import_small: Callable[[Store], str]) -> str:
    """The small separable 3-class data set, imported into the test's store."""
    return import_small(store)
