"""Invoking endpoints over HTTP: SageMaker Runtime's InvokeEndpoint contract and loopwise's native API.

``POST /endpoints/{name}/invocations`` answers what SageMaker's runtime answers, so existing clients work:

* ``application/json``: ``{"features": [text]}`` or a list of them (also ``{"instances": [...]}``) in;
  ``{"probability": p, "predicted_label": l}`` (or a list) out;
* ``application/jsonlines``: one ``{"features": [text]}`` per line in, one answer per line out (the course's
  contract);
* ``text/csv``: one text per row in, ``predicted_label,probability`` rows out.

Headers ``X-Amzn-SageMaker-Target-Variant`` (route to that variant), ``X-Loopwise-Routing-Key`` (sticky
routing: the same key stays on one variant) and ``X-Amzn-SageMaker-Inference-Id`` (the caller's id; one is
made otherwise) in; ``X-Amzn-Invoked-Production-Variant`` and the inference id out.

A text holding a NUL byte is refused with 400 naming its place (``instance 2``, ``line 3``, ``row 1``,
``texts.0``): it could be neither captured nor sent to people on PostgreSQL.

``POST /api/v1/endpoints/{name}/predict`` takes ``{"texts": [...], "target_variant": ..., "routing_key": ...,
"inference_id": ...}`` and answers every class's probability, the variant, the model version and the
inference id.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from loopwise.api.fields import NUL_MESSAGE, BadRequest, database_refused, refuse_nul
from loopwise.api.headers import NOSNIFF
from loopwise.errors import (
    AccountError,
    AnswerRefusedError,
    EndpointConfigError,
    HumanLoopConflictError,
    LabelingError,
    NotFoundError,
    PermissionDeniedError,
    ReviewError,
    StorageError,
)
from loopwise.serving.plane import DataPlane, Invocation
from loopwise.serving.router import ModelFailed, VariantUnavailable

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT = "X-Amzn-Invoked-Production-Variant"
MODEL_VERSION = "X-Loopwise-Model-Version"
#: the human loops a request started, by text (comma-separated; empty where a text started none), cut
#: after the last whole entry within HUMAN_LOOPS_MAX_BYTES (the body names every loop)
HUMAN_LOOPS = "X-Loopwise-Human-Loops"
#: how many human loops the request started, all of them: more than the header names when it was cut
HUMAN_LOOP_COUNT = "X-Loopwise-Human-Loop-Count"
HUMAN_LOOPS_MAX_BYTES = 4096
#: a caller key (a user id, a session): the same key stays on the same variant while the weights stay
ROUTING_KEY = "X-Loopwise-Routing-Key"

JSON, JSON_LINES, CSV = "application/json", "application/jsonlines", "text/csv"
CONTENT_TYPES = {JSON: JSON, JSON_LINES: JSON_LINES, "application/x-jsonlines": JSON_LINES, CSV: CSV}

router = APIRouter()


class InvocationsMiddleware:
    """``POST /endpoints/{name}/invocations`` answered in pure ASGI, before FastAPI's routing and
    request objects: the hot path of every endpoint, where the router's whole added latency is budgeted
    at a millisecond. Everything else goes on to the app."""

    PREFIX, SUFFIX = "/endpoints/", "/invocations"
    #: the routes answered here rather than by the app's router, as (method, path template): the
    #: permission matrix (tests/api/test_permission_matrix.py) reads it to find every route
    ROUTES = (("POST", "/endpoints/{name}/invocations"),)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith(self.PREFIX) and path.endswith(self.SUFFIX)):
            await self.app(scope, receive, send)
            return
        name = path[len(self.PREFIX) : -len(self.SUFFIX)]
        if not name or "/" in name:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        try:
            if scope["method"] != "POST":
                raise BadRequest("send the request with POST", status=405)
            body = await read_asgi_body(receive, headers.get("content-length"), state.max_body_bytes)
            payload, content_type, extra = await invoke(state.plane, name, headers, body)
            status = 200
        except Exception as exc:
            found = problem(exc)
            if found is None:
                raise
            status, kind, message = found
            if status < 500 and name in state.plane.runtimes:
                state.plane.metrics.failed(name, None, status)
            payload, content_type, extra = error_body(kind, message), JSON, {}
        response_headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(payload)).encode()),
            NOSNIFF,
            *((key.lower().encode(), value.encode("latin-1")) for key, value in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})


async def invoke(
    plane: DataPlane, name: str, headers: dict[str, str], body: bytes
) -> tuple[bytes, str, dict[str, str]]:
    """SageMaker Runtime's InvokeEndpoint: the answer's body, content type and headers (``headers``: the
    request's, lower-case)."""
    given = headers.get("content-type", JSON).split(";")[0].strip().lower()
    content_type = CONTENT_TYPES.get(given)
    if content_type is None:
        raise BadRequest(
            f"content type {given!r} is not supported: send {', '.join(sorted(CONTENT_TYPES))}", status=415
        )
    texts, single = _parse(body, content_type)
    inference_id = headers.get(INFERENCE_ID.lower())
    if inference_id is not None and not 0 < len(inference_id) <= 64:
        raise BadRequest(f"{INFERENCE_ID}: 1 to 64 characters, got {len(inference_id)}")
    result = await plane.invoke(
        name,
        texts,
        target=headers.get(TARGET_VARIANT.lower()),
        key=headers.get(ROUTING_KEY.lower()),
        inference_id=inference_id,
    )
    answers = _answers(result)
    if content_type == JSON_LINES:
        payload = b"".join(orjson.dumps(a) + b"\n" for a in answers)
    elif content_type == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows((a["predicted_label"], a["probability"]) for a in answers)
        payload = out.getvalue().encode("utf-8")
    else:
        payload = orjson.dumps(answers[0] if single else answers)
    extra = {INVOKED_VARIANT: result.variant, INFERENCE_ID: result.inference_id, MODEL_VERSION: result.model}
    extra.update(human_loop_headers(result.human_loops))
    return payload, content_type, extra


def human_loop_headers(names: Sequence[str | None]) -> dict[str, str]:
    """The headers naming a request's human loops: their count, and the names by text position up to
    :data:`HUMAN_LOOPS_MAX_BYTES` (a request of thousands of texts would otherwise make a header that
    clients and proxies refuse); none when no loop started."""
    count = sum(1 for name in names if name)
    if not count:
        return {}
    listed = ",".join(name or "" for name in names)
    if len(listed) > HUMAN_LOOPS_MAX_BYTES:
        cut = listed[: HUMAN_LOOPS_MAX_BYTES + 1]
        listed = cut[: max(cut.rfind(","), 0)].rstrip(",")  # the whole entries that fit, no trailing empties
    return {HUMAN_LOOPS: listed, HUMAN_LOOP_COUNT: str(count)}


async def read_asgi_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The request's body, refused with 413 past ``limit`` bytes (checked on the ``declared`` length, then
    on what is read)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body ({declared} bytes) is over the limit of {limit} bytes", status=413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body (over {limit} bytes) is over the limit of {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


#: the errors answered with their own status (:func:`problem`); any other is a 500 of the server itself
KNOWN_ERRORS = (
    BadRequest,
    EndpointConfigError,
    NotFoundError,
    ModelFailed,
    VariantUnavailable,
    LabelingError,
    AccountError,
    PermissionDeniedError,
    ReviewError,
    StorageError,
    OverflowError,
)

#: what answers a value the database refused that no check at the edge caught
DATABASE_REFUSED = (
    "a value of the request is out of range or holds a NUL byte (the database or a conversion refused "
    "it): check the request's numbers and texts"
)


def problem(exc: Exception) -> tuple[int, str, str] | None:
    """The status, error type and message that answer ``exc``; None for an error of the server itself."""
    if isinstance(exc, BadRequest):
        return exc.status, "ValidationError", str(exc)
    if isinstance(exc, EndpointConfigError):
        return 400, "ValidationError", str(exc)
    if isinstance(exc, NotFoundError):
        return 404, "NotFound", str(exc)
    if isinstance(exc, ModelFailed):
        return 500, "ModelError", f"the variant's model failed on this request: {exc}"
    if isinstance(exc, VariantUnavailable):
        return 503, "ServiceUnavailable", f"{exc}; retry in a moment"
    if isinstance(exc, AnswerRefusedError | HumanLoopConflictError):
        return 409, "Conflict", str(exc)
    if isinstance(exc, LabelingError | AccountError | ReviewError):
        return 400, "ValidationError", str(exc)
    if isinstance(exc, PermissionDeniedError):
        return 403, "Forbidden", str(exc)
    if isinstance(exc, StorageError | OverflowError) and database_refused(exc):
        import logging

        logging.getLogger(__name__).warning("the database refused a request's value (%s)", _cause(exc))
        return 400, "ValidationError", DATABASE_REFUSED
    return None


def _cause(exc: BaseException) -> str:
    """The error types down the cause chain (never their messages: they may quote the request)."""
    names: list[str] = []
    while exc is not None and len(names) < 5:
        names.append(type(exc).__name__)
        exc = exc.__cause__  # type: ignore[assignment]
    return " <- ".join(names)


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": kind, "message": message}})


class PredictRequest(BaseModel):
    texts: list[str] = Field(min_length=1)
    target_variant: str | None = None
    #: sticky routing: the same key stays on the same variant while the weights stay
    routing_key: str | None = Field(default=None, max_length=256)
    inference_id: str | None = Field(default=None, max_length=64)


@router.post("/api/v1/endpoints/{name}/predict")
async def predict(name: str, request: Request) -> Response:
    """loopwise's native API: every class's probability, the variant and model version that answered."""
    plane: DataPlane = request.app.state.plane
    body = await read_body(request)
    refuse_nul(body)
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not a valid predict request: {_first_error(exc)}") from None
    _check_texts(parsed.texts)
    result = await plane.invoke(
        name,
        parsed.texts,
        target=parsed.target_variant,
        key=parsed.routing_key,
        inference_id=parsed.inference_id,
    )
    document = {
        "inference_id": result.inference_id,
        "endpoint": result.endpoint,
        "variant": result.variant,
        "model_version": result.model,
        "predictions": [
            {
                "label": result.labels[int(row.argmax())],
                "probabilities": dict(zip(result.labels, row.tolist(), strict=True)),
                **(
                    {"human_loop": result.human_loops[i]}
                    if result.human_loops[i:] and result.human_loops[i]
                    else {}
                ),
            }
            for i, row in enumerate(result.proba)
        ],
        "model_ms": round(result.model_ms, 3),
    }
    return Response(orjson.dumps(document), media_type=JSON, headers={INVOKED_VARIANT: result.variant})


async def read_body(request: Request) -> bytes:
    """A FastAPI request's body, refused with 413 past the app's limit."""
    limit: int = request.app.state.max_body_bytes
    return await read_asgi_body(request.receive, request.headers.get("content-length"), limit)


def _parse(body: bytes, content_type: str) -> tuple[list[str], bool]:
    """The texts of a request and whether it was a single JSON object. A text holding a NUL byte is
    refused by its place (PostgreSQL could not store its capture or its human loop); what tells is one
    substring test on the body, so a request without one pays nothing more."""
    nul = b"\\u0000" in body or b"\x00" in body
    if content_type == CSV:
        try:
            rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BadRequest(f"the CSV body cannot be read: {exc}") from None
        texts = [row[0] if row else "" for row in rows]
        _check_texts(texts, "row", nul)
        return texts, False
    if content_type == JSON_LINES:
        records = []
        for number, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                records.append(_json(line, f"line {number}"))
        texts = [_features(record, f"line {i}") for i, record in enumerate(records, start=1)]
        _check_texts(texts, "line", nul)
        return texts, False
    document = _json(body, "the body")
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    single = isinstance(document, dict)
    records = [document] if single else document
    if not isinstance(records, list):
        raise BadRequest('send {"features": [text]}, a list of them, or {"instances": [...]}')
    texts = [_features(record, f"instance {i}") for i, record in enumerate(records, start=1)]
    _check_texts(texts, "instance", nul)
    return texts, single


def _json(raw: bytes, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{where} is not valid JSON: {exc}") from None


def _features(record: Any, where: str) -> str:
    features = record.get("features") if isinstance(record, dict) else None
    if not (isinstance(features, list) and len(features) == 1 and isinstance(features[0], str)):
        raise BadRequest(f'{where}: expected {{"features": [text]}} with one text, got {str(record)[:200]}')
    return features[0]


def _check_texts(texts: list[str], what: str = "text", nul: bool = False) -> None:
    if not texts:
        raise BadRequest("the request holds no text")
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise BadRequest(f"text {number} is empty: send the text to classify")
        if nul and "\x00" in text:
            raise BadRequest(f"{what} {number}: {NUL_MESSAGE}")


def _answers(result: Invocation) -> list[dict[str, Any]]:
    answers = []
    for i, row in enumerate(result.proba):
        best = int(row.argmax())
        answer: dict[str, Any] = {
            "probability": float(row[best]),
            "predicted_label": _label(result.labels[best]),
        }
        if result.human_loops and result.human_loops[i] is not None:
            answer["human_loop_name"] = result.human_loops[i]  # the prediction went to people
        answers.append(answer)
    return answers


def _label(label: str) -> int | str:
    """The course's labels are numbers (-1, 0, 1) in its contract; other labels stay strings."""
    try:
        return int(label)
    except ValueError:
        return label


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)
