"""The API's routers, one module per capability; :func:`loopwise.app.create_app` includes
:data:`ROUTERS` (the web console's pages are routers of :mod:`loopwise.web`)."""

from __future__ import annotations

from loopwise.api.invocations import router as invocations
from loopwise.api.routes.endpoints import router as endpoints
from loopwise.api.routes.health import router as health
from loopwise.api.routes.labeling import router as labeling
from loopwise.api.routes.monitoring import router as monitoring
from loopwise.api.routes.review import router as review
from loopwise.api.routes.workforce import router as workforce

ROUTERS = (invocations, endpoints, monitoring, workforce, labeling, review, health)

__all__ = ["ROUTERS"]
