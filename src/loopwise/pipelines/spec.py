"""Pipeline files: a named sequence of steps, each an existing loopwise operation, checked whole before
anything runs.

.. code-block:: yaml

    name: retrain-reviews
    steps:
      - name: gather
        uses: gather-labels
        with: {dataset: reviews-retrain, base: "reviews:1", review_flows: [course]}
      - name: train
        uses: train
        with: {dataset: "${gather.dataset}", backend: tfidf, model_name: reviews-sentiment}
      - name: compare
        uses: compare
        with: {champion: reviews-sentiment@champion, candidate: "${train.model}", dataset: "reviews:1"}
      - name: promote
        uses: promote
        with: {model: "${train.model}", comparison: "${compare.verdict}"}

A step runs after the steps it names in ``needs`` and those whose outputs it reads (``${step.output}``).
An unknown operation, a missing or unknown input, a reference to a step or output that does not exist and
a cycle are refused with the line of the step (:class:`PipelineSpecError`, every problem listed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loopwise.errors import PipelineSpecError
from loopwise.pipelines.operations import OPERATIONS, PLACED

_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_REFERENCE = re.compile(r"\$\{([a-z0-9-]+)\.([a-z_]+)\}")


@dataclass(frozen=True)
class Step:
    name: str
    uses: str
    inputs: dict[str, Any]
    needs: tuple[str, ...]
    line: int

    def references(self) -> set[tuple[str, str]]:
        """The (step, output) pairs its inputs read."""
        found: set[tuple[str, str]] = set()
        _walk(self.inputs, found)
        return found


@dataclass(frozen=True)
class Trigger:
    """When a run starts by itself: ``every`` seconds after the last run began, once ``new_labels``
    labels arrived in the sources of the pipeline's gather-labels steps since, or when a monitoring
    alert names the action ``alert``."""

    kind: str
    value: Any
    line: int

    def describe(self) -> str:
        return {"every": f"every {self.value:g} s", "new_labels": f"{self.value} new labels"}.get(
            self.kind, f"an alert with action {self.value!r}"
        )


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    steps: tuple[Step, ...]
    triggers: tuple[Trigger, ...] = ()
    source: str = field(default="", compare=False)
    text: str = field(default="", compare=False)

    def order(self) -> list[Step]:
        """The steps in an order where each comes after what it needs (the file's order among equals)."""
        done: list[Step] = []
        placed: set[str] = set()
        while len(done) < len(self.steps):
            for step in self.steps:
                if step.name not in placed and _dependencies(step) <= placed:
                    done.append(step)
                    placed.add(step.name)
                    break
        return done

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def load_pipeline(path: Path) -> PipelineSpec:
    if not path.is_file():
        raise PipelineSpecError(f"no pipeline file {path}", [("file", "missing")])
    return parse_pipeline(path.read_text(encoding="utf-8"), source=str(path))


def parse_pipeline(text: str, *, source: str = "<pipeline>") -> PipelineSpec:
    """The pipeline of ``text`` (YAML), checked whole; :class:`PipelineSpecError` lists every problem with
    its line."""
    try:
        node = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineSpecError(f"{source} is not valid YAML: {exc}", [("file", "not YAML")]) from None
    problems: list[tuple[str, str]] = []
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        raise PipelineSpecError(f"{source}: a mapping with name and steps", [("file", "not a mapping")])
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(("name", f"line {_line(node, 'name')}: 1-63 lowercase letters, digits and hyphens"))
    unknown = set(document) - {"name", "steps", "description", "triggers"}
    if unknown:
        problems.append(("file", f"unknown keys {sorted(unknown)}: name, steps, triggers and description"))
    triggers = _triggers(document.get("triggers"), _value(node, "triggers"), problems)
    raw_steps = document.get("steps")
    step_nodes = _value(node, "steps")
    if not isinstance(raw_steps, list) or not raw_steps or not isinstance(step_nodes, yaml.SequenceNode):
        problems.append(("steps", "a non-empty list of steps"))
        raise PipelineSpecError(_message(source, problems), problems)
    steps = [_step(raw, item, problems) for raw, item in zip(raw_steps, step_nodes.value, strict=True)]
    names = [s.name for s in steps if s is not None]
    for repeated in sorted({n for n in names if names.count(n) > 1}):
        problems.append((f"steps.{repeated}", "two steps have this name"))
    found = [s for s in steps if s is not None]
    by_name = {s.name: s for s in found}
    for step in found:
        for need in step.needs:
            if need not in by_name:
                problems.append((f"steps.{step.name}.needs", f"line {step.line}: no step {need!r}"))
        for other, output in sorted(step.references()):
            if other not in by_name:
                problems.append(
                    (f"steps.{step.name}", f"line {step.line}: ${{{other}.{output}}} names no step")
                )
            elif output not in OPERATIONS[by_name[other].uses].outputs:
                produced = ", ".join(OPERATIONS[by_name[other].uses].outputs)
                problems.append(
                    (
                        f"steps.{step.name}",
                        f"line {step.line}: step {other} has no output {output!r} ({produced})",
                    )
                )
    if not problems:
        cycle = _cycle(found)
        if cycle:
            where = by_name[cycle[0]].line
            problems.append(("steps", f"line {where}: a cycle: {' -> '.join([*cycle, cycle[0]])}"))
    if problems:
        raise PipelineSpecError(_message(source, problems), problems)
    return PipelineSpec(str(name), tuple(found), tuple(triggers), source=source, text=text)


def _triggers(raw: Any, node: yaml.Node | None, problems: list[tuple[str, str]]) -> list[Trigger]:
    from loopwise._durations import parse_duration
    from loopwise.errors import DataFormatError

    if raw is None:
        return []
    if not isinstance(raw, list) or not isinstance(node, yaml.SequenceNode):
        problems.append(("triggers", "a list such as [{every: 1d}, {new_labels: 100}, {alert: retrain}]"))
        return []
    found = []
    for item, item_node in zip(raw, node.value, strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(("triggers", f"line {line}: one of every, new_labels or alert"))
            continue
        ((kind, value),) = item.items()
        if kind == "every":
            try:
                seconds = parse_duration(str(value), "every")
            except DataFormatError as exc:
                problems.append(("triggers", f"line {line}: {exc}"))
                continue
            if seconds < 60:
                problems.append(("triggers", f"line {line}: every {value}: at least 1m"))
                continue
            found.append(Trigger("every", seconds, line))
        elif kind == "new_labels":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(
                    ("triggers", f"line {line}: new_labels is a count of at least 1, got {value!r}")
                )
                continue
            found.append(Trigger("new_labels", value, line))
        elif kind == "alert":
            if not isinstance(value, str) or not value.strip():
                problems.append(("triggers", f"line {line}: alert names an alert action, such as retrain"))
                continue
            found.append(Trigger("alert", value, line))
        else:
            problems.append(
                ("triggers", f"line {line}: unknown trigger {kind!r}: every, new_labels or alert")
            )
    return found


def _step(raw: Any, node: yaml.Node, problems: list[tuple[str, str]]) -> Step | None:
    line = node.start_mark.line + 1
    if not isinstance(raw, dict):
        problems.append(("steps", f"line {line}: a step is a mapping with name, uses and with"))
        return None
    name = raw.get("name")
    where = f"steps.{name}" if isinstance(name, str) else "steps"
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append((where, f"line {line}: a step's name: 1-63 lowercase letters, digits and hyphens"))
        return None
    unknown = set(raw) - {"name", "uses", "with", "needs"}
    if unknown:
        problems.append((where, f"line {line}: unknown keys {sorted(unknown)} (name, uses, with, needs)"))
    uses = raw.get("uses")
    operation = OPERATIONS.get(uses) if isinstance(uses, str) else None
    if operation is None:
        problems.append(
            (
                where,
                f"line {line}: unknown operation {uses!r}; use one of {', '.join(OPERATIONS)} "
                "(`loopwise pipeline operations` says what each takes)",
            )
        )
        return None
    inputs = raw.get("with") or {}
    if not isinstance(inputs, dict):
        problems.append((where, f"line {line}: with is a mapping of inputs"))
        return None
    missing = [key for key in operation.required if key not in inputs]
    if missing:
        problems.append((where, f"line {line}: {uses} needs the input(s) {', '.join(missing)}"))
    extra = sorted(set(inputs) - set(operation.required) - set(operation.optional))
    if extra:
        known = ", ".join([*operation.required, *operation.optional])
        problems.append(
            (where, f"line {line}: {uses} takes no input(s) {', '.join(extra)} (it takes {known})")
        )
    if uses in PLACED:
        _check_placement(inputs, where, line, problems)
    needs = raw.get("needs") or []
    if isinstance(needs, str):
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        problems.append((where, f"line {line}: needs is a list of step names"))
        needs = []
    return Step(name, str(uses), dict(inputs), tuple(needs), line)


def _check_placement(inputs: dict[str, Any], where: str, line: int, problems: list[tuple[str, str]]) -> None:
    """A step's ``device`` and ``precision`` spelled as ``--device`` and ``--precision`` are (a
    ``${step.output}`` reference is checked when it is resolved, at run time)."""
    from loopwise.classifiers.devices import check_device, check_precision
    from loopwise.errors import ConfigurationError

    for key, check in (("device", check_device), ("precision", check_precision)):
        value = inputs.get(key)
        if value is None or (isinstance(value, str) and _REFERENCE.search(value)):
            continue
        try:
            if not isinstance(value, str):
                raise ConfigurationError(f"{key} takes a string such as auto, got {value!r}")
            check(value)
        except ConfigurationError as exc:
            problems.append((f"{where}.with.{key}", f"line {line}: {exc}"))


def _dependencies(step: Step) -> set[str]:
    return set(step.needs) | {other for other, _ in step.references()}


def _cycle(steps: list[Step]) -> list[str] | None:
    """A cycle among the steps' dependencies, as the names along it; None when there is none."""
    graph = {s.name: sorted(_dependencies(s)) for s in steps}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for nxt in graph.get(name, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in graph:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _walk(value: Any, found: set[tuple[str, str]]) -> None:
    if isinstance(value, str):
        found.update(_REFERENCE.findall(value))
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk(item, found)


def resolve(value: Any, outputs: dict[str, dict[str, Any]]) -> Any:
    """``value`` with each ``${step.output}`` replaced by that output (kept whole when it is the string)."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return outputs[whole.group(1)][whole.group(2)]
        return _REFERENCE.sub(lambda m: str(outputs[m.group(1)][m.group(2)]), value)
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value


def _value(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if getattr(k, "value", None) == key:
            return v
    return None


def _line(node: yaml.MappingNode, key: str) -> int:
    for k, _ in node.value:
        if getattr(k, "value", None) == key:
            return int(k.start_mark.line) + 1
    return int(node.start_mark.line) + 1


def _message(source: str, problems: list[tuple[str, str]]) -> str:
    listed = "; ".join(f"{where}: {message}" for where, message in problems)
    return f"{source} is not a valid pipeline ({len(problems)} problem(s)): {listed}"
