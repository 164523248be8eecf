"""What several benchmarks share: the model they measure with."""

from __future__ import annotations

from typing import Any


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
