"""``loopwise label job`` as users run it, as a process: a malformed manifest refused by its line with
nothing imported, a job created from a manifest and from a data set split, listed, watched, stopped, and
an automated labeling job's rounds in its status."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run
from labeling_helpers import NEW_ROUND, OLD_ROUND, WHY_NOT_MORE, write_rounds
from loopwise.config import Settings
from loopwise.storage import Store


def test_the_label_job_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "workforce", "team", "create", "labelers")
    manifest = tmp_path / "reviews.manifest"
    manifest.write_text('{"source": "I love it"}\n{"source": "meh"}\n{"review": "no source"}\n')
    refused = run(
        home,
        "label",
        "job",
        "create",
        "reviews",
        "--team",
        "labelers",
        "--manifest",
        str(manifest),
        check=False,
    )
    assert refused.returncode == 1
    assert (
        "line 3: no 'source' field (it has review)" in refused.stderr
        and "nothing was imported" in refused.stderr
    )
    assert json.loads(run(home, "label", "job", "list", "--json").stdout) == []

    manifest.write_text('{"source": "I love it", "id": 1}\n{"source": "meh", "id": 2}\n')
    made = run(
        home, "label", "job", "create", "reviews", "--team", "labelers", "--manifest", str(manifest),
        "--workers-per-item", "3", "--task-time-limit", "10m", "--json",
    )  # fmt: skip
    job = json.loads(made.stdout)
    assert job["items_count"] == 2 and job["workers_per_item"] == 3 and job["task_time_limit_s"] == 600
    assert [c["label"] for c in job["categories"]] == ["1", "0", "-1"]  # the course's, by default
    assert job["title"].startswith("Classify Reviews into sentiment")

    csv_path = tmp_path / "items.csv"
    csv_path.write_text("id,review\n1,fits well\n2,too big\n3,lovely\n")
    own = run(
        home, "label", "job", "create", "own-categories", "--team", "labelers", "--manifest", str(csv_path),
        "--text-field", "review", "--category", "pos=good", "--category", "neg=bad", "--no-blind",
    )  # fmt: skip
    assert "3 items for team labelers" in own.stdout
    bad = run(
        home, "label", "job", "create", "x", "--team", "labelers", "--manifest", str(csv_path), check=False
    )
    assert bad.returncode == 1 and "no column 'source'" in bad.stderr and "--text-field" in bad.stderr
    limit = run(
        home, "label", "job", "create", "y", "--team", "labelers", "--manifest", str(manifest),
        "--task-time-limit", "soon", check=False,
    )  # fmt: skip
    assert limit.returncode == 1 and "--task-time-limit 'soon'" in limit.stderr

    listed = run(home, "label", "job", "list").stdout
    assert "reviews" in listed and "own-categories" in listed and "0/6" in listed
    status = json.loads(run(home, "label", "job", "status", "reviews", "--json").stdout)
    assert (
        status["answers"] == 0 and status["answers_needed"] == 6 and status["job"]["status"] == "InProgress"
    )
    assert "Stopped" in run(home, "label", "job", "stop", "reviews").stdout
    missing = run(home, "label", "job", "status", "nope", check=False)
    assert missing.returncode == 1 and "no labeling job 'nope'" in missing.stderr


def test_status_shows_automated_labelings_rounds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "workforce", "team", "create", "labelers")
    manifest = tmp_path / "reviews.manifest"
    manifest.write_text("".join(f'{{"source": "review {i}"}}\n' for i in range(5)))
    made = run(
        home, "label", "job", "create", "reviews", "--team", "labelers", "--manifest", str(manifest),
        "--auto-label", "--json",
    )  # fmt: skip
    assert "no round yet" in run(home, "label", "job", "status", "reviews").stdout
    store = Store.open(Settings(home=home, database_url=None))
    try:
        write_rounds(store, json.loads(made.stdout)["id"], [OLD_ROUND, NEW_ROUND])
    finally:
        store.close()

    status = json.loads(run(home, "label", "job", "status", "reviews", "--json").stdout)
    assert status["rounds"] == [OLD_ROUND, NEW_ROUND]  # as stored
    shown = run(home, "label", "job", "status", "reviews").stdout
    rows = {
        cells[0]: cells[1:]
        for line in shown.splitlines()
        if line.count("│") > 5
        for cells in [[cell.strip() for cell in line.split("│")[1:-1]]]
    }
    assert rows["2"] == [
        "embeddings (0.910)",
        "0.820",
        "0.910",
        "skipped",
        "1150",
        "1200",
        "0.930",
        "0.953",
        "60",
    ]
    assert rows["1"] == ["-", "-", "-", "-", "40", "-", "1: 0.971, 0: -, -1: -", "-", "10"]  # an old round
    assert f"why not more (round 2): {WHY_NOT_MORE}" in shown
    assert "finetune skipped (round 2): needs 2,000 labels from people" in shown


def test_automated_labelings_candidates_and_audits_are_chosen_at_creation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "workforce", "team", "create", "labelers")
    manifest = tmp_path / "texts.manifest"
    manifest.write_text("".join(f'{{"source": "text {i}"}}\n' for i in range(5)))
    made = run(
        home, "label", "job", "create", "texts", "--team", "labelers", "--manifest", str(manifest),
        "--auto-label", "--models", "tfidf, embeddings", "--audit-share", "0.25", "--json",
    )  # fmt: skip
    store = Store.open(Settings(home=home, database_url=None))
    try:
        with store.uow() as uow:
            settings = uow.labels.auto_label(json.loads(made.stdout)["id"])
    finally:
        store.close()
    assert settings is not None
    assert settings["models"] == ["tfidf", "embeddings"] and settings["audit_share"] == 0.25
    bad = run(
        home, "label", "job", "create", "other", "--team", "labelers", "--manifest", str(manifest),
        "--auto-label", "--models", "tfidf,bert",
        check=False,
    )  # fmt: skip
    assert (
        bad.returncode != 0
        and "models ['tfidf', 'bert']: one or more of tfidf, embeddings, finetune" in bad.stderr
    )
    assert "Traceback" not in bad.stderr
    early = run(home, "label", "job", "auto-label", "texts", check=False)
    assert early.returncode == 1 and "people still have 5 open items this round" in early.stderr
