"""What a fit sets up before its first step: seeds, frozen layers, the AdamW optimizer (no weight decay on
biases and norms) and the linear warm-up and decay of its learning rate."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from loopwise.classifiers._base import TrainConfig
from loopwise.errors import TrainingError

#: parameters whose name contains one of these get no weight decay
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm", "norm.weight")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def freeze_layers(model: nn.Module, layers: int) -> list[str]:
    """Freeze the embeddings and the ``layers`` lowest encoder layers of a BERT-family model
    (``-1``: the embeddings and every encoder layer; ``0``: nothing). The pooler and the classification
    head stay trainable. Returns the names of the parameters frozen; raises :class:`TrainingError` when
    the model has no ``base_model.embeddings`` / ``base_model.encoder.layer``.
    """
    if layers == 0:
        return []
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    encoder_layers = getattr(getattr(base, "encoder", None), "layer", None)
    if embeddings is None or encoder_layers is None:
        raise TrainingError(
            "freeze_layers works on BERT-family models (base_model.embeddings and base_model.encoder.layer); "
            f"{type(model).__name__} has neither: train with freeze_layers=0"
        )
    count = len(encoder_layers)
    if layers < -1 or layers > count:
        raise TrainingError(f"freeze_layers={layers} but the encoder has {count} layers: use -1 to {count}")
    modules = [embeddings, *encoder_layers[: count if layers == -1 else layers]]
    frozen_ids = {id(p) for module in modules for p in module.parameters()}
    frozen = []
    for name, parameter in model.named_parameters():
        if id(parameter) in frozen_ids:
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay for biases and norm weights."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if any(key in name for key in NO_DECAY) else decay).append(parameter)
    if not decay and not no_decay:
        raise TrainingError("every parameter is frozen: lower freeze_layers")
    groups = [
        {"params": params, "weight_decay": weight_decay}
        for params, weight_decay in ((decay, config.weight_decay), (no_decay, 0.0))
        if params
    ]
    # the fused kernel is about 5x faster than the default per-tensor loop (MiniLM on CPU: 20 vs 100 ms)
    fused = {parameter.device.type for parameter in decay + no_decay} <= {"cpu", "cuda"}
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused or None)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> Any:
    """Learning rate rising linearly from 0 over the warmup steps, then falling linearly to 0."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
