"""What several benchmarks share: the model they measure with, and servers started on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from typing import Any


def free_port() -> int:
    """A port of 127.0.0.1 free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    """Wait until ``url`` answers 2xx, failing early when the server ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Stop a server: SIGTERM, then SIGKILL when it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def fine_tune(store: Any, dataset: str, steps: int, *, name: str = "bench-minilm") -> Any:
    """MiniLM fine-tuned for ``steps`` (batch 16) on the data set ``dataset`` (a reference such as
    ``reviews:1``), registered with it (so that an int8 export's accuracy against PyTorch is measured on its
    validation split, as for any int8 variant). Returns the model version."""
    from loopwise.classifiers import TrainConfig
    from loopwise.training.service import TrainRequest, train

    config = TrainConfig(steps_per_epoch=steps, batch_size=16, learning_rate=5e-5)
    request = TrainRequest(dataset=dataset, model_name=name, config=config)
    outcome = train(store, request, progress=False)
    assert outcome.model is not None
    return outcome.model
