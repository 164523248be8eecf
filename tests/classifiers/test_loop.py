"""The generic training loop on a tiny random BERT."""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from loopwise.classifiers import InMemoryExamples, Reporter, TrainConfig
from loopwise.classifiers.loop import train
from loopwise.classifiers.optimization import build_optimizer, freeze_layers, linear_schedule
from loopwise.classifiers.profiler import PHASES, StepProfiler
from loopwise.errors import TrainingError

LABELS = ["-1", "0", "1"]
CUES = {"-1": ["awful", "hate", "poor"], "0": ["okay", "fine", "average"], "1": ["great", "love", "perfect"]}


def examples(count: int, seed: int, labels: list[str] = LABELS) -> InMemoryExamples:
    rng = random.Random(seed)
    texts, names = [], []
    for index in range(count):
        label = LABELS[index % 3]
        words = ["the", "dress", "fit", "it", "was"][: rng.randint(1, 5)] + [rng.choice(CUES[label])] * 2
        rng.shuffle(words)
        texts.append(" ".join(words))
        names.append(labels[index % 3])
    return InMemoryExamples(texts, names)


def encode(labels) -> list[int]:
    return [LABELS.index(label) for label in labels]


class Recorder(Reporter):
    def __init__(self, model: torch.nn.Module | None = None, stop_after_reports: int | None = None) -> None:
        self.model = model
        self.stop_after_reports = stop_after_reports
        self.train_steps: list[tuple[int, dict[str, float]]] = []
        self.validations: list[tuple[int, dict[str, float]]] = []
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.train_steps.append((step, metrics))

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validations.append((step, metrics))
        if self.model is not None:
            self.snapshots[step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def should_stop(self) -> bool:
        return self.stop_after_reports is not None and len(self.train_steps) >= self.stop_after_reports


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two spinning
    threads sometimes made a 0.6 s test take 10 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture
def model(tiny_bert_dir: Path):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)


def fit(model, tokenizer, train_examples, validation=None, reporter=None, **config):
    config = TrainConfig(**{"batch_size": 8, "learning_rate": 2e-3, "max_seq_length": 16, **config})
    return train(
        model, tokenizer, train_examples, encode, 3, validation=validation, config=config, reporter=reporter
    )


def test_steps_per_epoch_caps_each_epoch(model, tokenizer) -> None:
    result = fit(model, tokenizer, examples(80, 1), epochs=2, steps_per_epoch=3)
    assert result.steps == 6
    assert result.profile["steps"] == 6
    assert result.profile["examples"] == 6 * 8


def test_freeze_layers_freezes_embeddings_and_the_lowest_layers(model) -> None:
    frozen = set(freeze_layers(model, 1))
    assert frozen == {
        n for n, _ in model.named_parameters() if ".embeddings." in n or ".encoder.layer.0." in n
    }
    assert all(p.requires_grad == (n not in frozen) for n, p in model.named_parameters())


def test_freeze_all_layers_leaves_pooler_and_head_trainable(model) -> None:
    freeze_layers(model, -1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        n for n, _ in model.named_parameters() if "pooler" in n or n.startswith("classifier")
    }
    with pytest.raises(TrainingError, match="encoder has 2 layers"):
        freeze_layers(model, 3)


def test_frozen_parameters_do_not_change_while_training(model, tokenizer) -> None:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(model, tokenizer, examples(40, 1), freeze_layers=1)
    after = dict(model.named_parameters())
    for name, value in before.items():
        changed = not torch.equal(value, after[name])
        assert changed == (".embeddings." not in name and ".encoder.layer.0." not in name), name


def test_optimizer_skips_weight_decay_on_biases_and_layer_norms(model) -> None:
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed and not any("bias" in n or "LayerNorm" in n for n in decayed)


def test_learning_rate_warms_up_then_decays_linearly(model) -> None:
    optimizer = build_optimizer(model, TrainConfig(learning_rate=1.0))
    scheduler = linear_schedule(optimizer, total_steps=10, warmup_ratio=0.2)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] < rates[1] < rates[2] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(rates[2:]))


def test_best_state_is_restored(model, tokenizer) -> None:
    # Validation labels are rotated, so the more the model learns the worse it validates: the best state
    # is an early one, not the last.
    reporter = Recorder(model)
    validation = examples(30, 2, labels=["0", "1", "-1"])
    result = fit(
        model,
        tokenizer,
        examples(96, 1),
        validation,
        reporter,
        epochs=3,
        eval_every_steps=4,
        selection_metric="val_loss",
    )
    losses = {step: metrics["val_loss"] for step, metrics in reporter.validations}
    best_step = min(losses, key=losses.get)
    assert result.best_step == best_step < result.steps
    assert result.metrics["val_loss"] == losses[best_step]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reporter.snapshots[best_step].items())
    assert not all(torch.equal(state[k], v) for k, v in reporter.snapshots[max(losses)].items())


def test_should_stop_ends_the_fit_early(model, tokenizer) -> None:
    reporter = Recorder(stop_after_reports=1)
    result = fit(model, tokenizer, examples(200, 1), None, reporter, epochs=3)
    assert result.stopped_early
    assert result.steps == 10  # the first report comes after 10 steps


def test_reporter_receives_training_and_validation_metrics(model, tokenizer) -> None:
    reporter = Recorder()
    result = fit(model, tokenizer, examples(90, 1), examples(30, 2), reporter, epochs=2)
    assert [step for step, _ in reporter.train_steps] == [10, 20]
    assert all(m.keys() == {"loss", "learning_rate", "examples_per_s"} for _, m in reporter.train_steps)
    assert all(m["examples_per_s"] > 0 for _, m in reporter.train_steps)
    assert [step for step, _ in reporter.validations] == [12, 24]
    assert all(m.keys() == {"val_loss", "val_acc", "val_macro_f1"} for _, m in reporter.validations)
    assert result.metrics in [m for _, m in reporter.validations]


def test_fit_is_deterministic_for_a_seed(tiny_bert_dir: Path, tokenizer) -> None:
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3)
        fit(model, tokenizer, examples(32, 1), seed=7)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_profile_has_the_time_split_and_resources(model, tokenizer) -> None:
    profile = fit(model, tokenizer, examples(32, 1), examples(9, 2)).profile
    for key in ("examples_per_s", "wall_s", "peak_rss_mb", "cpu_utilization", "steps", "padding_ratio"):
        assert key in profile
    assert all(profile[f"{phase}_s"] > 0 for phase in (*PHASES, "validation"))
    assert profile["steps"] == 4
    json.dumps(profile)


def test_unknown_selection_metric_is_rejected(model, tokenizer) -> None:
    with pytest.raises(TrainingError, match="selection_metric"):
        fit(model, tokenizer, examples(8, 1), selection_metric="accuracy")


def test_profiler_charges_time_to_phases() -> None:
    profiler = StepProfiler()
    profiler.start()
    with profiler.phase("forward"):
        time.sleep(0.01)
    profiler.step(examples=4, tokens=30, padded_tokens=40)
    summary = profiler.summary()
    assert summary["forward_s"] >= 0.01
    assert summary["examples"] == 4
    assert summary["padding_ratio"] == 0.25
    assert summary["time_share"]["forward"] == pytest.approx(1.0)


def test_progress_bar_can_be_switched_on(model, tokenizer, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig(batch_size=8, max_seq_length=16, steps_per_epoch=2)
    train(model, tokenizer, examples(16, 1), encode, 3, config=config, progress=True)
    assert "training" in capsys.readouterr().err
