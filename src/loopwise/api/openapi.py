"""The server's OpenAPI document, complete enough to fuzz: what FastAPI generates, plus what it cannot see.

* the request bodies the routes parse themselves (to keep the 413 limit and their own messages);
* ``POST /endpoints/{name}/invocations``, answered by :class:`~loopwise.api.invocations.InvocationsMiddleware`
  before any route;
* the error answers every route can give (``{"error": {"type", "message"}}``: 400 and the rest), in
  place of FastAPI's 422 that the server never sends;
* links from the listings and creations to the operations on one thing (a job's id, a loop's name, an
  endpoint's name), so a stateful client (schemathesis) walks from real objects to their operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_ERROR_RESPONSE = {
    "description": "The request was refused or failed: the error's type and what to do",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_INSTANCE = {
    "type": "object",
    "required": ["features"],
    "properties": {"features": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 1}},
}
INVOCATIONS = {
    "post": {
        "operationId": "invoke_endpoint",
        "summary": "SageMaker Runtime's InvokeEndpoint (answered ahead of the routes)",
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "X-Amzn-SageMaker-Target-Variant",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,63}$"},
            },
            {
                "name": "X-Amzn-SageMaker-Inference-Id",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [_INSTANCE, {"type": "array", "items": _INSTANCE, "minItems": 1}]}
                },
                "text/csv": {"schema": {"type": "string", "minLength": 1}},
            },
        },
        "responses": {
            "200": {
                "description": "One answer, or one per text, in the request's content type",
                "content": {"application/json": {}, "application/jsonlines": {}, "text/csv": {}},
            },
            "default": _ERROR_RESPONSE,
        },
    }
}
_FEEDBACK_ITEM = {
    "type": "object",
    "required": ["inference_id"],
    "properties": {
        "inference_id": {"type": "string"},
        "label": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "reward": {"type": "number"},
    },
}


def _bodies() -> dict[tuple[str, str], type[BaseModel] | dict[str, Any]]:
    from loopwise.api import schemas
    from loopwise.api.invocations import PredictRequest

    return {
        ("post", "/api/v1/labeling/jobs"): schemas.JobRequest,
        ("post", "/api/v1/labeling/jobs/{job_id}/next"): schemas.NextRequest,
        ("post", "/api/v1/labeling/assignments/{assignment_id}/submit"): schemas.SubmitRequest,
        ("post", "/api/v1/labeling/reviews/{review_id}"): schemas.SubmitRequest,
        ("post", "/api/v1/review/loops"): schemas.StartRequest,
        ("post", "/api/v1/review/flows"): schemas.FlowRequest,
        ("post", "/api/v1/endpoints/{name}/predict"): PredictRequest,
        ("post", "/api/v1/endpoints/{name}/feedback"): {"type": "array", "items": _FEEDBACK_ITEM},
    }


#: (operation, status) -> {link name: (target operation, {parameter: runtime expression})}
LINKS: dict[tuple[tuple[str, str], str], dict[str, tuple[tuple[str, str], dict[str, str]]]] = {}


def _link_family(
    source: tuple[str, str], status: str, pointer: str, parameter: str, targets: list[tuple[str, str]]
) -> None:
    LINKS[(source, status)] = {
        f"{method}{path}".replace("/", "_").replace("{", "").replace("}", ""): (
            (method, path),
            {parameter: f"$response.body#{pointer}"},
        )
        for method, path in targets
    }


_JOB = "/api/v1/labeling/jobs/{job_id}"
_JOB_OPERATIONS = [
    ("get", _JOB),
    ("get", f"{_JOB}/answers"),
    ("get", f"{_JOB}/progress"),
    ("get", f"{_JOB}/reviews"),
    ("post", f"{_JOB}/next"),
    ("post", f"{_JOB}/undo"),
]
_link_family(("get", "/api/v1/labeling/jobs"), "200", "/0/id", "job_id", _JOB_OPERATIONS)
_link_family(("post", "/api/v1/labeling/jobs"), "201", "/id", "job_id", _JOB_OPERATIONS)
_link_family(
    ("post", f"{_JOB}/next"),
    "200",
    "/tasks/0/assignment_id",
    "assignment_id",
    [
        ("post", "/api/v1/labeling/assignments/{assignment_id}/submit"),
        ("post", "/api/v1/labeling/assignments/{assignment_id}/skip"),
    ],
)
_LOOP = "/api/v1/review/loops/{name}"
_LOOP_OPERATIONS = [("get", _LOOP), ("get", f"{_LOOP}/output"), ("post", f"{_LOOP}/stop"), ("delete", _LOOP)]
_link_family(
    ("get", "/api/v1/review/loops"), "200", "/HumanLoopSummaries/0/HumanLoopName", "name", _LOOP_OPERATIONS
)
_link_family(("post", "/api/v1/review/loops"), "201", "/HumanLoopName", "name", _LOOP_OPERATIONS)
_FLOW_OPERATIONS = [("get", "/api/v1/review/flows/{name}"), ("delete", "/api/v1/review/flows/{name}")]
_link_family(("get", "/api/v1/review/flows"), "200", "/0/FlowDefinitionName", "name", _FLOW_OPERATIONS)
_link_family(("post", "/api/v1/review/flows"), "201", "/FlowDefinitionName", "name", _FLOW_OPERATIONS)
_ENDPOINT = "/api/v1/endpoints/{name}"
_link_family(
    ("get", "/api/v1/endpoints"),
    "200",
    "/0/name",
    "name",
    [
        ("get", _ENDPOINT),
        *(("get", f"{_ENDPOINT}/{part}") for part in ("metrics", "shadow", "bandit", "scaling")),
        ("post", f"{_ENDPOINT}/predict"),
        ("post", f"{_ENDPOINT}/feedback"),
        ("post", "/endpoints/{name}/invocations"),
    ],
)
#: operations that answer 201 when they make something, 204 with no body
CREATED = {
    ("post", "/api/v1/labeling/jobs"),
    ("post", "/api/v1/review/loops"),
    ("post", "/api/v1/review/flows"),
}
NO_CONTENT = {("delete", _LOOP)}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's) with the bodies, the invocations route, the error answers and the links
    added; changed in place and returned."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR
    paths = document.setdefault("paths", {})
    paths["/endpoints/{name}/invocations"] = INVOCATIONS
    for (method, path), body in _bodies().items():
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        if isinstance(body, dict):
            schema: dict[str, Any] = body
        else:
            schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[body.__name__] = schema
            schema = {"$ref": f"#/components/schemas/{body.__name__}"}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    operation_ids = {
        (method, path): operation["operationId"]
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "operationId" in operation
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = _ERROR_RESPONSE
            if (method, path) in CREATED:
                responses["201"] = responses.pop("200", {"description": "Made"})
                responses["200"] = {"description": "It existed already", "content": {"application/json": {}}}
            if (method, path) in NO_CONTENT:
                responses.pop("200", None)
                responses["204"] = {"description": "Done"}
    paths["/metrics"]["get"]["responses"]["200"] = {
        "description": "Prometheus' text format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    for (source, status), links in LINKS.items():
        method, path = source
        response = paths[path][method]["responses"].setdefault(status, {"description": "OK"})
        response["links"] = {
            name: {"operationId": operation_ids[target], "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operation_ids
        }
    return document


def install(app: FastAPI) -> None:
    """Serve :func:`complete`'s document at ``/openapi.json`` (built once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app.state, "openapi_completed", False):
            complete(generate())
            app.state.openapi_completed = True
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
