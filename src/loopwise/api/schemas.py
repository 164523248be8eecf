"""The API's payloads: the request bodies' models, how a body is read into one, and JSON answers.

Bodies are read by :func:`parse_body` rather than by FastAPI's body parameters, so that every refusal
says the same thing the same way (a 400 naming the route and each bad field, NUL bytes refused anywhere
in the body, the app's size limit); the OpenAPI document still describes them
(:mod:`loopwise.api.openapi`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from loopwise.api.fields import BadRequest, Count, Id, Seconds, Text, describe_errors, refuse_nul
from loopwise.api.invocations import read_body
from loopwise.labeling.service import DEFAULT_LIFETIME
from loopwise.review.budget import DEFAULT_PER_INVOCATION
from loopwise.review.service import DEFAULT_LIFETIME_S

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model`` (an empty body: ``{}``); a :class:`BadRequest` naming every
    field that is wrong."""
    body = await read_body(request)
    refuse_nul(body)  # free-form parts too (manifest lines, loop input, settings)
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = describe_errors(exc.errors())
        raise BadRequest(f"the request body is not what {request.url.path} takes: {problems}") from None


def json_response(
    document: Any, status: int = 200, *, default: Callable[[Any], Any] | None = None
) -> Response:
    return Response(
        orjson.dumps(document, default=default), status_code=status, media_type="application/json"
    )


# labeling (loopwise.api.routes.labeling)


class NextRequest(BaseModel):
    have: list[Id] = Field(default_factory=list, max_length=10)


class SubmitRequest(BaseModel):
    label: Text = Field(min_length=1, max_length=100)


class CategoryIn(BaseModel):
    label: Text
    description: Text = ""


class JobRequest(BaseModel):
    name: Text
    team: Text
    categories: list[CategoryIn]
    title: Text | None = None
    short_instructions: Text = ""
    full_instructions: Text = ""
    workers_per_item: Count = 1
    task_time_limit_s: Seconds = 300
    lifetime_s: Seconds = int(DEFAULT_LIFETIME.total_seconds())
    blind: bool = True
    #: the manifest's lines ({"source": text, ...}), or a registered data set's split
    items: list[dict[str, Any]] | None = None
    dataset: Text | None = None
    split: Text = "train"
    #: automated labeling's settings (``loopwise.labeling.planning.AutoLabelSettings``), or none
    auto_label: dict[str, Any] | None = None


# human review (loopwise.api.routes.review)


class LoopInput(BaseModel):
    InputContent: Any


class StartRequest(BaseModel):
    HumanLoopName: Text
    FlowDefinitionName: Text
    HumanLoopInput: LoopInput


class FlowRequest(BaseModel):
    name: Text
    team: Text
    categories: list[CategoryIn]
    title: Text | None = None
    short_instructions: Text = ""
    full_instructions: Text = ""
    answer_key: Text = "label"
    task_count: Count = 1
    task_time_limit_s: Seconds = 300
    task_availability_lifetime_s: Seconds = DEFAULT_LIFETIME_S
    activation_conditions: Any = None
    webhook: Text | None = Field(default=None, max_length=2000)
    max_open_loops: int | None = None
    max_loops_per_hour: int | None = None
    max_loops_per_invocation: int = DEFAULT_PER_INVOCATION
