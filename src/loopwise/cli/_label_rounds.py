"""The table ``loopwise label job status`` prints for a job with automated labeling: each round's chosen
model and every candidate's validation accuracy, what the machine labeled and could label at the target,
the certified threshold and its lower bound, and under it the latest round's skipped candidates and why
it could not label more."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from loopwise.cli._common import console
from loopwise.labeling.rounds import RoundSummary, candidate_names, summarize


def print_rounds(stored: list[dict[str, Any]]) -> None:
    """The rounds table of the stored round reports, and the latest round's "why not more"."""
    if not stored:
        console.print("automated labeling: no round yet (people label the random seed set first)")
        return
    summaries = [summarize(r) for r in stored]
    latest = summaries[-1]
    console.print(rounds_table(summaries))
    for candidate in latest.candidates:
        if candidate.skipped:
            console.print(
                f"{candidate.name} skipped (round {latest.round}): {candidate.skipped}", highlight=False
            )
    console.print(f"why not more (round {latest.round}): {latest.why_not_more_text}", highlight=False)


def rounds_table(summaries: list[RoundSummary]) -> Table:
    names = candidate_names(summaries)
    table = Table(
        "round",
        "model chosen",
        *(f"{name} accuracy" for name in names),
        "machine-labeled",
        "could label",
        "threshold",
        "lower bound",
        "sent to people",
        title="automated labeling",
    )
    for s in summaries:
        chosen = "-" if s.chosen is None else f"{s.chosen} ({_share(s.chosen_accuracy)})"
        candidates = []
        for name in names:
            found = s.candidate(name)
            candidates.append(
                "-" if found is None else ("skipped" if found.skipped else _share(found.accuracy))
            )
        table.add_row(
            str(s.round),
            chosen,
            *candidates,
            str(s.machine_labeled),
            "-" if s.could_label is None else str(s.could_label),
            s.threshold_text,
            _share(s.lower_bound),
            str(s.sent_to_people),
        )
    return table


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
