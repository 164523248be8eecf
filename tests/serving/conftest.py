"""A real loopwise server on 127.0.0.1 for the serving tests: uvicorn in a thread of the test process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_helpers import admin_token, bearer
from loopwise import registry
from loopwise.api.app import background_server
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


@contextmanager
def running_server(store: Store, **options: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """A real server over ``store`` on 127.0.0.1; yields an HTTP client on it (with an admin's API token)
    and the app."""
    headers = bearer(admin_token(store))
    with (
        background_server(store, **options) as (url, app),
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        yield client, app


@pytest.fixture
def two_models(store: Store, import_small: Callable[[Store], str]) -> Store:
    """Two TF-IDF versions of small-tfidf, the second with the alias champion."""
    dataset = import_small(store)
    for _ in range(2):
        train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:2", "champion")
    return store


FLAKY = """
from pathlib import Path

import numpy as np

from loopwise.classifiers import TextClassifier, read_manifest, write_manifest


class FlakyClassifier(TextClassifier):
    \"\"\"A test plugin backend whose model raises on any text holding 'boom'.\"\"\"

    backend = "flaky"

    def fit(self, *args, **kwargs):
        raise NotImplementedError

    def predict_proba(self, texts, batch_size=64):
        if any("boom" in t for t in texts):
            raise ValueError("boom in the model")
        return np.full((len(texts), len(self.labels)), 1 / len(self.labels))

    def save(self, directory):
        write_manifest(Path(directory), self.backend, self.labels)

    @classmethod
    def load(cls, directory):
        return cls(read_manifest(Path(directory))["labels"])
"""


@pytest.fixture
def flaky_model(two_models: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """``flaky:1``: a model of a plugin backend whose every call with a text holding 'boom' raises;
    installed the way plugins are, a module and its entry point on the path (the workers' too)."""
    plugins = tmp_path / "plugins"
    (plugins / "flaky_backend-1.0.dist-info").mkdir(parents=True)
    (plugins / "flaky_backend.py").write_text(FLAKY, encoding="utf-8")
    (plugins / "flaky_backend-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flaky-backend\nVersion: 1.0\n", encoding="utf-8"
    )
    (plugins / "flaky_backend-1.0.dist-info" / "entry_points.txt").write_text(
        "[loopwise.classifiers]\nflaky = flaky_backend:FlakyClassifier\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]))
    checkpoint = two_models.artifacts.path("models/flaky")
    checkpoint.mkdir(parents=True)
    (checkpoint / "classifier.json").write_text(
        json.dumps({"format": 1, "backend": "flaky", "labels": ["-1", "0", "1"]}), encoding="utf-8"
    )
    with two_models.uow() as uow:
        registry.register(uow, "flaky", backend="flaky", uri=checkpoint.as_uri(), labels=["-1", "0", "1"])
    return two_models
