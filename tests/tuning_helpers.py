"""What the tuning tests that drive ``loopwise tune`` as a process share: its command line in a home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def tune_cli(home: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """``loopwise tune ARGS`` as a new process in ``home`` (on its SQLite database): command and
    environment."""
    env = {**os.environ, "LOOPWISE_HOME": str(home), "COLUMNS": "200"}
    env.pop("LOOPWISE_DATABASE_URL", None)
    command = [sys.executable, "-c", "from loopwise.cli import main; main()", "tune", *args]
    return command, env


def start_tuning(home: Path, spec: dict[str, Any], spec_path: Path) -> subprocess.Popen[bytes]:
    """``loopwise tune start`` of ``spec`` (written to ``spec_path``) in ``home``, running in the
    background; its error output piped."""
    spec_path.write_text(yaml.safe_dump(spec))
    command, env = tune_cli(home, "start", str(spec_path))
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def bert_spec(dataset: str, tiny_bert_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A tuning spec of 3 random trials of the tiny BERT, searching the learning rate; ``overrides``
    replace its top-level settings."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "dataset": dataset,
        "backend": "transformers",
        "base_model": str(tiny_bert_dir),
        "static": {"batch_size": 8, "epochs": 1, "max_seq_length": 32, "eval_every_steps": 4},
        "parameters": {"learning_rate": {"type": "continuous", "min": 1e-4, "max": 1e-2, "scaling": "log"}},
        "strategy": "random",
        "max_trials": 3,
    }
    return {**spec, **overrides}
