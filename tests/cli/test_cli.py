"""The ``loopwise`` command with a private LOOPWISE_HOME: through its entry point in this process, and the
main job as users run it, as a process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from cli_helpers import run, run_process
from loopwise.cli import app, main
from loopwise.storage.migrate import head_revision


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``group`` (click's or the copy a newer typer bundles: duck-typed)."""
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if hasattr(command, "commands"):
            found.extend(_commands(command, (*prefix, name)))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_is_documented() -> None:
    root = typer.main.get_command(app)
    assert {"data", "train", "evaluate", "models", "runs", "db", "demo"} <= set(root.commands)  # type: ignore[attr-defined]
    for path in COMMANDS:
        command = root
        for part in path:
            command = command.commands[part]  # type: ignore[attr-defined]
        assert (command.help or "").strip(), f"`loopwise {' '.join(path)}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name not in {"help"}:
                documented = bool(param.help) or param.name in {
                    "learning_rate",
                    "batch_size",
                    "epochs",
                    "seed",
                    "train",
                    "validation",
                    "test",
                    "as_json",
                    "limit",
                    "description",
                    "warmup_ratio",
                    "weight_decay",
                    "validation_batch_size",
                }
                assert documented, f"option --{param.name} of `loopwise {' '.join(path)}` is undocumented"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_help_works_for_every_command(
    path: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process (a process each took two minutes of the suite); the process is tested below."""
    monkeypatch.setenv("LOOPWISE_HOME", str(tmp_path / "home"))
    try:
        main([*path, "--help"])
    except SystemExit as stopped:  # help exits 0 (or returns)
        assert stopped.code in (0, None)
    assert "Usage" in capsys.readouterr().out


def test_help_works_as_a_process(tmp_path: Path) -> None:
    assert "Usage" in run(tmp_path, "review", "loop", "start", "--help").stdout


def test_the_course_flow_from_the_command_line(tmp_path: Path, reviews_csv: Path) -> None:
    home = tmp_path / "home"
    assert "cached and verified" in run(home, "data", "fetch", "reviews", "--file", str(reviews_csv)).stdout
    prepared = json.loads(run(home, "data", "prepare", "reviews", "--json").stdout)
    assert {s: v["rows"] for s, v in prepared["splits"].items()} == {
        "train": 5537,
        "validation": 307,
        "test": 309,
    }
    again = json.loads(run(home, "data", "prepare", "reviews", "--json").stdout)
    assert again["version"] == prepared["version"] == 1  # same content, same version

    assert "registered model reviews-tfidf:1" in run(home, "train", "--backend", "tfidf").stdout
    runs = json.loads(run(home, "runs", "list", "--json").stdout)
    assert [r["status"] for r in runs] == ["completed"]
    shown = json.loads(run(home, "runs", "show", runs[0]["id"][:8], "--json").stdout)
    assert shown["run"]["profile"]["examples_per_s"] > 0
    curves = tmp_path / "curves.png"
    run(home, "runs", "show", runs[0]["id"], "--plot", str(curves))
    assert curves.read_bytes().startswith(b"\x89PNG") and curves.stat().st_size > 10_000

    out = tmp_path / "report"
    evaluated = run(home, "evaluate", "reviews-tfidf:1", "--split", "test", "--output", str(out)).stdout
    assert "accuracy" in evaluated
    report = json.loads((out / "evaluation.json").read_text())
    assert 0.5 < report["metrics"]["accuracy"]["value"] < 1.0
    assert {p.name for p in out.iterdir()} >= {
        "evaluation.json",
        "confusion_matrix.png",
        "reliability_diagram.png",
        "report.html",
    }

    run(home, "models", "alias", "reviews-tfidf:1", "champion")
    model = json.loads(run(home, "models", "show", "reviews-tfidf@champion", "--json").stdout)
    assert model["model"]["aliases"] == ["champion"]
    assert model["dataset"] == "reviews:1"
    assert model["model"]["metrics"]["test_accuracy"] == report["metrics"]["accuracy"]["value"]
    assert len(model["evaluations"]) == 1

    compared = json.loads(
        run(home, "evaluate", "--compare", "reviews-tfidf:1", "reviews-tfidf@champion", "--json").stdout
    )
    assert compared["significant"] is False and compared["p_value"] == 1.0


def _snapshot(home: Path) -> dict[str, str]:
    """Every file under home (but the SQLite WAL internals) with its digest."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))
    }


def test_bad_input_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "".join(f"nice thing {i},pos\nbad thing {i},neg\n" for i in range(20)))
    run(home, "data", "import", str(good), "--name", "mine")
    assert f"database at revision {head_revision()}" in run(home, "db", "upgrade").stdout
    assert f"revision: {head_revision()}" in run(home, "db", "current").stdout
    before = _snapshot(home)
    models_before = run(home, "models", "list", "--json").stdout

    missing = tmp_path / "missing.csv"
    missing.write_text("body,label\nhello,pos\n")
    result = run(home, "data", "import", str(missing), "--name", "mine", check=False)
    assert result.returncode == 1 and "text" in result.stderr and "missing.csv" in result.stderr

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("not the reviews file\n")
    result = run(home, "data", "fetch", "reviews", "--file", str(wrong), check=False)
    assert result.returncode == 1 and "sha256" in result.stderr.lower()

    result = run(home, "train", "--dataset", "mine", "--model", str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 1 and "nowhere" in result.stderr

    corrupt = tmp_path / "corrupt-model"
    corrupt.mkdir()
    (corrupt / "classifier.json").write_text("{ not json")
    result = run(home, "evaluate", str(corrupt), "--dataset", "mine", check=False)
    assert result.returncode == 1 and "corrupt" in result.stderr

    result = run(home, "evaluate", "ghost:1", "--dataset", "mine", check=False)
    assert result.returncode == 1 and "not found" in result.stderr

    assert _snapshot(home) == before
    assert run(home, "models", "list", "--json").stdout == models_before


@pytest.mark.integration
def test_the_main_job_runs_end_to_end_on_a_small_budget(tmp_path: Path, reviews_csv: Path) -> None:
    home = tmp_path / "home"
    # two trials of at most 32 examples: the search's early stop and crumbs have tests of their own
    budget = ("--budget", "64", "--per-trial", "32", "--max-trials", "2", "--max-seq-length", "32")
    # no final fit here (an epoch of the whole split would double this test): real final fits are trained in
    # tests/tuning/test_tuning_final_fit.py, and the demo's use of one in tests/cli/test_demo_steps.py
    budget += ("--final-epochs", "0")
    out = run_process(home, "demo", "--file", str(reviews_csv), *budget, "--no-serve").stdout
    assert "course split reviews:1: train 5,537 / validation 307 / test 309" in out
    assert "tuning job reviews-sentiment-tuning-1" in out
    trials = [line for line in out.splitlines() if line.startswith("trial ") and " examples; " in line]
    used = [int(line.split("(")[1].split()[0].replace(",", "")) for line in trials]
    assert len(trials) == 2 and all(n <= 32 for n in used) and sum(used) <= 64  # 64 in all, 32 a trial
    report = Path(out.split("\nreport: ", 1)[1].split()[0])
    assert report.name == "report.html" and report.exists()
    figures = json.loads((report.parent / "evaluation.json").read_text())
    assert figures["context"]["split"] == "test" and figures["context"]["examples"] == 309
    tuning_report = Path(out.split("tuning report: ", 1)[1].split()[0])
    assert tuning_report.name == "report.html" and tuning_report.exists()
    # the tuned best model (the pipeline at the end may promote another to champion)
    model = json.loads(run(home, "models", "show", "reviews-sentiment@best", "--json").stdout)
    assert model["model"]["metrics"]["test_accuracy"] == figures["metrics"]["accuracy"]["value"]
    assert model["model"]["params"]["tuning_job"] == "reviews-sentiment-tuning-1"
    assert "final_fit" not in model["model"]["params"] and "trial" in model["model"]["params"]
    assert "best" in model["model"]["aliases"] and f"{model['model']['name']}:" in out
    # the monitoring step: the broken upstream's traffic raises alerts, the report is written
    broken = out.split("a broken upstream system: 309 requests", 1)[1]
    assert "VariantB: 309 texts, violations" in broken and "garbled_rate" in broken
    monitoring = Path(out.split("monitoring report: ", 1)[1].split()[0])
    assert monitoring.name == "report.html" and monitoring.exists()
    # the labeling step: 90 reviews, three simulated workers over HTTP, the careless one found out
    assert "labeling job course-lab3-" in out and "270 answers over HTTP, 90/90 items complete" in out
    quality = out.split("Dawid-Skene: worker quality ", 1)[1].split(";")[0]
    scores = {part.split()[0]: float(part.split()[1].rstrip("%")) for part in quality.split(", ")}
    assert scores["cy@loopwise.local"] < min(scores["ana@loopwise.local"], scores["ben@loopwise.local"])
    manifest = Path(out.split("labeling output manifest: ", 1)[1].split()[0])
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 90 and all(
        line[next(k for k in line if k.endswith("-metadata"))]["human-annotated"] == "yes" for line in lines
    )
    # the review step: the uncertain predictions of the course's four reviews went to people, the
    # reviewer's answers came back through describe and output.json, and became training data
    review = out.split("the human review half of the course's Lab 3", 1)[1]
    sent = int(review.split(" of 4 reviews went to people")[0].rsplit("\n", 1)[1])
    assert sent >= 1 and review.count("-> human loop ep-") == sent
    assert review.count(": Completed; {'sentiment': {'label': ") == sent
    examples = Path(out.split("their answers as training data: ", 1)[1].split()[0])
    rows = [json.loads(line) for line in examples.read_text().splitlines()]
    assert len(rows) == sent and all(r["source"].startswith("human loop ep-") for r in rows)
    # the loop closes: the server starts the pipeline on those labels by itself
    closing = out.split("the loop closes", 1)[1]
    assert f"run 1 started by itself: {90 + sent} new labels" in closing
    assert (
        f"gather: succeeded dataset reviews-retrain:1, examples {5537 + 90 + sent}, new_labels {90 + sent}"
        in (closing)
    )
    assert "train: succeeded model reviews-sentiment:" in closing
    run_status = json.loads(run(home, "pipeline", "status", "1", "--json").stdout)
    steps = {s["name"]: s for s in run_status["steps"]}
    assert run_status["trigger"].endswith("new labels (trigger: 1)")
    candidate_model = steps["train"]["outputs"]["model"]
    assert closing.split("train: succeeded model ", 1)[1].startswith(candidate_model + ",")
    if steps["compare"]["status"] == "Failed":  # tiny models: the candidate may lose, and stops there
        assert "it is not promoted" in steps["compare"]["error"] and run_status["status"] == "Failed"
    else:  # canary, the A/B test on live reviews until it decides, then promote or retire
        assert run_status["status"] == "Succeeded", run_status
        assert steps["canary"]["outputs"]["share"] == 0.5
        decision = steps["ab"]["outputs"]["decision"]
        assert decision in ("candidate", "champion", "tie", "inconclusive")
        outcome = steps["promote"]["outputs"]["outcome"]
        assert outcome == ("retired" if decision == "champion" else "promoted")
        endpoint = json.loads(run(home, "endpoint", "describe", "reviews-endpoint", "--json").stdout)
        serving = [v["name"] for v in endpoint["config"]["variants"] if v["weight"] > 0]
        candidate = steps["canary"]["outputs"]["variant"]
        assert (serving == [candidate]) == (outcome == "promoted")
        champion = json.loads(run(home, "models", "show", "reviews-sentiment@champion", "--json").stdout)
        shown = f"{champion['model']['name']}:{champion['model']['version']}"
        assert (shown == candidate_model) == (outcome == "promoted")
    assert "pipeline run 1 (" in out and "took " in out
