"""--device and --precision on the command line and in tuning specs: refusals are one line naming the option
(exit 2), and a run records the device and precision it trained on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopwise.cli import main
from loopwise.config import Settings
from loopwise.errors import TuningSpecError
from loopwise.storage import Store
from loopwise.tuning import parse_spec


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOPWISE_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")


def _exit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


def _usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = _exit(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, f"loopwise {' '.join(args)} exited {code}: {err}"
    assert len(lines) == 1 and "Traceback" not in err and not out, err
    return lines[0]


@pytest.mark.parametrize("command", [("train",), ("evaluate", "reviews-tfidf:1")])
def test_an_unknown_device_is_a_usage_error_naming_the_option_and_the_values(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    line = _usage_error(capsys, *command, "--device", "tpu")
    assert "'--device'" in line and "unknown device 'tpu'" in line
    assert "auto, cpu, cuda, cuda:N" in line and "mps" in line
    line = _usage_error(capsys, *command, "--precision", "fp8")
    assert "'--precision'" in line and "auto, fp32, bf16, fp16" in line


@pytest.mark.parametrize("command", [("train",), ("evaluate", "reviews-tfidf:1")])
def test_cuda_on_a_machine_without_cuda_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], no_cuda: None, command: tuple[str, ...]
) -> None:
    line = _usage_error(capsys, *command, "--device", "cuda")
    assert "'--device'" in line and "no CUDA device" in line and "use --device cpu or auto" in line
    line = _usage_error(capsys, *command, "--device", "cpu", "--precision", "fp16")
    assert "'--precision'" in line and "fp16 is not supported on the CPU" in line


def test_the_options_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "evaluate"):
        main([command, "--help"])  # help returns without exiting
        out = capsys.readouterr().out
        assert "--device" in out and "--precision" in out and "cuda:N" in out


# -- tuning specs -----------------------------------------------------------------------------------------


def _spec(static: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "job",
        "static": static,
        "parameters": parameters or {"learning_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5}},
    }


def test_a_tuning_spec_takes_device_and_precision_as_static_settings() -> None:
    spec = parse_spec(_spec({"device": "CUDA:0", "precision": "bf16", "epochs": 2}))
    assert spec.static == {"device": "cuda:0", "precision": "bf16", "epochs": 2}


def test_a_tuning_spec_refuses_a_bad_device_and_a_searched_precision_naming_each_field() -> None:
    spec = _spec(
        {"device": "tpu", "precision": 16},
        {
            "learning_rate": {"type": "continuous", "min": 1e-5, "max": 5e-5},
            "precision": {"type": "categorical", "values": ["fp32", "bf16"]},
        },
    )
    with pytest.raises(TuningSpecError) as refused:
        parse_spec(spec, source="spec.yaml")
    problems = dict(refused.value.problems)
    assert "unknown device 'tpu'" in problems["static.device"]
    assert problems["static.precision"] == "precision takes a str, got 16"
    assert "set it under static" in problems["parameters.precision"]


def test_tune_check_names_the_bad_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec({"device": "gpu"})), encoding="utf-8")
    code, _, err = _exit(capsys, "tune", "check", str(path))
    assert code == 1 and "static.device" in err and "unknown device 'gpu'" in err


# -- a run records where it trained -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def home_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The store the command line opens (LOOPWISE_HOME, and LOOPWISE_DATABASE_URL for PostgreSQL)."""
    if request.param == "postgresql":
        monkeypatch.setenv("LOOPWISE_DATABASE_URL", request.getfixturevalue("postgres_url"))
    store = Store.open(Settings())
    request.addfinalizer(store.close)
    return store


def test_a_run_records_and_shows_the_device_and_precision_it_trained_on(
    home_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    no_cuda: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = import_small(home_store)
    common = ["--dataset", dataset, "--model", str(tiny_bert_dir), "--max-seq-length", "16"]
    main(["train", *common, "--steps-per-epoch", "2", "--batch-size", "8", "--precision", "bf16"])
    capsys.readouterr()
    main(["runs", "list", "--json"])
    (run,) = json.loads(capsys.readouterr().out)
    main(["runs", "show", run["id"], "--json"])
    shown = json.loads(capsys.readouterr().out)["run"]
    assert shown["params"]["device"] == "cpu" and shown["params"]["precision"] == "bf16"  # auto resolved
    assert shown["profile"]["device"] == "cpu" and shown["profile"]["peak_gpu_memory_mb"] is None
    main(["runs", "show", run["id"]])
    assert "device=cpu, precision=bf16" in capsys.readouterr().out

    main(["evaluate", f"{dataset.split(':')[0]}-transformers:1", "--split", "test", "--device", "cpu"])
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("native", [True, False])
def test_train_left_on_auto_records_bf16_on_a_cpu_that_has_it_natively_else_fp32(
    home_store: Store,
    import_small: Callable[[Store], str],
    tiny_bert_dir: Path,
    no_cuda: None,
    cpu_bf16: Callable[[bool], None],
    capsys: pytest.CaptureFixture[str],
    native: bool,
) -> None:
    cpu_bf16(native)
    dataset = import_small(home_store)
    common = ["--dataset", dataset, "--model", str(tiny_bert_dir), "--max-seq-length", "16"]
    main(["train", *common, "--steps-per-epoch", "2", "--batch-size", "8"])
    capsys.readouterr()
    main(["runs", "list", "--json"])
    (run,) = json.loads(capsys.readouterr().out)
    main(["runs", "show", run["id"], "--json"])
    shown = json.loads(capsys.readouterr().out)["run"]
    precision = "bf16" if native else "fp32"
    assert shown["params"]["precision"] == precision and shown["profile"]["precision"] == precision
