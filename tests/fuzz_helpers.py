"""The fuzzing set-up the standing test (tests/api/test_fuzz.py) and the long run (benchmarks/fuzz.py)
share: a store seeded with one of everything, and schemathesis over the server's whole OpenAPI document,
stateless then stateful, tallying requests, server errors, answers that do not conform, and 2xx answers
a role got that the permission table (:data:`loopwise.api.auth.POLICY`) says it should not."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loopwise.api.auth import required
from loopwise.storage import Store
from loopwise.workforce.records import ROLE_PERMISSIONS

TEAM = "fuzzers"
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
WORDS = {"-1": "awful terrible broken", "0": "okay average plain", "1": "great lovely perfect"}


def seed(store: Store, directory: Path) -> dict[str, Any]:
    """One of everything the API works on, made through the services: a data set, a TF-IDF model, an
    endpoint serving it that sends every prediction to a review flow (so invocations write human loops),
    a loop, and a labeling job over the data set's split. Returns their names and ids."""
    from loopwise.data.service import import_dataset
    from loopwise.labeling import service as labeling
    from loopwise.labeling.jobs import COURSE_CATEGORIES
    from loopwise.labeling.manifest import dataset_items
    from loopwise.review import service as review
    from loopwise.serving.config import parse_endpoint_config
    from loopwise.serving.service import create_endpoint
    from loopwise.training.service import TrainRequest, train
    from loopwise.workforce import service as workforce

    rng = random.Random(0)
    path = directory / "fuzz.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "stars"])
        writer.writeheader()
        for label, words in WORDS.items():
            for i in range(20):
                writer.writerow(
                    {"review": f"{' '.join(rng.sample(words.split(), 2))} item {i}", "stars": label}
                )
    dataset = import_dataset(
        store,
        path,
        name="fuzz",
        text_column="review",
        label_column="stars",
        train=0.7,
        validation=0.15,
        test=0.15,
    ).ref
    train(store, TrainRequest(dataset=dataset, backend="tfidf", model_name="fuzz-tfidf"), progress=False)
    workforce.create_team(store, TEAM)
    categories = list(COURSE_CATEGORIES)
    review.create_flow(
        store, "fuzz-flow", team=TEAM, categories=categories, conditions={"confidence_below": 1.0}
    )
    config = {"variants": [{"name": "A", "model": "fuzz-tfidf:1"}], "review": {"flow": "fuzz-flow"}}
    create_endpoint(store, "fuzz", parse_endpoint_config(config))
    loop, _ = review.start_loop(
        store, "fuzz-loop", "fuzz-flow", {"taskObject": "great lovely", "initialValue": "1"}
    )
    job = labeling.create_job(
        store, "fuzz-job", dataset_items(store, dataset, "train"), team=TEAM, categories=categories
    )
    return {"dataset": dataset, "endpoint": "fuzz", "flow": "fuzz-flow", "loop": loop.name, "job": job.id}


@dataclass
class Tally:
    """What one run saw; each failure kept with the request that made it (as a curl command)."""

    role: str = "admin"
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    #: the operations that answered 2xx at least once
    succeeded: set[str] = field(default_factory=set)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)
    unauthorized: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: print a line every ``progress`` requests (0: never)
    progress: int = 0

    def exchange(self, case: schemathesis.Case, headers: dict[str, str]) -> schemathesis.Response:
        """Send ``case`` with ``headers``, check the answer and count it."""
        response = case.call(headers=headers, timeout=60)
        status = response.status_code
        self.requests += 1
        self.operations.add(f"{case.method.upper()} {case.path}")
        if 200 <= status < 300:
            self.succeeded.add(f"{case.method.upper()} {case.path}")
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.progress and self.requests % self.progress == 0:
            print(
                f"  {self.role}: {self.requests} requests, {len(self.server_errors)} server errors",
                flush=True,
            )
        if status >= 500:
            self.server_errors.append(self._describe(case, response, headers))
        need = required(case.method.upper(), case.formatted_path)
        if 200 <= status < 300 and need != "public" and need not in ROLE_PERMISSIONS[self.role]:  # type: ignore[index]
            self.unauthorized.append(self._describe(case, response, headers))
        if status < 500:
            try:
                case.validate_response(response, checks=CONFORMANCE, headers=headers)
            except (Exception, FailureGroup) as exc:  # FailureGroup: the checks that failed
                self.nonconforming.append(f"{self._describe(case, response, headers)}\n{str(exc)[:400]}")
        return response

    @staticmethod
    def _describe(case: schemathesis.Case, response: schemathesis.Response, headers: dict[str, str]) -> str:
        hidden = {key: "Bearer ..." for key in headers}
        return f"{response.status_code} {response.text[:300]!r}\n  {case.as_curl_command(headers=hidden)}"

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "operations": len(self.operations),
            "succeeded": len(self.succeeded),
            "server_errors": len(self.server_errors),
            "nonconforming": len(self.nonconforming),
            "unauthorized": len(self.unauthorized),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


#: path prefix -> the seeded object (a key of :func:`seed`'s answer) its parameter names
SEEDED = {
    "/api/v1/endpoints/{name}": "endpoint",
    "/endpoints/{name}": "endpoint",
    "/api/v1/labeling/jobs/{job_id}": "job",
    "/api/v1/review/loops/{name}": "loop",
    "/api/v1/review/flows/{name}": "flow",
}


def _real(method: str, path: str, seeded: dict[str, Any]) -> dict[str, Any] | None:
    """The path parameters that name a seeded object in ``path``; None where there is none, or where
    the operation would delete or stop it (the stateful phase reaches those through the links)."""
    if method.upper() == "DELETE" or path.endswith("/stop"):
        return None
    for prefix, key in SEEDED.items():
        if path.startswith(prefix) and key in seeded:
            return {prefix.rsplit("{", 1)[1].rstrip("}"): seeded[key]}
    return None


def _settings(examples: int, **more: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        **more,
    )


#: operations on the fuzzer's own credentials: fuzzed, they revoke its token (ids 1, 2, ... are the first
#: values generated) or reset its password, and every later request is a 401. Their bad inputs are tested
#: in tests/workforce/test_sessions_and_tokens.py and who may call them in the permission matrix.
SELF_LOCKOUT = (
    ("DELETE", "/api/v1/workforce/tokens/{token_id}"),
    ("POST", "/api/v1/workforce/workers/{email}/password-reset"),
)


def fuzz(
    base_url: str,
    headers: dict[str, str],
    *,
    examples: int,
    steps: int,
    role: str = "admin",
    schema_headers: dict[str, str] | None = None,
    progress: int = 0,
    seeded: dict[str, Any] | None = None,
) -> Tally:
    """Every operation on a seeded object (:func:`seed`'s names and ids in its path; not those that
    delete or stop it) with ``examples`` valid requests each; every operation with ``examples`` valid and
    ``examples`` invalid requests each; then ``steps`` stateful scenarios that follow the document's
    links from listings and creations to the operations on them. All sent with ``headers`` (the document
    itself is read with ``schema_headers``, an admin's: only admins may read it). Derandomized: the same
    run each time."""
    import time

    tally = Tally(role=role, progress=progress)
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", headers=schema_headers or headers, timeout=60
    )
    for method, path in SELF_LOCKOUT:
        schema = schema.exclude(method=method, path=path)
    operations = [result.ok() for result in schema.get_all_operations()]
    positive, negative = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    passes = [(o, positive, real) for o in operations if (real := _real(o.method, o.path, seeded or {}))]
    passes += [(o, mode, None) for o in operations for mode in (positive, negative)]
    for operation, mode, path_parameters in passes:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @_settings(examples)
        @hypothesis.given(strategy)
        def send(case: schemathesis.Case) -> None:
            tally.exchange(case, headers)

        try:
            send()
        except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            continue
    tally.seconds["stateless"] = time.monotonic() - started
    if steps:
        machine = schema.as_state_machine()

        class Walk(machine):  # type: ignore[valid-type,misc]
            def call(self, case: schemathesis.Case, **kwargs: Any) -> schemathesis.Response:
                return tally.exchange(case, headers)

            def validate_response(self, *args: Any, **kwargs: Any) -> None:
                """Checked in :meth:`Tally.exchange`, failures tallied rather than raised."""

        Walk.run(settings=_settings(steps, stateful_step_count=8))
    tally.seconds["all"] = time.monotonic() - started
    return tally
