"""Signing in and out, and changing one's password: the pages every account has.

``POST /signin`` sets the session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) and sends the browser
on to where it was going, or to its start page; an account with a temporary password goes to
``/account/password`` first. Failed sign-ins are limited per (email, client address) pair (the service's
lock-out) and per client address (:class:`loopwise.api.auth.SignInLimiter`), both counted in the
database so that every server of one database counts the same failures; the client's address is the
socket's, or the one a configured proxy forwarded (``--forwarded-allow-ips``). Changing the password
ends every other session of the account; this one stays signed in.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from loopwise.api.auth import SESSION_COOKIE, digest
from loopwise.api.deps import CredentialsDep, LimiterDep, PrincipalDep, StoreDep, WorkerDep
from loopwise.api.fields import Text
from loopwise.errors import AccountError, AuthError
from loopwise.web.pages import templates
from loopwise.workforce import service
from loopwise.workforce.queries import has_admin

if TYPE_CHECKING:
    from loopwise.workforce.records import Worker


def start_page(worker: Worker) -> str:
    """Where an account lands after signing in."""
    if worker.role == "admin":
        return "/console/labeling"
    if worker.role == "service":
        return "/api/v1/me"
    return "/label"


def _local(target: str | None) -> str | None:
    """``target`` when it is a path of this server (never another site: no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


router = APIRouter(include_in_schema=False)


@router.get("/signin")
async def signin_page(request: Request, store: StoreDep, next: Text | None = None) -> Response:
    context = {"next": _local(next) or "", "no_admin": not await asyncio.to_thread(has_admin, store)}
    return templates.TemplateResponse(request, "signin.html", context)


@router.post("/signin")
async def signin(
    request: Request,
    store: StoreDep,
    limiter: LimiterDep,
    email: Annotated[Text, Form()] = "",
    password: Annotated[Text, Form()] = "",
    next: Annotated[Text, Form()] = "",
) -> Response:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return _signin_refused(request, email, next, "sign-in refused: the form came from another site", 403)
    client = request.client.host if request.client else "?"
    wait = await limiter.retry_after(client)
    if wait:
        message = f"too many failed sign-ins from this address: try again in {wait} s"
        return _signin_refused(request, email, next, message, 429, {"Retry-After": str(wait)})
    try:
        worker = await asyncio.to_thread(service.sign_in, store, email, password, address=client)
    except AuthError as exc:
        await limiter.failed(client)
        return _signin_refused(request, email, next, str(exc), 401)
    session = await asyncio.to_thread(service.start_session, store, worker)
    target = "/account/password" if worker.must_change_password else _local(next) or start_page(worker)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(service.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def signout(
    request: Request, store: StoreDep, me: PrincipalDep, credentials: CredentialsDep
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if me.via == "session" and token:
        await asyncio.to_thread(service.end_session, store, token)
        credentials.forget(key=digest(token))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account/password")
async def password_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "password.html", {"error": None})


@router.post("/account/password")
async def change(
    request: Request,
    store: StoreDep,
    me: PrincipalDep,
    credentials: CredentialsDep,
    current: Annotated[Text, Form()] = "",
    new: Annotated[Text, Form()] = "",
    confirm: Annotated[Text, Form()] = "",
) -> Response:
    error = None
    if new != confirm:
        error = "the two new passwords differ"
    else:
        try:
            await asyncio.to_thread(
                service.change_password,
                store,
                me.worker.email,
                current,
                new,
                address=request.client.host if request.client else "?",
                keep_session=me.digest if me.via == "session" else None,
            )
        except (AccountError, AuthError) as exc:
            error = str(exc)
    if error is not None:
        return templates.TemplateResponse(request, "password.html", {"error": error}, status_code=400)
    # the account's other sessions ended, and the cached account still says "must change"
    credentials.forget(worker_id=me.worker.id)
    return RedirectResponse(start_page(me.worker), status_code=303)


@router.get("/")
async def home(worker: WorkerDep) -> Response:
    return RedirectResponse(start_page(worker), status_code=303)


@router.get("/api/v1/me")
async def me(found: PrincipalDep) -> dict[str, object]:
    """The caller's account: email, name, role, teams, and how they signed in."""
    worker = found.worker
    return {
        "email": worker.email,
        "name": worker.name,
        "role": worker.role,
        "teams": list(worker.teams),
        "via": found.via,
        "must_change_password": worker.must_change_password,
    }


def _signin_refused(
    request: Request, email: str, next: str, message: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    context = {"next": _local(next) or "", "email": email, "error": message, "no_admin": False}
    return templates.TemplateResponse(request, "signin.html", context, status_code=status, headers=headers)
