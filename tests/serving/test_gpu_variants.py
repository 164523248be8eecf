"""Variants on a GPU device: the configuration's device field, its GPU defaults (fp16, larger batches),
and workers that fall back to the CPU provider with one warning, still serve, and say so in the
endpoint's description. This machine's ONNX Runtime has no CUDA provider: every cuda variant here falls
back, which is the path under test."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import run_loopwise, running_server
from loopwise import registry
from loopwise.classifiers import TrainConfig
from loopwise.classifiers.onnx import OnnxClassifier
from loopwise.config import Settings
from loopwise.errors import EndpointConfigError
from loopwise.registry.exports import serving_dir
from loopwise.serving.config import (
    CPU_MAX_BATCH_SIZE,
    GPU_MAX_BATCH_SIZE,
    parse_endpoint_config,
    parse_variant_option,
)
from loopwise.serving.records import EndpointStatus
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train

TEXTS = ["I love this product!", "OK, but not great.", "This is not the right product."]
CPU = "CPUExecutionProvider"


def _variant(**fields: object) -> dict[str, object]:
    return {"variants": [{"name": "A", "model": "tiny:1", **fields}]}


def _train_tiny(store: Store, import_small: Callable[[Store], str], tiny_bert_dir: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=8, max_seq_length=32, learning_rate=1e-3)
    request = TrainRequest(
        dataset=import_small(store), base_model=str(tiny_bert_dir), model_name="tiny", config=config
    )
    assert train(store, request, progress=False).model is not None


def test_a_variant_runs_on_the_cpu_unless_it_names_a_device() -> None:
    [variant] = parse_endpoint_config(_variant()).variants
    assert (variant.device, variant.precision, variant.max_batch_size) == ("cpu", "fp32", CPU_MAX_BATCH_SIZE)
    # a cuda device brings the GPU's defaults; what the configuration says wins
    [gpu] = parse_endpoint_config(_variant(device="cuda:1")).variants
    assert (gpu.device, gpu.precision, gpu.max_batch_size) == ("cuda:1", "fp16", GPU_MAX_BATCH_SIZE)
    [mine] = parse_endpoint_config(_variant(device="cuda", precision="fp32", max_batch_size=16)).variants
    assert (mine.precision, mine.max_batch_size) == ("fp32", 16)
    # auto takes a GPU only when there is one: the CPU's defaults, any precision
    [auto] = parse_endpoint_config(_variant(device="auto", precision="fp16")).variants
    assert (auto.precision, auto.max_batch_size) == ("fp16", CPU_MAX_BATCH_SIZE)
    # from the command line, and back from the stored form unchanged
    option = parse_variant_option("name=A,model=tiny:1,device=cuda:0")
    config = parse_endpoint_config({"variants": [option]})
    assert parse_endpoint_config(config.to_dict()) == config and config.variants[0].precision == "fp16"


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"device": "gpu"}, "variants.A.device", "device 'gpu': use cpu, cuda, cuda:N"),
        ({"device": "cuda:one"}, "variants.A.device", "cuda:N (the GPU's number, such as cuda:1)"),
        ({"device": "mps"}, "variants.A.device", "or auto"),
        ({"precision": "fp16"}, "variants.A.precision", "fp16 is for GPUs: set device cuda"),
        ({"device": "cuda", "precision": "int8"}, "variants.A.precision", "int8 runs on the CPU only"),
    ],
)
def test_a_bad_device_or_a_precision_it_cannot_run_is_refused_by_its_field(
    fields: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(EndpointConfigError) as raised:
        parse_endpoint_config(_variant(**fields))
    assert [name for name, _ in raised.value.problems] == [field]
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_cuda_variant_without_the_cuda_provider_serves_on_the_cpu_and_says_so_once(
    sqlite_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _train_tiny(sqlite_store, import_small, tiny_bert_dir)
    said: list[str] = []
    endpoint = create_endpoint(
        sqlite_store, "gpu", parse_endpoint_config(_variant(device="cuda")), progress=said.append
    )
    assert endpoint.status is EndpointStatus.IN_SERVICE, endpoint.failure_reason
    # the export holds the fp16 model the GPU would run, and the fp32 one the CPU runs instead
    with sqlite_store.uow() as uow:
        version = registry.resolve(uow, "tiny:1")
    exported = serving_dir(sqlite_store, version, "fp16")
    assert {"model.onnx", "model.fp16.onnx"} <= {p.name for p in exported.iterdir()}
    assert (
        [line for line in said if "warning" in line]
        == [line for line in said if line.startswith("A: warning: device cuda: ONNX Runtime has no CUDA")]
        != []
    ), said
    expected = OnnxClassifier.load(exported).predict_proba(TEXTS)
    capfd.readouterr()
    with running_server(sqlite_store) as (client, _):
        answer = client.post("/api/v1/endpoints/gpu/predict", json={"texts": TEXTS})
        described = client.get("/api/v1/endpoints/gpu").json()
    assert answer.status_code == 200, answer.text
    got = np.array(
        [[p["probabilities"][label] for label in version.labels] for p in answer.json()["predictions"]]
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)  # the fp32 twin answers on the CPU
    provider = described["providers"]["A"]
    assert provider["device"] == "cuda" and provider["provider"] == CPU
    assert "no CUDAExecutionProvider" in provider["fallback"] and "loopwise[gpu]" in provider["fallback"]
    warnings = [line for line in capfd.readouterr().err.splitlines() if "serving on the CPU" in line]
    assert len(warnings) == 1 and warnings[0].startswith("loopwise worker "), warnings


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_loopwise(home, *args, columns=250)  # the variants table is wide


def test_the_command_line_shows_a_variants_device_and_refuses_a_bad_one(
    tmp_path: Path, import_small: Callable[[Store], str], tiny_bert_dir: Path
) -> None:
    home = tmp_path / "home"
    store = Store.open(Settings(home=home))
    try:
        _train_tiny(store, import_small, tiny_bert_dir)
    finally:
        store.close()
    bad = _cli(home, "endpoint", "create", "gpu", "--variant", "name=A,model=tiny:1,device=gpu")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "variants.A.device" in bad.stderr and "use cpu, cuda, cuda:N" in bad.stderr
    created = _cli(home, "endpoint", "create", "gpu", "--variant", "name=A,model=tiny:1,device=cuda")
    assert created.returncode == 0, created.stderr
    assert "A: preparing tiny:1 (fp16 on cuda)" in created.stdout
    assert "A: warning: device cuda: ONNX Runtime has no CUDAExecutionProvider" in created.stdout
    described = _cli(home, "endpoint", "describe", "gpu")
    assert described.returncode == 0, described.stderr
    assert "cuda (CPU fallback" in described.stdout and "fp16" in described.stdout
    assert "128 / 2 ms" in described.stdout
    as_json = json.loads(_cli(home, "endpoint", "describe", "gpu", "--json").stdout)
    assert as_json["config"]["variants"][0]["device"] == "cuda"
