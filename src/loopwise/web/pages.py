"""The templates every page of the web UI is drawn from, with the signed-in account in their context
(``me``: a :class:`loopwise.api.auth.Principal`, or None on the sign-in page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from loopwise.api.auth import SCOPE_KEY

HERE = Path(__file__).parent


def _signed_in(request: Request) -> dict[str, Any]:
    return {"me": request.scope.get(SCOPE_KEY)}


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_signed_in])
templates.env.filters["percent"] = lambda share: f"{share:.0%}"
templates.env.filters["when"] = lambda moment: f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""
