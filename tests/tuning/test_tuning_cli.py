"""``loopwise tune check``: specs are refused before anything runs, naming each bad field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_helpers import run


def tune(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(home, "tune", *args, check=False)


def test_the_course_spec_checks_as_written(tmp_path: Path) -> None:
    result = tune(tmp_path, "check", "course_lab1", "--json")
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)
    assert spec["strategy"] == "random" and spec["max_trials"] == 2 and spec["max_parallel_trials"] == 2
    assert spec["parameters"]["batch_size"] == {"type": "categorical", "values": [128, 256]}
    assert spec["objective"] == {"metric": "val_acc", "direction": "maximize"}


def test_a_bad_spec_names_every_field_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "strategy: simulated_annealing\n"
        "max_trials: 4\n"
        "parameters:\n"
        "  learning_rate: {type: continuous, min: 0.001, max: 0.0001}\n"
        "  weight_decay: {type: continuous, min: 0, max: 0.1, scaling: log}\n"
        "objective: {metric: validation:perplexity}\n"
    )
    result = tune(tmp_path / "home", "check", str(bad))
    assert result.returncode == 1
    for field in ("strategy", "parameters.learning_rate", "parameters.weight_decay", "objective.metric"):
        assert field in result.stderr, f"{field} not named in: {result.stderr}"
    assert not (tmp_path / "home").exists()
