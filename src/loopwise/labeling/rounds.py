"""Automated labeling's round reports as the admin reads them: the rounds a job's settings hold, as
stored, and a summary of each for the tables of ``loopwise label job status`` and the console's job page.

:mod:`loopwise.labeling.auto` writes the rounds; this module only reads them. A round recorded before
the model choice (``model_choice``) and the threshold's certificate (``certificate``) were reported
lacks those keys: its summary holds None there (shown as "-") instead of failing, and so does any figure
a round does not carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopwise.errors import PermissionDeniedError
from loopwise.labeling.lookup import job_for

if TYPE_CHECKING:
    from loopwise.storage import Store
    from loopwise.workforce.records import Worker

#: the candidate models in the order the tables show them (others a round names come after, as stored)
CANDIDATES = ("tfidf", "embeddings", "finetune")
#: what the admin reads for a round that ran before the certificate was reported
NOT_RECORDED = "not recorded: this round ran before the certificate was reported"


@dataclass(frozen=True)
class Candidate:
    """One model a round considered: its validation accuracy, or why it was not tried."""

    name: str
    accuracy: float | None = None
    validated_on: int | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class RoundSummary:
    """What the admin sees of one round: the model chosen among the candidates, what the machine
    labeled and could label at the target, the certified threshold and its bound, and why not more."""

    round: int
    model: str
    machine_labeled: int
    sent_to_people: int
    waiting: int
    thresholds: dict[str, float | None]
    chosen: str | None = None
    candidates: tuple[Candidate, ...] = ()
    threshold: float | None = None
    lower_bound: float | None = None
    could_label: int | None = None
    why_not_more: str | None = None
    certified: bool = False

    def candidate(self, name: str) -> Candidate | None:
        """The candidate called ``name``, if the round considered it."""
        return next((c for c in self.candidates if c.name == name), None)

    @property
    def chosen_accuracy(self) -> float | None:
        """The chosen model's validation accuracy (None for an old round)."""
        found = None if self.chosen is None else self.candidate(self.chosen)
        return None if found is None else found.accuracy

    @property
    def threshold_text(self) -> str:
        """The certified threshold; for an old round, each class's threshold."""
        if self.certified:
            return "none passed" if self.threshold is None else f"{self.threshold:.3f}"
        return ", ".join(
            f"{label}: {'-' if t is None else f'{t:.3f}'}" for label, t in self.thresholds.items()
        )

    @property
    def why_not_more_text(self) -> str:
        return self.why_not_more or NOT_RECORDED


def stored_rounds(store: Store, job_id: int) -> list[dict[str, Any]] | None:
    """The job's round reports as stored, oldest first; None when the job has no automated labeling."""
    with store.uow() as uow:
        settings = uow.labels.auto_label(job_id)
    if settings is None:
        return None
    return [dict(r) for r in settings.get("rounds") or [] if isinstance(r, Mapping)]


def visible_rounds(store: Store, worker: Worker, job_id: int) -> list[dict[str, Any]] | None:
    """:func:`stored_rounds` of a job ``worker`` may see, for admins only (the rounds show the models'
    validation figures and the certificate, which workers do not see)."""
    if not worker.can("manage"):
        raise PermissionDeniedError(f"the {worker.role} role does not see automated labeling's rounds")
    return stored_rounds(store, job_for(store, worker, job_id).id)


def summarize(report: Mapping[str, Any]) -> RoundSummary:
    """The summary of one stored round report; missing or malformed parts read as None."""
    choice = _mapping(report.get("model_choice"))
    certificate = _mapping(report.get("certificate"))
    return RoundSummary(
        round=_int(report.get("round")) or 0,
        model=str(report.get("model") or ""),
        machine_labeled=_int(report.get("machine_labeled")) or 0,
        sent_to_people=_int(report.get("sent_to_people")) or 0,
        waiting=_int(report.get("waiting")) or 0,
        thresholds={str(k): _float(v) for k, v in _mapping(report.get("thresholds")).items()},
        chosen=str(choice["chosen"]) if choice.get("chosen") else None,
        candidates=_candidates(_mapping(choice.get("candidates"))),
        threshold=_float(certificate.get("threshold")),
        lower_bound=_float(certificate.get("lower_bound")),
        could_label=_int(certificate.get("could_label")),
        why_not_more=str(certificate["why_not_more"]) if certificate.get("why_not_more") else None,
        certified=bool(certificate),
    )


def candidate_names(summaries: list[RoundSummary]) -> list[str]:
    """Every candidate any of the rounds considered, in :data:`CANDIDATES`' order, then the others: the
    columns of a table of rounds."""
    seen = {c.name: None for s in summaries for c in s.candidates}
    return [n for n in CANDIDATES if n in seen] + [n for n in seen if n not in CANDIDATES]


def _candidates(stored: Mapping[str, Any]) -> tuple[Candidate, ...]:
    """The candidates in :data:`CANDIDATES`' order, then any other the round names."""
    names = [n for n in CANDIDATES if n in stored] + [n for n in stored if n not in CANDIDATES]
    found = []
    for name in names:
        figures = _mapping(stored[name])
        found.append(
            Candidate(
                name=str(name),
                accuracy=_float(figures.get("accuracy")),
                validated_on=_int(figures.get("validated_on")),
                skipped=str(figures["skipped"]) if figures.get("skipped") else None,
            )
        )
    return tuple(found)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
