"""The ``loopwise server`` application: the composition root. :func:`create_app` builds the state the
routes read through :mod:`loopwise.api.deps` (the store, the data plane, the settings, the credentials
cache), includes the routers (:mod:`loopwise.api.routes`, :mod:`loopwise.web`) and adds the middleware;
the data plane and the background duties start and stop with the app. Each duty runs only while this
process holds its lease (:mod:`loopwise.storage.leases`), so on several servers over one database each
duty runs on one of them at a time, and every write of a pass is fenced by the lease's token.

Errors answer JSON ``{"error": {"type": ..., "message": ...}}`` with the status that says whose fault it
was: 400 bad input (malformed body, empty text, unknown target variant, a field out of range or holding a
NUL byte: :mod:`loopwise.api.fields`), 404 unknown endpoint, 413 body
too large, 415 content type, 500 the variant's model raised for this request, 503 the variant has no live
worker right now.
"""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from loopwise.api.auth import AuthMiddleware, Credentials, SignInLimiter
from loopwise.api.fields import EdgeGuard, http_error, request_invalid
from loopwise.api.headers import SecurityHeadersMiddleware
from loopwise.api.invocations import KNOWN_ERRORS, InvocationsMiddleware, error_body, problem
from loopwise.api.openapi import install as install_openapi
from loopwise.api.routes import ROUTERS
from loopwise.config import MAX_BODY_BYTES, ServerSettings
from loopwise.errors import LeaseLostError
from loopwise.serving.autoscaler import AUTOSCALER
from loopwise.serving.plane import ROLLOUT_GUARD, DataPlane
from loopwise.storage.leases import LeaseKeeper, run_fenced
from loopwise.web import ROUTERS as PAGES
from loopwise.web.console import static

if TYPE_CHECKING:
    from loopwise.storage import Store

__all__ = ["DUTIES", "MAX_BODY_BYTES", "ServerSettings", "background_server", "create_app"]

#: the background duties, each under a lease of its own (so several servers share them out)
MONITORING, AUTO_LABELING, SETTLING, WEBHOOKS, PIPELINE_TRIGGERS = (
    "monitoring-schedules",
    "automated-labeling",
    "settling-human-loops",
    "webhook-outbox",
    "pipeline-triggers",
)
DUTIES = (MONITORING, AUTO_LABELING, SETTLING, WEBHOOKS, PIPELINE_TRIGGERS, ROLLOUT_GUARD, AUTOSCALER)


def create_app(store: Store, settings: ServerSettings | None = None, **options: Any) -> FastAPI:
    """The server's app over ``store``, run as ``settings`` say (``options``: the fields of a
    :class:`~loopwise.config.ServerSettings` instead, for callers that change one or two). Every route
    but sign-in needs a signed-in account or an API token (:mod:`loopwise.api.auth`).

    With ``settings.forwarded_allow_ips``, serve the app with uvicorn's own ``proxy_headers`` off
    (``background_server`` and ``loopwise server`` do), or it trusts 127.0.0.1 behind this setting's back.
    """
    if settings is None:
        settings = ServerSettings(**options)
    elif options:
        raise TypeError("create_app takes settings or their fields as options, not both")
    app = FastAPI(title="loopwise", lifespan=_lifespan)
    state = app.state
    state.settings, state.store, state.max_body_bytes = settings, store, settings.max_body_bytes
    state.leases = LeaseKeeper(store, DUTIES)
    watch = {} if settings.watch_s is None else {"watch_s": settings.watch_s}
    state.plane = DataPlane(store, leases=state.leases, **watch)
    state.credentials = Credentials(store, ttl_s=settings.credentials_ttl_s)
    state.signin_limiter = SignInLimiter(store)
    for router in (*ROUTERS, *PAGES):
        app.include_router(router)
    app.mount("/static", static(), name="static")

    # innermost: the security headers of everything the app answers; the invocations fast path and the
    # refusals of the auth middleware answer ahead of it and add theirs themselves (loopwise.api.headers)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(InvocationsMiddleware)
    app.add_middleware(AuthMiddleware, credentials=state.credentials)
    app.add_middleware(EdgeGuard)  # runs before auth (only the proxy headers run before it)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(HTTPException, http_error)
    for known in KNOWN_ERRORS:
        app.add_exception_handler(known, _known_error)
    install_openapi(app)
    if settings.forwarded_allow_ips:  # added last: runs first, so the sign-in budget sees the client it names
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.forwarded_allow_ips))
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The duties' leases, the data plane and the background duties, for the app's lifetime; the
    leases are given up last, so another server takes the duties over at once."""
    from loopwise.labeling.service import warm

    state = app.state
    settings: ServerSettings = state.settings
    await asyncio.to_thread(warm, state.store)
    state.leases.start()
    await state.plane.start()
    if settings.freeze_heap:
        # what start-up made lives as long as the server process: moved out of the collector's
        # sight, a full collection no longer walks it (one took 100 ms and stalled every request in
        # flight). Only for a process that is the server (`loopwise server`), not one that hosts it.
        gc.collect()
        gc.freeze()
    background = _background(state.store, settings, state.leases)
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        await state.plane.close()
        await state.leases.close()


async def _known_error(request: Request, exc: Exception) -> Response:
    """A loopwise error as its JSON answer, counted against the endpoint it names when it is the
    caller's fault."""
    found = problem(exc)
    if found is None:
        raise exc  # the server's own error: a 500 with its traceback in the log
    status, kind, message = found
    plane: DataPlane = request.app.state.plane
    name = request.path_params.get("name")
    if status < 500 and name in plane.runtimes:
        plane.metrics.failed(name, None, status)
    return Response(error_body(kind, message), status_code=status, media_type="application/json")


async def _every(
    interval_s: float, step: Callable[[Store], object], store: Store, leases: LeaseKeeper, duty: str
) -> None:
    """``step(store)`` every ``interval_s`` seconds, off the event loop, while this process holds the
    duty's lease (each write of the pass fenced by it); a failing pass is logged and does not stop the
    next ones, and one that finds the lease taken over lets it go."""
    import logging

    while True:
        await asyncio.sleep(interval_s)
        fence = leases.fence(duty)
        if fence is None:
            continue
        try:
            await asyncio.to_thread(run_fenced, store, fence, step)
        except LeaseLostError:
            leases.lost(duty)
        except Exception:
            logging.getLogger(__name__).exception("duty %s failed", duty)


def _background(store: Store, settings: ServerSettings, leases: LeaseKeeper) -> list[asyncio.Task[None]]:
    """The server's periodic work, each a duty under its lease: monitoring schedules run as they become
    due; automated labeling's rounds as jobs become due; human loops settled (answered ones completed,
    late ones failed); the webhook outbox's due deliveries sent (alerts, loop events, pipeline runs: one
    duty, in a task of its own, so a webhook that does not answer holds nothing else back); pipelines
    whose triggers are due run; the autoscaler sets the autoscaled variants' instance counts from every
    server's load reports. (The rollout guard is the data plane's, under its lease too.)"""
    from loopwise.labeling.auto import run_due_rounds
    from loopwise.monitoring.scheduling import run_due as run_due_schedules
    from loopwise.pipelines.triggers import run_due
    from loopwise.review.service import settle
    from loopwise.serving.autoscaler import autoscale
    from loopwise.webhooks import deliver_due

    review_s = settings.review_interval_s
    steps: tuple[tuple[float, Callable[[Store], object], str], ...] = (
        (settings.monitor_interval_s, run_due_schedules, MONITORING),
        (settings.auto_label_interval_s, run_due_rounds, AUTO_LABELING),
        (review_s, settle, SETTLING),
        (review_s, deliver_due, WEBHOOKS),
        (settings.pipeline_interval_s, functools.partial(run_due, background=True), PIPELINE_TRIGGERS),
        (settings.autoscale_interval_s, autoscale, AUTOSCALER),
    )
    return [
        asyncio.create_task(_every(interval, step, store, leases, duty)) for interval, step, duty in steps
    ]


@contextmanager
def background_server(
    store: Store, settings: ServerSettings | None = None, **options: Any
) -> Iterator[tuple[str, FastAPI]]:
    """Serve ``create_app(store, settings, **options)`` on an ephemeral port of 127.0.0.1 from a thread
    of this process (the main job, tests); yields its base URL and the app, and stops it afterwards."""
    import threading
    import time

    import uvicorn

    app = create_app(store, settings, **options)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="loopwise-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the loopwise server did not start (see the log above)")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=60)
