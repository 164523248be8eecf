"""``loopwise review`` as users run it, as a process: a flow from condition options, a bad tree refused
by its path, loops started (idempotent), listed, described, stopped, exported, deleted."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run


def test_the_review_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run(home, "workforce", "team", "create", "reviewers")
    made = run(
        home, "review", "flow", "create", "course", "--team", "reviewers", "--confidence-below", "0.9",
        "--class-below", "-1=0.95", "--combine", "any", "--json",
    )  # fmt: skip
    flow = json.loads(made.stdout)
    assert flow["activation_conditions"] == {
        "any": [{"confidence_below": 0.9}, {"class_below": {"-1": 0.95}}]
    }
    assert flow["answer_key"] == "sentiment" and [c["label"] for c in flow["categories"]] == ["1", "0", "-1"]
    kept = run(
        home, "review", "flow", "create", "kept", "--team", "reviewers", "--max-open-loops", "200",
        "--max-loops-per-hour", "500", "--max-loops-per-invocation", "20", "--json",
    )  # fmt: skip
    budget = json.loads(kept.stdout)
    assert [budget[k] for k in ("max_open_loops", "max_loops_per_hour", "max_loops_per_invocation")] == [
        200,
        500,
        20,
    ]
    too_many = run(
        home, "review", "flow", "create", "bad", "--team", "reviewers", "--max-loops-per-invocation", "0",
        check=False,
    )  # fmt: skip
    assert too_many.returncode == 1 and "max_loops_per_invocation: a whole number from 1" in too_many.stderr
    tree = tmp_path / "bad.yaml"
    tree.write_text("any:\n  - confidence_below: 2\n")
    refused = run(
        home, "review", "flow", "create", "bad", "--team", "reviewers", "--conditions", str(tree), check=False
    )
    assert (
        refused.returncode == 1
        and "conditions.any[0].confidence_below: a number from 0 to 1" in refused.stderr
    )

    content = json.dumps({"taskObject": "It is okay", "initialValue": "0"})
    assert (
        "InProgress"
        in run(home, "review", "loop", "start", "loop-1", "--flow", "course", "--input", content).stdout
    )
    again = run(home, "review", "loop", "start", "loop-1", "--flow", "course", "--input", content).stdout
    assert "existed already" in again
    other = run(
        home,
        "review",
        "loop",
        "start",
        "loop-1",
        "--flow",
        "course",
        "--input",
        '{"taskObject": "no"}',
        check=False,
    )
    assert other.returncode == 1 and "exists already with other input" in other.stderr
    bad = run(
        home, "review", "loop", "start", "loop-2", "--flow", "course", "--input", '{"text": "x"}', check=False
    )
    assert bad.returncode == 1 and "InputContent.taskObject" in bad.stderr
    listed = json.loads(run(home, "review", "loop", "list", "--flow", "course", "--json").stdout)
    assert [(loop["HumanLoopName"], loop["HumanLoopStatus"]) for loop in listed] == [("loop-1", "InProgress")]
    described = json.loads(run(home, "review", "loop", "describe", "loop-1").stdout)
    assert described["InputContent"] == {"taskObject": "It is okay", "initialValue": "0"}
    refused = run(home, "review", "loop", "delete", "loop-1", check=False)
    assert refused.returncode == 1 and "stop it first" in refused.stderr
    assert "Stopped" in run(home, "review", "loop", "stop", "loop-1").stdout
    assert "deleted" in run(home, "review", "loop", "delete", "loop-1").stdout
    out = tmp_path / "answers.jsonl"
    assert "0 completed loop(s)" in run(home, "review", "export", "course", "--output", str(out)).stdout
    empty = run(home, "review", "export", "course", "--as-dataset", "reviewed", check=False)
    assert empty.returncode == 1 and "no completed loop yet" in empty.stderr
    assert "course" in run(home, "review", "flow", "list").stdout
