"""``loopwise pipeline`` as users run it, as a process: a file refused by its line, a pipeline created,
run until a step fails for want of labels, the run's status and the list of runs."""

from __future__ import annotations

import json
from pathlib import Path

from cli.test_cli import run


def test_the_pipeline_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: retrain\nsteps:\n  - name: fit\n    uses: train\n    with: {backend: tfidf}\n")
    refused = run(home, "pipeline", "create", str(bad), check=False)
    assert refused.returncode == 1 and "line 3: train needs the input(s) dataset" in refused.stderr
    assert json.loads(run(home, "pipeline", "runs", "--json").stdout) == []
    good = tmp_path / "retrain.yaml"
    good.write_text(
        "name: retrain\nsteps:\n"
        "  - name: gather\n    uses: gather-labels\n"
        "    with: {dataset: more, labeling_jobs: [], min_new: 10}\n"
        "  - name: fit\n    uses: train\n    with: {dataset: '${gather.dataset}', backend: tfidf}\n"
    )
    assert (
        "is valid: gather (gather-labels) -> fit (train)" in run(home, "pipeline", "check", str(good)).stdout
    )
    assert "pipeline retrain created: 2 steps" in run(home, "pipeline", "create", str(good)).stdout
    ran = run(home, "pipeline", "run", "retrain", check=False)
    assert ran.returncode == 1 and "0 new labels, fewer than min_new 10" in ran.stdout
    status = json.loads(run(home, "pipeline", "status", "1", "--json").stdout)
    assert status["status"] == "Failed" and [s["status"] for s in status["steps"]] == ["Failed", "Pending"]
    assert "Failed" in run(home, "pipeline", "runs", "retrain").stdout
    missing = run(home, "pipeline", "status", "9", check=False)
    assert missing.returncode == 1 and "no pipeline run 9" in missing.stderr
