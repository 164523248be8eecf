"""The operations a pipeline step can use: each an existing loopwise operation with named inputs and
outputs. ``run(store, inputs, log)`` gets the step's inputs (references resolved), writes what it does
through ``log`` and returns its outputs; raising stops the run at this step (it can be resumed there).

=================  ===================================================  =====================================
operation          inputs (required; optional)                          outputs
=================  ===================================================  =====================================
``gather-labels``  dataset; base, review_flows, labeling_jobs,          dataset, examples, new_labels
                   feedback, min_new
``train``          dataset; backend, model_name, base_model, params,    model, run
                   options, tuning_job, device, precision
``compare``        champion, candidate, dataset; split, require,        verdict, difference, p_value,
                   alpha, device, precision                             accuracy_champion,
                                                                        accuracy_candidate, report
``set-alias``      model, alias                                         model
``canary``         endpoint, model; variant, percent, share, bake,      variant, rollout, share, config
                   timeout, poll, max_error_rate, max_p99_ms,
                   min_requests
``ab-test``        endpoint, candidate; champion, config, alpha,        decision, winner, champion, p_value,
                   min_effect, max_labelled, timeout, poll              difference, accuracy_champion,
                                                                        accuracy_candidate, labelled
``promote``        model, comparison; alias, endpoint, variant, ab      model, previous, outcome
=================  ===================================================  =====================================

``canary`` and ``ab-test`` are in :mod:`loopwise.pipelines.deployment`.

``device`` and ``precision`` (the steps that run a torch model: :data:`PLACED`) take the values of
``--device`` and ``--precision`` (:mod:`loopwise.classifiers.devices`); their spelling is checked with the
file, and they are resolved on the machine that runs the step (``auto``: its GPU when it has one).

``compare``'s verdict is ``better`` or ``worse`` (significantly more or less accurate on the same
examples, McNemar's test at ``alpha``) or ``tie`` (no significant difference). The step fails on
``worse`` (``require: not-worse``, the default), on anything but ``better`` (``require: better``), or on
any lower accuracy, significant or not (``require: no-loss``); and ``promote`` refuses a ``worse``
verdict whatever the file says: a pipeline never promotes a model that lost its comparison. Why
significance and not the raw difference by default: a champion chosen because it scored high on a small
held-out split scores high partly by chance, and the raw rule then holds it against better candidates
(measured: docs/benchmarks.md, closed_loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopwise.errors import PipelineError
from loopwise.pipelines import deployment
from loopwise.tuning.spec import job_spec

if TYPE_CHECKING:
    from loopwise.storage import Store

Log = Callable[[str], None]


@dataclass(frozen=True)
class Operation:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[[Store, dict[str, Any], Log], dict[str, Any]]


def gather_labels(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """A new version of ``dataset``: the base data set's training rows (if any) and the labels people
    gave in the sources: completed human loops of ``review_flows``, labeled items of ``labeling_jobs``,
    and the ground truth posted as ``feedback`` to these endpoints for their captured requests (an
    inference a listed review flow answered counts once).
    ``new_labels`` counts those (all of them: a trigger's ``new_labels`` counts what arrived since the
    last run); ``min_new`` refuses to go on with fewer."""
    from loopwise.data.service import import_rows
    from loopwise.data.splits import read_split
    from loopwise.labeling.output import labeled_items
    from loopwise.labeling.service import find_job
    from loopwise.review.output import completed_examples

    rows: list[tuple[str, str]] = []
    labels: list[str] | None = None
    base = inputs.get("base")
    if base:
        from loopwise.data.versions import parse_dataset_ref

        base_name, base_version = parse_dataset_ref(str(base))
        with store.uow() as uow:
            found = uow.datasets.get(base_name, base_version)
        texts, found_labels = read_split(store.artifacts.local_file(found.split("train").uri))
        rows += list(zip(texts, found_labels, strict=True))
        labels = [str(x) for x in found.labels]
        log(f"base {found.ref}: {len(texts)} training rows")
    new = 0
    reviewed: set[str] = set()
    for flow in _names(inputs.get("review_flows")):
        examples = completed_examples(store, flow)
        rows += [(e["text"], e["label"]) for e in examples]
        reviewed.update(e["inference_id"] for e in examples if e["inference_id"])
        new += len(examples)
        log(f"review flow {flow}: {len(examples)} completed loops")
    for endpoint in _names(inputs.get("feedback")):
        given = _feedback_rows(store, endpoint, reviewed, log)
        rows += given
        new += len(given)
    for job in _names(inputs.get("labeling_jobs")):
        items = labeled_items(store, find_job(store, job))
        rows += [(i.source, i.label) for i in items]
        new += len(items)
        log(f"labeling job {job}: {len(items)} labeled items")
    minimum = int(inputs.get("min_new", 0))
    if new < minimum:
        raise PipelineError(f"{new} new labels, fewer than min_new {minimum}: nothing to retrain on yet")
    if not rows:
        raise PipelineError(
            "no labeled rows: give a base data set, review flows or labeling jobs with labels"
        )
    origin = {"kind": "pipeline gather-labels", "base": base, "new_labels": new}
    origin |= {
        "review_flows": _names(inputs.get("review_flows")),
        "labeling_jobs": _names(inputs.get("labeling_jobs")),
        "feedback": _names(inputs.get("feedback")),
    }
    version = import_rows(
        store,
        rows,
        name=str(inputs["dataset"]),
        labels=labels,
        train=0.9,
        validation=0.1,
        test=0.0,
        origin=origin,
    )
    log(f"data set {version.ref}: {len(rows)} rows, {new} of them new labels")
    return {"dataset": version.ref, "examples": len(rows), "new_labels": new}


def _feedback_rows(store: Store, endpoint: str, reviewed: set[str], log: Log) -> list[tuple[str, str]]:
    """(text, label) for each captured request of ``endpoint`` whose inference got ground truth as
    feedback, but for the inferences in ``reviewed`` (their answers are gathered already)."""
    from loopwise.serving.capture import read_captures

    with store.uow() as uow:
        uow.endpoints.get(endpoint)  # the endpoint must exist
        given = {f.inference_id: f.labels for f in uow.feedback.for_endpoint(endpoint) if f.labels}
    rows: list[tuple[str, str]] = []
    captured = matched = 0
    for record in read_captures(store.artifacts.host_dir("capture"), endpoint):
        if "shadow_of" in record:
            continue
        captured += 1
        labels = given.get(record["inference_id"])
        if labels is None or record["inference_id"] in reviewed:
            continue
        reviewed.add(record["inference_id"])  # an inference captured twice counts once
        matched += 1
        rows += [(str(t), str(y)) for t, y in zip(record["input"], labels, strict=False)]
    log_line = f"endpoint {endpoint}: {len(rows)} texts with ground truth ({matched} of {captured} captured "
    log_line += f"requests; {len(given)} inferences got feedback)"
    if given and not captured:
        log_line += ": capture is off, and feedback alone has no text (turn data capture on)"
    log(log_line)
    return rows


def train(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """A model trained on ``dataset``: with ``params``, or the best trial's hyperparameters of
    ``tuning_job`` (its static settings too), the default otherwise; ``options`` go to the backend's
    classifier (TF-IDF's ``C``, say). A ``base_model`` that names a registered model (``name@champion``)
    warm-starts from its checkpoint."""
    from loopwise.classifiers import TrainConfig
    from loopwise.training.service import TrainRequest
    from loopwise.training.service import train as run_training

    values: dict[str, Any] = {}
    lineage: dict[str, Any] = {}
    if inputs.get("tuning_job"):
        values |= _best_params(store, str(inputs["tuning_job"]))
        lineage["tuning_job"] = inputs["tuning_job"]
        log(f"hyperparameters of tuning job {inputs['tuning_job']}'s best trial: {values}")
    values |= dict(inputs.get("params") or {})
    values |= {key: str(inputs[key]) for key in ("device", "precision") if inputs.get(key) is not None}
    base_model = inputs.get("base_model")
    if base_model and ("@" in str(base_model) or ":" in str(base_model)):
        base_model = _checkpoint(store, str(base_model))
        lineage["warm_start"] = str(inputs["base_model"])
        log(f"warm start from {inputs['base_model']} ({base_model})")
    request = TrainRequest(
        dataset=str(inputs["dataset"]),
        backend=str(inputs.get("backend", "transformers")),
        base_model=base_model,
        model_name=inputs.get("model_name"),
        config=TrainConfig.from_dict(values),
        options=dict(inputs.get("options") or {}),
        lineage=lineage,
    )
    outcome = run_training(store, request, progress=False)
    if outcome.model is None:
        raise PipelineError(f"training run {outcome.run.id} ended without a model")
    log(f"trained {outcome.model.ref} (run {outcome.run.id})")
    return {"model": outcome.model.ref, "run": outcome.run.id}


def _checkpoint(store: Store, ref: str) -> str:
    """The local checkpoint directory of a registered model (``name:3``, ``name@champion``)."""
    from loopwise import registry

    with store.uow() as uow:
        version = registry.resolve(uow, ref)
    version.require_checkpoint()
    return str(store.artifacts.local_file(version.uri))


def _best_params(store: Store, job_name: str) -> dict[str, Any]:
    from loopwise.tuning.outcome import ranked_trials
    from loopwise.tuning.service import job_trials

    job, trials = job_trials(store, job_name)
    ranked = ranked_trials(trials, job_spec(job))
    if not ranked:
        raise PipelineError(f"tuning job {job_name} has no completed trial to take hyperparameters from")
    return {**job_spec(job).static, **ranked[0].params}


def compare(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """The candidate against the champion on the same held-out examples (McNemar, paired bootstrap)."""
    from loopwise.evaluation.service import compare as paired

    require = str(inputs.get("require", "not-worse"))
    if require not in REQUIRE:
        raise PipelineError(f"compare's require: one of {', '.join(REQUIRE)}, got {require!r}")
    alpha = float(inputs.get("alpha", 0.05))
    if not 0 < alpha < 1:
        raise PipelineError(f"compare's alpha: between 0 and 1 (like 0.05), got {alpha}")
    outcome = paired(
        store, str(inputs["champion"]), str(inputs["candidate"]), str(inputs["dataset"]),
        str(inputs.get("split", "test")), alpha=alpha,
        device=str(inputs.get("device", "auto")), precision=str(inputs.get("precision", "auto")),
    )  # fmt: skip
    result = outcome.comparison
    if not result["significant"]:
        verdict = "tie"
    else:
        verdict = "better" if result["better"] == result["name_b"] else "worse"
    log(result["summary"])
    figures: dict[str, Any] = {
        "verdict": verdict,
        "difference": round(float(result["difference"]), 6),
        "p_value": round(float(result["p_value"]), 6),
        "accuracy_champion": round(float(result["accuracy_a"]), 6),
        "accuracy_candidate": round(float(result["accuracy_b"]), 6),
        "report": str(outcome.path),
    }
    lost = (
        verdict == "worse"
        or (require == "better" and verdict != "better")
        or (require == "no-loss" and float(result["difference"]) < 0)
    )
    if lost:
        if verdict != "tie":
            shown = f"{verdict} than"
        elif result["difference"] < 0:
            shown = "less accurate (not significantly) than"
        else:
            shown = "not significantly better than"
        raise PipelineError(
            f"the candidate {inputs['candidate']} is {shown} {inputs['champion']} "
            f"({figures['accuracy_candidate']:.4f} against {figures['accuracy_champion']:.4f}, p "
            f"{figures['p_value']:.3g}; the step requires {require}): it is not promoted"
        )
    log(
        f"verdict {verdict}: {figures['accuracy_candidate']:.4f} against {figures['accuracy_champion']:.4f}"
        f" (p {figures['p_value']:.3g} at alpha {alpha:g})"
    )
    return figures


#: the operations that run a torch model, and so take ``device`` and ``precision``
PLACED = ("train", "compare")
#: what a compare step may require of the candidate
REQUIRE = ("not-worse", "better", "no-loss")


def set_alias(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """Point a registry alias at the model."""
    from loopwise import registry

    with store.uow() as uow:
        version = registry.set_alias(uow, str(inputs["model"]), str(inputs["alias"]))
    log(f"{version.ref} is {version.name}@{inputs['alias']}")
    return {"model": version.ref}


def promote(store: Store, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
    """The model becomes the champion (or ``alias``), only after a comparison it did not lose; with an
    ``endpoint`` and the candidate's ``variant``, the endpoint follows (the variant takes all the traffic,
    the others leave). With ``ab``, the A/B test's decision: ``champion`` (the candidate lost live)
    retires the variant and moves no alias; ``candidate``, ``tie`` and ``inconclusive`` (it did not lose
    offline nor live, and learned from more labels) promote it."""
    from loopwise import registry
    from loopwise.errors import NotFoundError
    from loopwise.pipelines.deployment import settle_endpoint

    if inputs["comparison"] not in ("better", "tie"):
        raise PipelineError(
            f"comparison verdict {inputs['comparison']!r}: a model that lost is never promoted"
        )
    ab = inputs.get("ab")
    if ab is not None and ab not in ("candidate", "champion", "tie", "inconclusive"):
        raise PipelineError(
            f"ab: the A/B test's decision (candidate, champion, tie or inconclusive), got {ab!r}"
        )
    endpoint, variant = inputs.get("endpoint"), inputs.get("variant")
    if (endpoint is None) != (variant is None):
        raise PipelineError("promote on an endpoint needs both endpoint and variant (the candidate's)")
    alias = str(inputs.get("alias", "champion"))
    with store.uow() as uow:
        model = registry.resolve(uow, str(inputs["model"]))
        try:
            previous = registry.resolve(uow, f"{model.name}@{alias}").ref
        except NotFoundError:
            previous = None
    if ab == "champion":
        log(f"{model.ref} lost the A/B test: retired, {model.name}@{alias} stays {previous or 'unset'}")
        if endpoint is not None:
            settle_endpoint(store, str(endpoint), str(variant), False, log)
        return {"model": model.ref, "previous": previous, "outcome": "retired"}
    with store.uow() as uow:
        registry.set_alias(uow, model.ref, alias)
    log(f"{model.ref} promoted to {model.name}@{alias} (was {previous or 'nobody'})")
    if endpoint is not None:
        settle_endpoint(store, str(endpoint), str(variant), True, log)
    return {"model": model.ref, "previous": previous, "outcome": "promoted"}


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "gather-labels", ("dataset",),
            ("base", "review_flows", "labeling_jobs", "feedback", "min_new"),
            ("dataset", "examples", "new_labels"), gather_labels,
        ),
        Operation(
            "train", ("dataset",),
            ("backend", "model_name", "base_model", "params", "options", "tuning_job", "device",
             "precision"),
            ("model", "run"), train,
        ),
        Operation(
            "compare", ("champion", "candidate", "dataset"),
            ("split", "require", "alpha", "device", "precision"),
            ("verdict", "difference", "p_value", "accuracy_champion", "accuracy_candidate", "report"),
            compare,
        ),
        Operation("set-alias", ("model", "alias"), (), ("model",), set_alias),
        Operation(
            "canary", ("endpoint", "model"),
            ("variant", "percent", "share", "bake", "timeout", "poll", "max_error_rate", "max_p99_ms",
             "min_requests"),
            ("variant", "rollout", "share", "config"), deployment.canary,
        ),
        Operation(
            "ab-test", ("endpoint", "candidate"),
            ("champion", "config", "alpha", "min_effect", "max_labelled", "timeout", "poll"),
            ("decision", "winner", "champion", "p_value", "difference", "accuracy_champion",
             "accuracy_candidate", "labelled"),
            deployment.ab_test,
        ),
        Operation(
            "promote", ("model", "comparison"), ("alias", "endpoint", "variant", "ab"),
            ("model", "previous", "outcome"), promote,
        ),
    )
}  # fmt: skip
