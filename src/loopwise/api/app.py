"""The ``loopwise server`` application: the endpoints' data plane behind HTTP (more routers join later).

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
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from loopwise.api.auth import AuthMiddleware, Credentials
from loopwise.api.fields import EdgeGuard, http_error, refuse_nul, request_invalid
from loopwise.api.headers import SecurityHeadersMiddleware
from loopwise.api.invocations import (
    KNOWN_ERRORS,
    BadRequest,
    InvocationsMiddleware,
    error_body,
    problem,
    read_body,
)
from loopwise.api.invocations import router as invocations
from loopwise.api.labeling import mount_labeling
from loopwise.api.openapi import install as install_openapi
from loopwise.api.review import mount_review
from loopwise.api.workforce import router as workforce
from loopwise.experiments.bandit import posterior_mean
from loopwise.monitoring.scheduling import MonitorScheduler
from loopwise.serving.plane import DataPlane
from loopwise.web.account import mount_account
from loopwise.web.console import mount_console
from loopwise.web.labeling import mount_labeling_pages
from loopwise.web.overview import mount_overview

if TYPE_CHECKING:
    from loopwise.storage import Store

#: the largest request body accepted (SageMaker's real-time endpoints take 6 MB)
MAX_BODY_BYTES = 6 * 1024 * 1024


def create_app(
    store: Store,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    watch_s: float | None = None,
    monitor_interval_s: float = 5.0,
    credentials_ttl_s: float = 2.0,
    auto_label_interval_s: float = 2.0,
    review_interval_s: float = 1.0,
    pipeline_interval_s: float = 10.0,
    freeze_heap: bool = False,
    forwarded_allow_ips: Sequence[str] = (),
) -> FastAPI:
    """The server's app over ``store``; its data plane and monitoring scheduler start with the app and
    stop with it. ``freeze_heap``: the process is the server (see the lifespan). Every route but sign-in
    needs a signed-in account or an API token (:mod:`loopwise.api.auth`).

    ``forwarded_allow_ips``: the proxies (IPs, CIDRs; :func:`loopwise.config.parse_networks`) whose
    ``X-Forwarded-For`` and ``-Proto`` are believed: from one of them, the client is the right-most
    address of X-Forwarded-For that is not a proxy (uvicorn's ``ProxyHeadersMiddleware``); from anyone
    else, and by default, the socket's address. Serve the app with uvicorn's own ``proxy_headers`` off
    (``background_server`` and ``loopwise server`` do), or it trusts 127.0.0.1 behind this setting's back.
    """
    plane = DataPlane(store) if watch_s is None else DataPlane(store, watch_s=watch_s)
    scheduler = MonitorScheduler(store, interval_s=monitor_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from loopwise.labeling.service import warm

        await asyncio.to_thread(warm, store)
        await plane.start()
        if freeze_heap:
            # what start-up made lives as long as the server process: moved out of the collector's
            # sight, a full collection no longer walks it (one took 100 ms and stalled every request in
            # flight). Only for a process that is the server (`loopwise server`), not one that hosts it.
            gc.collect()
            gc.freeze()
        scheduler.start()
        background = _background(store, auto_label_interval_s, review_interval_s, pipeline_interval_s)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await scheduler.close()
            await plane.close()

    app = FastAPI(title="loopwise", lifespan=lifespan)
    app.state.plane = plane
    app.state.store = store
    app.state.max_body_bytes = max_body_bytes
    app.include_router(invocations)
    app.include_router(workforce)

    # innermost: the security headers of everything the app answers; the invocations fast path and the
    # refusals of the auth middleware answer ahead of it and add theirs themselves (loopwise.api.headers)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(InvocationsMiddleware)
    credentials = Credentials(store, ttl_s=credentials_ttl_s)
    app.state.credentials = credentials
    app.add_middleware(AuthMiddleware, credentials=credentials)
    app.add_middleware(EdgeGuard)  # runs before auth (only the proxy headers run before it)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(HTTPException, http_error)
    install_openapi(app)
    if forwarded_allow_ips:  # added last: runs first, so the sign-in budget sees the client it names
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(forwarded_allow_ips))

    async def known_error(request: Request, exc: Exception) -> Response:
        found = problem(exc)
        if found is None:
            raise exc  # the server's own error: a 500 with its traceback in the log
        status, kind, message = found
        name = request.path_params.get("name")
        if status < 500 and name in plane.runtimes:
            plane.metrics.failed(name, None, status)
        return Response(error_body(kind, message), status_code=status, media_type="application/json")

    for known in KNOWN_ERRORS:
        app.add_exception_handler(known, known_error)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """The data plane's metrics in Prometheus' text format."""
        return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/endpoints")
    async def endpoints() -> Response:
        """Every endpoint with its status and the configuration in force."""
        from loopwise.serving.service import list_endpoints

        found = await asyncio.to_thread(list_endpoints, store)
        return Response(orjson.dumps([e.to_dict() for e in found]), media_type="application/json")

    @app.get("/api/v1/endpoints/{name}")
    async def endpoint(name: str) -> Response:
        """The endpoint, its configuration history, and each variant's live instances on this server."""
        from loopwise.serving.service import describe_endpoint

        found, history = await asyncio.to_thread(describe_endpoint, store, name)
        live = plane.live_instances(name)
        document = {**found.to_dict(), "live_instances": live, "history": [h.to_dict() for h in history]}
        return Response(orjson.dumps(document), media_type="application/json")

    @app.get("/api/v1/endpoints/{name}/metrics")
    async def endpoint_metrics(name: str, period: int = 60, window: int = 3600) -> Response:
        """Per-variant figures by period (SageMaker's names) over the last ``window`` seconds."""
        plane.runtime(name)  # 404 unless it is in service
        if not 1 <= period <= window <= 3600:
            raise BadRequest("period and window are seconds with 1 <= period <= window <= 3600")
        rows = plane.metrics.table(name, period_s=period, window_s=window)
        return Response(
            orjson.dumps({"endpoint": name, "period_s": period, "rows": rows}), media_type="application/json"
        )

    @app.post("/api/v1/endpoints/{name}/feedback")
    async def feedback(name: str, request: Request) -> Response:
        """Ground truth (``label`` or ``labels``) or ``reward`` for inference ids: a JSON list of items, one
        item, or ``{"items": [...], "allow_unknown": true}``. Ids the endpoint does not know and labels
        its models do not have are refused (400, naming them) unless ``allow_unknown``
        (:mod:`loopwise.serving.known`)."""
        from loopwise.serving.feedback import parse_feedback
        from loopwise.serving.service import record_feedback

        body = await read_body(request)
        refuse_nul(body)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        items, allow_unknown = _feedback_body(document)
        parsed = parse_feedback(items, source="the feedback")
        record = functools.partial(
            record_feedback,
            store,
            name,
            parsed,
            allow_unknown=allow_unknown,
            known=plane.known,
            unanswered=plane.known.answered.unanswered(name, [item.inference_id for item in parsed]),
        )
        new = await asyncio.to_thread(record)
        rewarded = await plane.reward(name, parsed)
        counts = {"recorded": len(parsed), "new": new, "rewarded": rewarded}
        return Response(orjson.dumps(counts), media_type="application/json")

    @app.get("/api/v1/endpoints/{name}/shadow")
    async def shadow_report(name: str) -> Response:
        """Each shadow variant against production since the server started: agreement and flip matrix."""
        plane.runtime(name)  # 404 unless it is in service
        return Response(
            orjson.dumps({"endpoint": name, "shadows": plane.shadow_report(name)}),
            media_type="application/json",
        )

    @app.get("/api/v1/endpoints/{name}/bandit")
    async def bandit(name: str) -> Response:
        """A bandit endpoint's evidence per variant and each variant's posterior mean reward."""
        runtime = plane.runtime(name)
        arms = {
            v: {"rewards": r, "pulls": n, "posterior_mean": posterior_mean(r, n)}
            for v, (r, n) in sorted(runtime.arms.items())
        }
        body = {"endpoint": name, "routing": runtime.routing.config.routing, "arms": arms}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/api/v1/endpoints/{name}/scaling")
    async def scaling_events(name: str) -> Response:
        """The autoscaler's decisions for the endpoint (newest last) and each variant's instances now."""
        runtime = plane.runtime(name)
        events = [e.__dict__ for e in plane.autoscaler.events if e.endpoint == name]
        instances = {v: {"target": p.target, "live": len(p.live)} for v, p in runtime.pools.items()}
        return Response(
            orjson.dumps({"events": events, "instances": instances}), media_type="application/json"
        )

    @app.get("/api/v1/alerts")
    async def alerts(endpoint: str | None = None, status: str | None = None, limit: int = 100) -> Response:
        """Monitoring's alerts, newest first."""

        def read() -> list[Any]:
            with store.uow() as uow:
                return uow.monitoring.alerts(endpoint=endpoint, status=status, limit=max(1, min(limit, 1000)))

        found = await asyncio.to_thread(read)  # off the event loop the data plane shares
        return Response(orjson.dumps([a.to_dict() for a in found]), media_type="application/json")

    @app.get("/api/v1/monitoring/schedules")
    async def schedules() -> Response:
        def read() -> list[Any]:
            with store.uow() as uow:
                return uow.monitoring.schedules()

        found = await asyncio.to_thread(read)
        return Response(orjson.dumps([s.to_dict() for s in found]), media_type="application/json")

    mount_account(app, store, credentials)
    mount_labeling(app, store)
    mount_review(app, store)
    mount_console(app, store)
    mount_overview(app, store)
    mount_labeling_pages(app, store)

    @app.get("/healthz")
    async def health() -> dict[str, object]:
        """Liveness for load balancers, open to all: says nothing but that the server answers."""
        return {"status": "ok"}

    return app


def _feedback_body(document: Any) -> tuple[list[Any], bool]:
    """The items of a feedback body and whether unknown ids and labels are deliberate."""
    if isinstance(document, dict) and "items" in document:
        extra = sorted(set(document) - {"items", "allow_unknown"})
        if extra:
            raise BadRequest(f"{', '.join(extra)}: not a field of a feedback body (items, allow_unknown)")
        allow_unknown = document.get("allow_unknown", False)
        if not isinstance(allow_unknown, bool):
            raise BadRequest("allow_unknown: true or false")
        document = document["items"]
        if not isinstance(document, list):
            raise BadRequest('items: a list of {"inference_id": ..., "label": ...}')
        return document, allow_unknown
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise BadRequest('send a list of {"inference_id": ..., "label": ...}')
    return document, False


async def _every(interval_s: float, step: Callable[[Store], object], store: Store, what: str) -> None:
    """``step(store)`` every ``interval_s`` seconds, off the event loop; a failing pass is logged and
    does not stop the next ones."""
    import logging

    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(step, store)
        except Exception:
            logging.getLogger(__name__).exception("%s failed", what)


def _background(
    store: Store, auto_label_s: float, review_s: float, pipeline_s: float
) -> list[asyncio.Task[None]]:
    """The server's periodic work: automated labeling's rounds as jobs become due; human loops settled
    (answered ones completed, late ones failed); the webhook outbox's due deliveries sent (alerts, loop
    events, pipeline runs: one duty, in a task of its own, so a webhook that does not answer holds
    nothing else back); pipelines whose triggers are due run."""
    from loopwise.labeling.auto import run_due_rounds
    from loopwise.pipelines.triggers import run_due
    from loopwise.review.service import settle
    from loopwise.webhooks import deliver_due

    steps = (
        (auto_label_s, run_due_rounds, "automated labeling"),
        (review_s, settle, "settling human loops"),
        (review_s, deliver_due, "sending webhook deliveries"),
        (pipeline_s, functools.partial(run_due, background=True), "pipeline triggers"),
    )
    return [asyncio.create_task(_every(interval, step, store, what)) for interval, step, what in steps]


@contextmanager
def background_server(store: Store, **options: Any) -> Iterator[tuple[str, FastAPI]]:
    """Serve ``create_app(store, **options)`` on an ephemeral port of 127.0.0.1 from a thread of this
    process (the main job, tests); yields its base URL and the app, and stops it afterwards."""
    import threading
    import time

    import uvicorn

    app = create_app(store, **options)
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
