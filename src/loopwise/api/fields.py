"""Every input checked at the edge: the shared field types the routes declare, and the guards for what
no type reaches.

* :data:`Id` (1 to 2**31 - 1: the tables' ids are ``Integer``, 32 bits on PostgreSQL), :data:`Seconds`
  (0 to 100 years), :data:`Count` (0 to 2**31 - 1) bound numbers before they reach a column or a
  ``timedelta``; the services check the real ranges with their own messages.
* :data:`Text` refuses the NUL byte, which PostgreSQL cannot store; :data:`Moment` takes a time with its
  zone from 1970 to 9000, in UTC.
* :class:`EdgeGuard` refuses a NUL in any request's path or query (one substring test each), and
  :func:`refuse_nul` any JSON body holding one, naming the field: the bodies' models need not list
  every string (manifests, loop input and settings are free-form).
* :func:`request_invalid` answers FastAPI's validation errors with 400 and the fields by name;
  :func:`database_refused` is the last resort: a value the database refuses (out of range, NUL) that a
  check missed answers 400, never 500.

Refusals are logged with the field and the error type, never the value (a user's text stays out of the
server's log).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

import orjson
from annotated_types import Interval
from pydantic import AfterValidator

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

MAX_ID = 2**31 - 1
MAX_SECONDS = 100 * 365 * 24 * 3600
MAX_COUNT = 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
NUL_MESSAGE = "holds a NUL byte (\\u0000), which cannot be stored: remove it"


class BadRequest(Exception):
    """The request cannot be answered as sent (400, or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


def _moment(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give the time with its zone, such as 2026-12-06T10:00:00Z")
    bounds = f"a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(bounds) from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(bounds)
    return moment


#: a row's id: an ``Integer`` column (32 bits on PostgreSQL), never below 1
Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
#: a duration in whole seconds the services then check against their own limits
Seconds = Annotated[int, Interval(ge=0, le=MAX_SECONDS)]
#: a count (workers, tasks, results) the services then check against their own limits
Count = Annotated[int, Interval(ge=0, le=MAX_COUNT)]
#: text without the NUL byte
Text = Annotated[str, AfterValidator(_no_nul)]
#: a time with its zone, 1970 to 9000, converted to UTC
Moment = Annotated[datetime, AfterValidator(_moment)]


def parse_number(text: str, what: str, limit: int = MAX_ID) -> int:
    """``text`` as a number from 0 to ``limit`` (ASCII digits only); :class:`ValueError` naming ``what``
    otherwise (a reference's version, a page token)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(limit)) or int(text) > limit:
        raise ValueError(f"{what} must be a number from 0 to {limit}, got {text[:30]!r}")
    return int(text)


def nul_field(document: Any, where: str = "") -> str | None:
    """The dotted path (``items.0.source``) of the first string, key or value, in ``document`` that
    holds a NUL; None when none does."""
    if isinstance(document, str):
        return (where or "body") if "\x00" in document else None
    if isinstance(document, dict):
        for key, value in document.items():
            path = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                return where or "body"
            found = nul_field(value, path)
            if found is not None:
                return found
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found = nul_field(value, f"{where}.{index}" if where else str(index))
            if found is not None:
                return found
    return None


def refuse_nul(body: bytes) -> None:
    """Refuse a JSON body that holds a NUL in any string (:class:`BadRequest` naming the field). One
    substring test when there is none; a body that is not JSON is left for its parser to refuse."""
    if b"\\u0000" not in body and b"\x00" not in body:
        return
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        if b"\x00" in body:
            _refused("body")
        return
    found = nul_field(document)
    if found is not None:
        _refused(found)


def _refused(field: str) -> None:
    logger.info("refused a request: NUL byte in %s", field)
    raise BadRequest(f"{field}: {NUL_MESSAGE}")


class EdgeGuard:
    """Pure ASGI, first in line: a request whose path or query holds a NUL byte is answered 400 naming
    the part (the query's parameter by name), before any route or lookup sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = None
            if "\x00" in scope["path"]:
                field = "the path"
            else:
                query: bytes = scope.get("query_string", b"")
                if b"%00" in query or b"\x00" in query:
                    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                    names = [key for key, value in pairs if "\x00" in key or "\x00" in value]
                    field = f"query.{names[0]}" if names else "the query"
            if field is not None:
                logger.info("refused a request: NUL byte in %s", field)
                body = orjson.dumps(
                    {"error": {"type": "ValidationError", "message": f"{field}: {NUL_MESSAGE}"}}
                )
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 400, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def describe_errors(errors: Any) -> str:
    """pydantic's errors as ``field: problem; ...`` (never the input's value)."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


async def request_invalid(request: Request, exc: Exception) -> Any:
    """FastAPI's :class:`RequestValidationError` answered 400 with every field and what is wrong."""
    from fastapi.responses import Response

    errors: RequestValidationError = exc  # type: ignore[assignment]
    message = describe_errors(errors.errors())
    logger.info("refused a request to %s: %s", request.url.path, _fields(errors.errors()))
    body = orjson.dumps({"error": {"type": "ValidationError", "message": message}})
    return Response(body, status_code=400, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Any:
    """Starlette's own refusals (an unknown path, a method the route lacks) in the server's error shape."""
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    error: HTTPException = exc  # type: ignore[assignment]
    body = orjson.dumps({"error": {"type": "HTTPError", "message": str(error.detail)}})
    return Response(body, status_code=error.status_code, media_type="application/json", headers=error.headers)


def _fields(errors: Any) -> str:
    return ", ".join(".".join(str(part) for part in error["loc"]) for error in errors)


def database_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the database refusing a value: out of a column's range,
    a NUL byte, a number too large for the driver. Those are the request's fault: 400."""
    from sqlalchemy.exc import DataError as SQLDataError
    from sqlalchemy.exc import StatementError

    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, OverflowError | SQLDataError):
            return True
        if isinstance(seen, StatementError) and isinstance(seen.orig, OverflowError):
            return True
        if _driver_data_error(seen):
            return True
        seen = seen.__cause__
    return False


def _driver_data_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL's driver is an extra
        return False
    return isinstance(exc, psycopg.DataError)
