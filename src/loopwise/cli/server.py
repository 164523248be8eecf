"""``loopwise server``: the HTTP server (endpoint invocations, the REST API, the web console)."""

from __future__ import annotations

from typing import Annotated

import typer


def server(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8080,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level (info, warning, error).")] = "warning",
) -> None:
    """Serve every InService endpoint at POST /endpoints/NAME/invocations (SageMaker Runtime's contract)
    and POST /api/v1/endpoints/NAME/predict, the REST API under /api/v1, the web console at /console and
    the labeling pages at /label; endpoints created, re-weighted or deleted meanwhile are picked up within
    a second. Every route but /signin needs a signed-in account or an API token."""
    import os

    import uvicorn

    from loopwise.api.app import create_app

    # what the server and its workers write (reports, labeling outputs, journals) is the owner's only,
    # like the database and the artifacts the store makes private itself (docs/security.md)
    os.umask(0o077)
    from loopwise.cli._common import console, open_store

    with open_store() as store:
        console.print(
            f"loopwise server on http://{host}:{port} (sign in at http://{host}:{port}/signin)",
            highlight=False,
        )
        with store.uow() as uow:
            if not uow.workforce.count_admins():
                console.print(
                    "[yellow]no admin account yet: create the first with "
                    "`loopwise workforce admin you@example.com`[/yellow]"
                )
        uvicorn.run(
            create_app(store, freeze_heap=True),
            host=host,
            port=port,
            log_level=log_level,
            loop="auto",
            http="auto",
        )
