"""``--device`` and ``--precision`` for the commands that run a model's ONNX export as endpoints do (batch
transform, monitoring baselines): spelled and refused like training's options (one line, exit 2, naming the
option), placed on ONNX Runtime's providers (a GPU device falls back to the CPU with one warning where this
machine's ONNX Runtime has no CUDA provider), and where the model ran is reported and recorded."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from loopwise import registry
from loopwise.classifiers import TrainConfig
from loopwise.classifiers._providers import onnx_placement
from loopwise.cli import main
from loopwise.errors import ConfigurationError
from loopwise.monitoring.service import create_baseline
from loopwise.registry.exports import serving_dir
from loopwise.serving.batch import batch_transform
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

pytestmark = pytest.mark.sqlite_only

CPU = "CPUExecutionProvider"


def _pretend_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch reports one CUDA device (ONNX Runtime here still has only its CPU provider)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (2**30, 2**31))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "device", lambda device: nullcontext())


def test_onnx_placement_defaults_and_refusals(no_cuda: None) -> None:
    assert onnx_placement() == ("auto", "fp32")
    assert onnx_placement("auto", "fp16") == ("auto", "fp16")  # the fp32 twin runs where no GPU is
    assert onnx_placement("CPU", "auto") == ("cpu", "fp32")
    refusals = {
        ("cuda", "auto"): "device cuda was asked for but this machine has no CUDA device",
        ("mps", "auto"): "device mps: ONNX Runtime runs the model's export on the CPU or a CUDA GPU only",
        ("cpu", "bf16"): "precision bf16: the model's ONNX export runs in fp32 or fp16 only",
        ("cpu", "fp16"): "precision fp16 is not supported on the CPU",
        ("tpu", "auto"): "unknown device 'tpu'",
    }
    for (device, precision), says in refusals.items():
        with pytest.raises(ConfigurationError, match=says):
            onnx_placement(device, precision)


def test_a_gpu_defaults_to_the_fp16_export(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_torch_sees_a_gpu(monkeypatch)
    assert onnx_placement("cuda", "auto") == ("cuda:0", "fp16")
    assert onnx_placement("cuda:0", "fp32") == ("cuda:0", "fp32")


def _usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert stopped.value.code == 2, captured.err
    assert len(lines) == 1 and "Traceback" not in captured.err and not captured.out, captured.err
    return lines[0]


COMMANDS = [
    ("batch-transform", "m:1", "in.jsonl", "out.jsonl"),
    ("monitor", "baseline", "--dataset", "d", "--model", "m:1"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_commands_refuse_a_device_or_precision_naming_the_option(
    capsys: pytest.CaptureFixture[str],
    no_cuda: None,
    command: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "300")
    line = _usage_error(capsys, *command, "--device", "cuda")
    assert "'--device'" in line and "no CUDA device" in line and "use --device cpu or auto" in line
    line = _usage_error(capsys, *command, "--device", "tpu")
    assert "'--device'" in line and "auto, cpu, cuda, cuda:N" in line
    line = _usage_error(capsys, *command, "--precision", "bf16")
    assert "'--precision'" in line and "fp32 or fp16 only" in line
    main([*command[:2], "--help"])
    out = capsys.readouterr().out
    assert "--device" in out and "--precision" in out and "cuda:N" in out


@pytest.fixture
def tiny_model(store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path) -> str:
    """A tiny BERT trained and registered as ``tiny:1``; returns its data set's ref."""
    dataset = import_small(store)
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32, steps_per_epoch=2, device="cpu")
    request = TrainRequest(dataset=dataset, base_model=str(tiny_bert_dir), model_name="tiny", config=config)
    assert train(store, request, progress=False).model is not None
    return dataset


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": f"great item {i}"}) + "\n" for i in range(30)))
    return source


def test_batch_transform_runs_where_it_is_told_and_says_so(
    store: Store,
    tiny_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _source(tmp_path)
    with store.uow() as uow:  # exported before torch pretends: the exporter itself asks torch about CUDA
        serving_dir(store, registry.resolve(uow, "tiny:1"), "fp16")
    _pretend_torch_sees_a_gpu(monkeypatch)
    on_cpu = batch_transform(store, "tiny:1", source, tmp_path / "cpu.jsonl", device="cpu", precision="fp32")
    assert on_cpu.lines == 30 and on_cpu.placed.provider == CPU and on_cpu.placed.fallback is None
    assert (on_cpu.placed.device, on_cpu.placed.precision) == ("cpu", "fp32")
    with caplog.at_level(logging.WARNING, logger="loopwise.serving"):
        on_gpu = batch_transform(store, "tiny:1", source, tmp_path / "gpu.jsonl", device="cuda:0")
    # asked for the GPU's fp16 export; ONNX Runtime here has no CUDA provider: one warning, the fp32 twin
    assert on_gpu.placed.device == "cuda:0" and on_gpu.placed.provider == CPU
    assert on_gpu.placed.precision == "fp32" and "CUDAExecutionProvider" in (on_gpu.placed.fallback or "")
    assert len([r for r in caplog.records if "serving on the CPU" in r.getMessage()]) == 1
    read = [(tmp_path / name).read_text().splitlines() for name in ("cpu.jsonl", "gpu.jsonl")]
    assert read[0] == read[1]  # the same fp32 model answered both


def test_a_baseline_records_where_its_answers_and_embeddings_were_computed(
    store: Store, tiny_model: str, no_cuda: None
) -> None:
    directory = create_baseline(store, tiny_model, "tiny:1", max_texts=40, device="cpu", precision="fp32")
    statistics = json.loads((directory / "statistics.json").read_text())
    assert statistics["source"]["placement"] == {
        "device": "cpu",
        "provider": CPU,
        "precision": "fp32",
        "fallback": None,
    }
    assert statistics["embeddings"]["dimension"] == 32  # the tiny BERT's hidden size
    with pytest.raises(ConfigurationError, match="no CUDA device"):
        create_baseline(store, tiny_model, "tiny:1", max_texts=40, device="cuda")
