"""What completed human loops produce: output.json in Augmented AI's shape (every human answer, the
input, the activation results and the consolidated answer), and their answers as training data (JSON
lines with where each label came from, or a new data set version)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.errors import ReviewError
from loopwise.review.records import Flow, HumanLoop

if TYPE_CHECKING:
    from loopwise.storage import Store


def output_document(
    flow: Flow, loop: HumanLoop, answers: list[dict[str, Any]], label: str, confidence: float
) -> dict[str, Any]:
    """Augmented AI's output.json: every human answer, the input, and the activation results; plus the
    consolidated answer."""
    return {
        "flowDefinitionName": flow.name,
        "humanLoopName": loop.name,
        "humanAnswers": [
            {
                "answerContent": {flow.answer_key: {"label": a["label"]}},
                "workerId": str(a["worker_id"]),
                "workerMetadata": {"identityData": {"email": a["email"], "team": flow.team}},
                "acceptanceTime": a["started_at"].isoformat(),
                "submissionTime": a["submitted_at"].isoformat(),
                "timeSpentInSeconds": round(a["seconds"] or 0.0, 3),
            }
            for a in answers
        ],
        "consolidatedAnswer": {
            "answerContent": {flow.answer_key: {"label": label}},
            "confidence": round(confidence, 4),
            "method": "majority",
            "humanAnswerCount": len(answers),
        },
        "inputContent": loop.input,
        "humanLoopActivationResults": loop.activation,
        "inferenceId": loop.inference_id,
        "endpointName": loop.endpoint,
        "variantName": loop.variant,
    }


def read_output(store: Store, loop: HumanLoop) -> dict[str, Any]:
    """A completed loop's output.json."""
    if not loop.output_uri:
        raise ReviewError(f"human loop {loop.name} is {loop.status}: it has no output")
    return dict(json.loads(store.artifacts.read_uri(loop.output_uri)))


def completed_examples(store: Store, flow: str) -> list[dict[str, Any]]:
    """Every completed loop of the flow as a labeled example: text, label and where the label came from."""
    from loopwise.review.flows import all_loops, find_flow

    rows = []
    for loop in all_loops(store, find_flow(store, flow), status="Completed"):
        output = read_output(store, loop)
        answer = output["consolidatedAnswer"]
        rows.append(
            {
                "text": loop.input["taskObject"],
                "label": next(iter(answer["answerContent"].values()))["label"],
                "confidence": answer["confidence"],
                "source": f"human loop {loop.name}",
                "human_answers": answer["humanAnswerCount"],
                "inference_id": loop.inference_id or "",
                "model_prediction": str(loop.input.get("initialValue", "")),
            }
        )
    return rows


def export(store: Store, flow: str, path: Path) -> int:
    """The completed loops' examples as JSON lines; returns how many."""
    rows = completed_examples(store, flow)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return len(rows)


def export_dataset(
    store: Store, flow: str, dataset: str, *, train: float = 0.8, validation: float = 0.1, test: float = 0.1
) -> Any:
    """A new version of data set ``dataset`` from the completed loops (text, label), ready for training."""
    from loopwise.data.service import import_rows
    from loopwise.review.flows import find_flow

    found = find_flow(store, flow)
    rows = completed_examples(store, flow)
    if not rows:
        raise ReviewError(f"flow {flow} has no completed loop yet: nothing to export")
    # each example with the loop it came from, kept beside the version
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    kept = store.artifacts.put_bytes(f"review/{flow}/exports/{dataset}-{stamp}", "examples.jsonl", lines)
    origin = {"kind": "human review", "flow": flow, "loops": len(rows), "examples": kept}
    examples = ((row["text"], row["label"]) for row in rows)
    return import_rows(
        store,
        examples,
        name=dataset,
        labels=found.labels,
        train=train,
        validation=validation,
        test=test,
        origin=origin,
    )
