"""The web console and the labeling and review UI: server-rendered Jinja2 pages with small plain
JavaScript, no build step. Pages read the same services as the REST API and the CLI; each module is a
router, and :data:`ROUTERS` are what :func:`loopwise.app.create_app` includes."""

from __future__ import annotations

from loopwise.web.account import router as account
from loopwise.web.console import router as console
from loopwise.web.labeling import router as labeling
from loopwise.web.overview import router as overview

ROUTERS = (account, console, overview, labeling)

__all__ = ["ROUTERS"]
