"""What the training tests share: a training configuration small enough for the tiny BERT."""

from __future__ import annotations

from loopwise.classifiers import TrainConfig


def small_config(**overrides: object) -> TrainConfig:
    """Batch 8, 2 epochs, 32 tokens, a high learning rate, validation every 4 steps; ``overrides`` win."""
    values: dict[str, object] = {
        "batch_size": 8,
        "epochs": 2,
        "max_seq_length": 32,
        "learning_rate": 1e-3,
        "eval_every_steps": 4,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]
