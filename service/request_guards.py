"""Checks every HTTP request passes before any route sees it, in this order:

0. At most ``MAX_HEADERS`` headers of at most ``HPO_MAX_HEADER_BYTES`` in all (431).
1. ``Host`` is one the server answers to (``HPO_ALLOWED_HOSTS``; loopback names by default),
   else 400: a web page that rebinds its own DNS name to 127.0.0.1 reaches nothing.
2. A browser's ``Origin``, when sent, is the server's own or one of ``HPO_ALLOWED_ORIGINS``,
   else 403: a page on another site cannot create, cancel or delete studies, not even with a
   "simple" request that needs no CORS preflight.
3. A body is JSON or YAML (the login form: a form), else 415: no body type is guessed.
4. A body is at most ``HPO_MAX_BODY_BYTES`` (413, as declared or while read, on every route) and
   arrives within ``HPO_BODY_TIMEOUT_S`` of its headers (408).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
FORM_TYPES = ("application/x-www-form-urlencoded",)
FORM_PATHS = ("/dashboard/login",)  # the one route a browser posts a form to
MAX_HEADERS = 100


class RequestGuard:
    """Pure ASGI middleware applying the checks above."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: list[str],
        origins: list[str],
        max_body_bytes: int,
        body_timeout_s: float,
        max_header_bytes: int = 16 * 1024,
    ) -> None:
        self._app = app
        self._hosts = [host.lower() for host in hosts]
        self._origins = {origin.lower().rstrip("/") for origin in origins}
        self._max_body = max_body_bytes
        self._timeout_s = body_timeout_s
        self._max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = (
            self._header_refusal(scope["headers"])
            or self._host_refusal(headers)
            or self._origin_refusal(headers)
            or _type_refusal(headers, scope["path"])
            or self._size_refusal(headers)
        )
        if refusal is not None:
            status, detail = refusal
            await JSONResponse({"detail": detail}, status)(scope, receive, send)
            return
        await self._app(scope, self._limited(receive), send)

    def _header_refusal(self, raw: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        # uvicorn's h11 limit only bounds headers that arrive in several reads.
        size = sum(len(name) + len(value) + 4 for name, value in raw)
        if len(raw) > MAX_HEADERS or size > self._max_header_bytes:
            return 431, (
                f"request headers over the limit: at most {MAX_HEADERS} headers and "
                f"{self._max_header_bytes} bytes (HPO_MAX_HEADER_BYTES)"
            )
        return None

    def _host_refusal(self, headers: Headers) -> tuple[int, str] | None:
        host = _host_name(headers.get("host", ""))
        if any(_matches(host, allowed) for allowed in self._hosts):
            return None
        return 400, f"Host {host[:100]!r} is not served here (HPO_ALLOWED_HOSTS)"

    def _origin_refusal(self, headers: Headers) -> tuple[int, str] | None:
        origin = headers.get("origin")
        if origin is None or origin.lower().rstrip("/") in self._origins:
            return None
        if urlsplit(origin).netloc.lower() == headers.get("host", "").lower() != "":
            return None  # the server's own pages
        return 403, f"cross-origin request from {origin[:100]!r} refused (HPO_ALLOWED_ORIGINS)"

    def _size_refusal(self, headers: Headers) -> tuple[int, str] | None:
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_body:
            return 413, f"request body larger than {self._max_body} bytes"
        return None

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a body at the size limit and at the read deadline."""
        deadline = time.monotonic() + self._timeout_s
        size = 0
        complete = False

        async def limited() -> Message:
            nonlocal size, complete
            if complete:  # the body is in: only a disconnect can come, whenever it does
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise HTTPException(
                    408, f"request body not received within {self._timeout_s:g} s"
                ) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if size > self._max_body:
                    raise HTTPException(413, f"request body larger than {self._max_body} bytes")
            else:
                complete = True
            return message

        return limited


def has_body(headers: Headers) -> bool:
    """Whether a request carries a body (declared, or chunked)."""
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


def media_type(headers: Headers) -> str:
    """The request's media type, without parameters, in lower case ("" if none)."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _type_refusal(headers: Headers, path: str) -> tuple[int, str] | None:
    if not has_body(headers):
        return None
    kind = media_type(headers)
    if path in FORM_PATHS:
        if kind in FORM_TYPES:
            return None
        return 415, f"Content-Type must be {FORM_TYPES[0]}, not {kind[:100] or 'missing'}"
    if kind in JSON_TYPES + YAML_TYPES:
        return None
    return (
        415,
        f"Content-Type must be application/json or application/yaml, not {kind[:100] or 'missing'}",
    )


def _host_name(header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" → "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _matches(host: str, allowed: str) -> bool:
    if allowed == "*":
        return True
    if allowed.startswith("*."):
        return host.endswith(allowed[1:])
    return host == allowed


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 as soon as it is longer than ``limit`` bytes (checked while
    reading: a Content-Length header may be absent (chunked) or wrong)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
