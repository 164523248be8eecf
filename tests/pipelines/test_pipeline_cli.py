"""``loopwise pipeline`` as users run it, as a process: a file refused by its line, a pipeline created,
run until a step fails for want of labels, the run's status and the list of runs; and a run whose process
is killed mid-step, resumed without repeating a step or losing an output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cli_helpers import run
from loopwise import registry
from loopwise.app import background_server
from loopwise.config import Settings
from loopwise.pipelines import service
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint, describe_endpoint
from loopwise.storage import Store
from loopwise.training.service import TrainRequest, train


def test_the_pipeline_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: retrain\nsteps:\n  - name: fit\n    uses: train\n    with: {backend: tfidf}\n")
    refused = run(home, "pipeline", "create", str(bad), check=False)
    assert refused.returncode == 1 and "line 3: train needs the input(s) dataset" in refused.stderr
    assert json.loads(run(home, "pipeline", "runs", "--json").stdout) == []
    operations = {o["operation"]: o for o in json.loads(run(home, "pipeline", "operations", "--json").stdout)}
    assert operations["canary"]["required"] == ["endpoint", "model"]
    assert "ab" in operations["promote"]["optional"] and "decision" in operations["ab-test"]["outputs"]
    assert all(o["what"] for o in operations.values())
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


KILLED = """\
name: ship
steps:
  - name: gather
    uses: gather-labels
    with: {{dataset: gathered, base: "{base}"}}
  - name: train
    uses: train
    with: {{dataset: "${{gather.dataset}}", backend: tfidf, model_name: small-tfidf}}
  - name: canary
    uses: canary
    with: {{endpoint: reviews, model: "${{train.model}}", percent: 50, share: 100, bake: 1s, poll: 0.2s,
           min_requests: 1, timeout: 5m}}
  - name: promote
    uses: promote
    with: {{model: "${{train.model}}", comparison: tie, endpoint: reviews, variant: "${{canary.variant}}"}}
"""


def test_a_pipeline_process_killed_mid_step_resumes_without_repeating_a_step(
    sqlite_store: Store, settings: Settings, import_small: Callable[[Store], str], tmp_path: Path
) -> None:
    """``loopwise pipeline run`` SIGKILLed while its canary waits for a server: ``resume --force`` (with
    the server up) repeats neither the gathering nor the training, and takes up the same rollout."""
    store = sqlite_store
    base = import_small(store)
    train(store, TrainRequest(dataset=base, backend="tfidf", model_name="small-tfidf"), progress=False)
    with store.uow() as uow:
        registry.set_alias(uow, "small-tfidf:1", "champion")
    config = {"variants": [{"name": "Champion", "model": "small-tfidf:1"}]}
    create_endpoint(store, "reviews", parse_endpoint_config(config))
    path = tmp_path / "ship.yaml"
    path.write_text(KILLED.format(base=base), encoding="utf-8")
    service.create_pipeline(store, path)
    env = {**os.environ, "LOOPWISE_HOME": str(settings.home), "COLUMNS": "200"}
    env.pop("LOOPWISE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from loopwise.cli import main; main()", "pipeline", "run", "ship"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # no server runs yet: the canary waits for one, mid-step
            runs = service.list_runs(store, "ship")
            if runs and runs[0].step("canary").status == "Running":
                break
            assert process.poll() is None and time.monotonic() < deadline, "the run never reached canary"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        process.kill()
        process.wait(timeout=30)
    killed = service.list_runs(store, "ship")[0]
    assert killed.status == "Running" and [s.status for s in killed.steps] == [
        "Succeeded", "Succeeded", "Running", "Pending",
    ]  # fmt: skip
    before = killed.outputs()
    with background_server(store):
        resumed = run(settings.home, "pipeline", "resume", str(killed.id), "--force")
    assert "gather: succeeded before, not repeated" in resumed.stdout
    assert "train: succeeded before, not repeated" in resumed.stdout
    done = service.get_run(store, killed.id)
    assert done.status == "Succeeded", done.error
    assert [s.attempts for s in done.steps] == [1, 1, 2, 1]
    assert {k: done.outputs()[k] for k in before} == before  # nothing lost, nothing redone
    with store.uow() as uow:
        assert [m.ref for m in uow.models.list("small-tfidf")] == ["small-tfidf:1", "small-tfidf:2"]
        assert uow.rollouts.latest("reviews").id == 1  # the same rollout, taken up
    assert describe_endpoint(store, "reviews")[0].config.traffic_shares() == {"small-tfidf-v2": 1.0}
