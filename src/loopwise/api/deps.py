"""What routes need, as ``Annotated`` dependencies read from ``request.app.state`` (set once by
:func:`loopwise.app.create_app`): a route declares ``store: StoreDep`` or ``worker: WorkerDep`` and
never reaches into the app itself.

The dependencies are coroutines on purpose: FastAPI runs a plain function dependency in its thread
pool, which would cost every request a thread hop for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from loopwise.api.auth import Credentials, Principal, SignInLimiter, principal
from loopwise.config import ServerSettings
from loopwise.serving.plane import DataPlane
from loopwise.storage import Store
from loopwise.storage.leases import LeaseKeeper
from loopwise.workforce.records import Worker


async def _store(request: Request) -> Store:
    return request.app.state.store


async def _plane(request: Request) -> DataPlane:
    return request.app.state.plane


async def _settings(request: Request) -> ServerSettings:
    return request.app.state.settings


async def _leases(request: Request) -> LeaseKeeper:
    return request.app.state.leases


async def _credentials(request: Request) -> Credentials:
    return request.app.state.credentials


async def _limiter(request: Request) -> SignInLimiter:
    return request.app.state.signin_limiter


async def _principal(request: Request) -> Principal:
    return principal(request)


async def _worker(request: Request) -> Worker:
    return principal(request).worker


StoreDep = Annotated[Store, Depends(_store)]
PlaneDep = Annotated[DataPlane, Depends(_plane)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]
#: the server's duty leases (which background duties this process runs)
LeasesDep = Annotated[LeaseKeeper, Depends(_leases)]
CredentialsDep = Annotated[Credentials, Depends(_credentials)]
LimiterDep = Annotated[SignInLimiter, Depends(_limiter)]
#: the signed-in caller (the auth middleware let the request through, so there is one)
PrincipalDep = Annotated[Principal, Depends(_principal)]
#: the signed-in caller's account
WorkerDep = Annotated[Worker, Depends(_worker)]
