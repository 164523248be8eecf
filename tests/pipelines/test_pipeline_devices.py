"""``device`` and ``precision`` on pipeline steps: spelled like ``--device`` and ``--precision``, checked
with the file (by line and field), resolved on the machine that runs the step and recorded by it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loopwise.errors import PipelineSpecError
from loopwise.pipelines import service
from loopwise.pipelines.spec import parse_pipeline
from loopwise.storage import Store

STEPS = """\
name: placed
steps:
  - name: train
    uses: train
    with: {{dataset: "{dataset}", base_model: "{model}", model_name: placed, device: {device},
           precision: {precision},
           params: {{epochs: 1, steps_per_epoch: 2, batch_size: 8, max_seq_length: 16}}}}
  - name: compare
    uses: compare
    with: {{champion: "${{train.model}}", candidate: "${{train.model}}", dataset: "{dataset}",
           device: {compare_device}}}
"""


def _text(device: str = "cpu", precision: str = "bf16", compare_device: str = "cpu", **where: str) -> str:
    return STEPS.format(
        dataset=where.get("dataset", "d:1"),
        model=where.get("model", "m"),
        device=device,
        precision=precision,
        compare_device=compare_device,
    )


def test_a_bad_device_or_precision_is_refused_when_the_file_is_checked_naming_the_step_and_line() -> None:
    with pytest.raises(PipelineSpecError) as refused:
        parse_pipeline(_text(device="tpu", precision="fp8", compare_device="7"))
    problems = dict(refused.value.problems)
    assert "line 3: unknown device 'tpu'" in problems["steps.train.with.device"]
    assert "auto, cpu, cuda, cuda:N" in problems["steps.train.with.device"]
    assert "unknown precision 'fp8'" in problems["steps.train.with.precision"]
    assert "line 8: device takes a string such as auto, got 7" in problems["steps.compare.with.device"]


def test_good_spellings_and_references_pass_the_check() -> None:
    spec = parse_pipeline(_text(device="CUDA:1", precision="auto", compare_device="'${train.run}'"))
    assert spec.step("train").inputs["device"] == "CUDA:1"
    with pytest.raises(PipelineSpecError, match="takes no input"):  # only the steps that run torch take it
        parse_pipeline(
            "name: p\nsteps:\n  - name: a\n    uses: set-alias\n    with: {model: m, alias: x, device: cpu}\n"
        )


def test_a_train_step_records_its_device_and_precision_and_a_missing_gpu_fails_the_step_clearly(
    store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    tmp_path: Path,
    no_cuda: None,
) -> None:
    dataset = import_small(store)
    path = tmp_path / "placed.yaml"
    text = _text(compare_device="cuda", dataset=dataset, model=str(tiny_bert_dir))
    path.write_text(text, encoding="utf-8")
    service.create_pipeline(store, path)
    run = service.run_pipeline(store, "placed")
    assert run.status == "Failed" and run.step("train").status == "Succeeded"
    with store.uow() as uow:
        trained = uow.runs.get(run.outputs()["train"]["run"])
    assert trained.params["device"] == "cpu" and trained.params["precision"] == "bf16"
    assert trained.profile["device"] == "cpu" and trained.profile["precision"] == "bf16"
    assert (
        run.error is not None and "device cuda was asked for but this machine has no CUDA device" in run.error
    )
