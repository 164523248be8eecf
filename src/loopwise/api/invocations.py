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

``POST /api/v1/endpoints/{name}/predict`` takes ``{"texts": [...], "target_variant": ..., "routing_key": ...,
"inference_id": ...}`` and answers every class's probability, the variant, the model version and the
inference id.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from loopwise.serving.plane import DataPlane, Invocation

TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT = "X-Amzn-Invoked-Production-Variant"
MODEL_VERSION = "X-Loopwise-Model-Version"
#: a caller key (a user id, a session): the same key stays on the same variant while the weights stay
ROUTING_KEY = "X-Loopwise-Routing-Key"

JSON, JSON_LINES, CSV = "application/json", "application/jsonlines", "text/csv"
CONTENT_TYPES = {JSON: JSON, JSON_LINES: JSON_LINES, "application/x-jsonlines": JSON_LINES, CSV: CSV}

router = APIRouter()


class BadRequest(Exception):
    """The request cannot be answered as sent (400, or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@router.post("/endpoints/{name}/invocations")
async def invocations(name: str, request: Request) -> Response:
    """SageMaker Runtime's InvokeEndpoint."""
    plane: DataPlane = request.app.state.plane
    body = await read_body(request)
    given = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    content_type = CONTENT_TYPES.get(given)
    if content_type is None:
        raise BadRequest(
            f"content type {given!r} is not supported: send {', '.join(sorted(CONTENT_TYPES))}", status=415
        )
    texts, single = _parse(body, content_type)
    result = await plane.invoke(
        name,
        texts,
        target=request.headers.get(TARGET_VARIANT),
        key=request.headers.get(ROUTING_KEY),
        inference_id=request.headers.get(INFERENCE_ID),
    )
    headers = {
        INVOKED_VARIANT: result.variant,
        INFERENCE_ID: result.inference_id,
        MODEL_VERSION: result.model,
    }
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
    return Response(payload, media_type=content_type, headers=headers)


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
            }
            for row in result.proba
        ],
        "model_ms": round(result.model_ms, 3),
    }
    return Response(orjson.dumps(document), media_type=JSON, headers={INVOKED_VARIANT: result.variant})


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 past the app's limit (checked on the declared length, then the read)."""
    limit: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body ({declared} bytes) is over the limit of {limit} bytes", status=413)
    body = await request.body()
    if len(body) > limit:
        raise BadRequest(f"the body ({len(body)} bytes) is over the limit of {limit} bytes", status=413)
    return body


def _parse(body: bytes, content_type: str) -> tuple[list[str], bool]:
    """The texts of a request and whether it was a single JSON object."""
    if content_type == CSV:
        try:
            rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BadRequest(f"the CSV body cannot be read: {exc}") from None
        texts = [row[0] if row else "" for row in rows]
        _check_texts(texts)
        return texts, False
    if content_type == JSON_LINES:
        records = []
        for number, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                records.append(_json(line, f"line {number}"))
        texts = [_features(record, f"line {i}") for i, record in enumerate(records, start=1)]
        _check_texts(texts)
        return texts, False
    document = _json(body, "the body")
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    single = isinstance(document, dict)
    records = [document] if single else document
    if not isinstance(records, list):
        raise BadRequest('send {"features": [text]}, a list of them, or {"instances": [...]}')
    texts = [_features(record, f"instance {i}") for i, record in enumerate(records, start=1)]
    _check_texts(texts)
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


def _check_texts(texts: list[str]) -> None:
    if not texts:
        raise BadRequest("the request holds no text")
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise BadRequest(f"text {number} is empty: send the text to classify")


def _answers(result: Invocation) -> list[dict[str, Any]]:
    answers = []
    for row in result.proba:
        best = int(row.argmax())
        answers.append({"probability": float(row[best]), "predicted_label": _label(result.labels[best])})
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
