"""A real loopwise server on 127.0.0.1 for the serving tests: uvicorn in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from loopwise import registry
from loopwise.api.app import create_app
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


@contextmanager
def running_server(store: Store, **options: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """Serve ``create_app(store)`` on an ephemeral port; yields an HTTP client on it and the app."""
    app = create_app(store, **options)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start in 120 s"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, app
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def two_models(store: Store, import_small: Callable[[Store], str]) -> Store:
    """Two TF-IDF versions of small-tfidf, the second with the alias champion."""
    dataset = import_small(store)
    for _ in range(2):
        train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:2", "champion")
    return store
