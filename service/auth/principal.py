"""Who is asking: the tenant and role behind the request's API key."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from service.auth.keys import KeyStore

DEFAULT_TENANT = "default"
KEY_COOKIE = "hpo_api_key"


@dataclass(frozen=True)
class Principal:
    """A tenant's key, an admin key (sees every tenant), or nobody in particular when auth is
    off (then everything belongs to the ``default`` tenant and every caller is admin)."""

    tenant: str
    admin: bool
    key_id: str | None = None

    def sees(self, tenant: str) -> bool:
        """Whether this caller may see a study of ``tenant``."""
        return self.admin or tenant == self.tenant


NOBODY = Principal(DEFAULT_TENANT, admin=True)


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """Whether ``host`` binds to this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def presented_key(request: Request, allow_cookie: bool = False) -> str | None:
    """The key of ``Authorization: Bearer <key>``, or (``allow_cookie``: the dashboard, which a
    browser opens) the login cookie."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (request.cookies.get(KEY_COOKIE) or None) if allow_cookie else None


def authenticate(request: Request, allow_cookie: bool = False) -> Principal:
    """The caller; 401 without a live key when auth is on."""
    if not request.app.state.settings.auth_enabled:
        return NOBODY
    presented = presented_key(request, allow_cookie)
    if presented is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    keys: KeyStore = request.app.state.keys
    key = keys.verify(presented)
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    return Principal(key.tenant, key.admin, key.key_id)


async def caller(request: Request) -> Principal:
    """``authenticate`` as a dependency: on the event loop when auth is off (a worker-thread
    hop per request costs more than the check), in a worker thread when a key is looked up."""
    if not request.app.state.settings.auth_enabled:
        return NOBODY
    return await run_in_threadpool(authenticate, request)


def must_be_admin(principal: Principal) -> Principal:
    """``principal`` if it is an admin key (or auth is off); 403 for a tenant key."""
    if not principal.admin:
        raise HTTPException(403, "this needs an admin key")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """An admin key (or auth off); 403 for a tenant key."""
    return must_be_admin(principal)


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


PrincipalDep = Annotated[Principal, Depends(caller)]
AdminDep = Annotated[Principal, Depends(require_admin)]
