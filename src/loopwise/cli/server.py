"""``loopwise server``: the HTTP server (endpoint invocations, the REST API, the web console)."""

from __future__ import annotations

from typing import Annotated

import typer


def server(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8080,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level (info, warning, error).")] = "warning",
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="The proxies in front of the server (comma-separated IPs or CIDRs) whose "
            "X-Forwarded-For/-Proto are believed; none by default (env LOOPWISE_FORWARDED_ALLOW_IPS).",
        ),
    ] = None,
) -> None:
    """Serve every InService endpoint at POST /endpoints/NAME/invocations (SageMaker Runtime's contract)
    and POST /api/v1/endpoints/NAME/predict, the REST API under /api/v1, the web console at /console and
    the labeling pages at /label; endpoints created, re-weighted or deleted meanwhile are picked up within
    a second. Every route but /signin needs a signed-in account or an API token. Behind a reverse proxy,
    name it with --forwarded-allow-ips, or every client looks like the proxy's address. Several servers
    may share one PostgreSQL database (each background duty runs on one of them at a time); on SQLite a
    second server is refused."""
    import os

    import uvicorn

    from loopwise.app import create_app
    from loopwise.cli._common import console, open_store, settings
    from loopwise.config import ServerSettings
    from loopwise.storage.locks import only_server
    from loopwise.workforce.queries import has_admin

    # what the server and its workers write (reports, labeling outputs, journals) is the owner's only,
    # like the database and the artifacts the store makes private itself (docs/security.md)
    os.umask(0o077)

    try:
        options = ServerSettings.from_settings(
            settings(), forwarded_allow_ips=forwarded_allow_ips, freeze_heap=True
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--forwarded-allow-ips") from None

    with open_store() as store, only_server(store.engine):  # one server on SQLite; replicas need PostgreSQL
        console.print(
            f"loopwise server on http://{host}:{port} (sign in at http://{host}:{port}/signin)",
            highlight=False,
        )
        if not has_admin(store):
            console.print(
                "[yellow]no admin account yet: create the first with "
                "`loopwise workforce admin you@example.com`[/yellow]"
            )
        uvicorn.run(
            create_app(store, options),
            host=host,
            port=port,
            log_level=log_level,
            proxy_headers=False,  # the app believes only the proxies it is told (ServerSettings)
            loop="auto",
            http="auto",
        )
