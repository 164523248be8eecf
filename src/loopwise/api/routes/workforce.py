"""The workforce API for admins: API tokens and password resets.

``GET /api/v1/workforce/tokens`` (``?email=``: one account's) lists tokens by id, account, name, when
made, last used (to the minute) and revoked, never a secret; ``DELETE /api/v1/workforce/tokens/{id}``
revokes one, which this server refuses at once (its credentials cache forgets it; other replicas within
the cache's few seconds). ``POST /api/v1/workforce/workers/{email}/password-reset`` gives the account a
temporary password (answered once) and ends its sessions. Every route needs ``manage`` (admins).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from loopwise.api.deps import CredentialsDep, StoreDep
from loopwise.api.fields import Id, Text
from loopwise.workforce import service

router = APIRouter(prefix="/api/v1/workforce", tags=["workforce"])


@router.get("/tokens")
async def list_tokens(store: StoreDep, email: Text | None = None) -> JSONResponse:
    """Every API token (of ``email``'s account when given), oldest first, revoked ones included."""
    found = await asyncio.to_thread(service.list_tokens, store, email)
    return JSONResponse([token.to_dict() for token in found])


@router.delete("/tokens/{token_id}")
async def revoke_token(token_id: Id, store: StoreDep, credentials: CredentialsDep) -> JSONResponse:
    """Revoke a token: 200 with it (``revoked_at`` set), 404 when there is none with that id; a token
    revoked already answers 200 with ``"already_revoked": true``."""
    revoked = await asyncio.to_thread(service.revoke_token, store, token_id=token_id)
    if revoked is None:
        (token,) = [t for t in await asyncio.to_thread(service.list_tokens, store) if t.id == token_id]
        return JSONResponse({**token.to_dict(), "already_revoked": True})
    credentials.forget(key=revoked.digest)
    return JSONResponse({**revoked.to_dict(), "already_revoked": False})


@router.post("/workers/{email}/password-reset")
async def reset_password(email: Text, store: StoreDep, credentials: CredentialsDep) -> JSONResponse:
    """A temporary password for the account (shown once; it must be changed at the next sign-in);
    every session of the account ends."""
    worker, temporary = await asyncio.to_thread(service.reset_password, store, email)
    credentials.forget(worker_id=worker.id)
    return JSONResponse({"email": worker.email, "temporary_password": temporary})
