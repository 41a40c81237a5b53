"""optuna-dashboard, served by the service under ``/dashboard`` on the service's own database.

optuna-dashboard's single-page app expects to own the root of its origin: its page lives at
``/dashboard`` (the React router's prefix is the constant "/dashboard"), while its page loads
``/static/bundle.js`` and its API client calls ``/api/...`` with an empty base URL (see
``optuna_dashboard/index.html`` and the ``ApiClient`` in ``public/bundle.js``). Mounted under
``/dashboard`` here, its pages map onto its own ``/dashboard`` route, ``/dashboard/static/`` and
``/dashboard/api/`` onto its ``/static/`` and ``/api/``, and the page is served with its script
under ``/dashboard/static/`` and a one-line shim (a same-origin script, allowed by the page's
Content-Security-Policy) that prefixes the app's ``/api/`` calls with ``/dashboard``.

The mount is read-only: optuna-dashboard's API can also create, rename and delete studies and
tell trials, which would change studies behind the service's back; those calls get a 405, and
the page does not offer them (``dashboard_page``: the buttons hidden, the reason shown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from service.auth.principal import authenticate
from service.client_numbers import MAX_ROW_ID, row_id
from service.observability.dashboard_page import PREFIX, SHIM, SHIM_PATH, rewrite_page

_OWN_PATHS = ("/api/", "/static/")
_API_PREFIX = PREFIX + "/api/"
_READ_METHODS = ("GET", "HEAD")
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")
_PAGE_VALIDATORS = ("content-length", "etag", "last-modified", "cache-control")
READ_ONLY = b"the dashboard is read-only here: change studies through the service's API"

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DashboardApp:
    """ASGI app for the ``/dashboard`` mount. ``storage`` is called on the first request: the
    Optuna storage is made in the service's lifespan, after the routes are built."""

    def __init__(self, storage: Callable[[], Any]) -> None:
        self._storage = storage
        self._asgi: Any = None  # a2wsgi's WSGIMiddleware (its typing is stricter than Starlette's)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = None
        if scope["type"] == "http":
            refused = _bad_number(Request(scope)) or await run_in_threadpool(
                _refusal, Request(scope)
            )
        if refused is not None:
            await refused(scope, receive, send)
            return
        if self._asgi is None:
            import optuna_dashboard

            wsgi: Any = _PrefixedDashboard(optuna_dashboard.wsgi(self._storage()))
            self._asgi = WSGIMiddleware(wsgi, workers=4)
        await self._asgi(scope, receive, send)


def _bad_number(request: Request) -> Response | None:
    """A 400 for a number optuna-dashboard would convert unchecked: an id in the path or
    ``?after=`` that is not ASCII digits within an INTEGER column's range (its ``int()`` raised,
    or SQL overflowed: a 500)."""
    segments = [s for s in request.url.path.split("/") if s.lstrip("-").isdigit()]
    numbers = [("path", s) for s in segments]
    numbers += [(f"query.{k}", v) for k, v in request.query_params.multi_items() if k == "after"]
    for field, text in numbers:
        if row_id(text) is None:
            reason = f"{field}: {text[:40]!r} is not an id (ASCII digits, at most {MAX_ROW_ID})"
            return JSONResponse({"detail": reason}, 400)
    return None


def _refusal(request: Request) -> Response | None:
    """With auth on, the dashboard (every study of every tenant) needs an admin key, as a Bearer
    header or the cookie of ``/dashboard/login``; browsers without one are sent to the form."""
    try:
        principal = authenticate(request, allow_cookie=True)
    except HTTPException as exc:
        if request.method == "GET" and not request.url.path.startswith(_API_PREFIX):
            return RedirectResponse(PREFIX + "/login", status_code=303)
        return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
    if not principal.admin:
        return JSONResponse({"detail": "not found"}, 404)
    return None


class _PrefixedDashboard:
    """WSGI wrapper: maps the mount's paths onto optuna-dashboard's and rewrites its page."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        environ["wsgi.errors"] = _ERRORS  # Bottle writes tracebacks there: into the log instead
        path = environ.get("PATH_INFO", "") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in _READ_METHODS:
            start_response(
                "405 Method Not Allowed",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(READ_ONLY))),
                    ("Allow", ", ".join(_READ_METHODS)),
                ],
            )
            return [READ_ONLY]
        if path == SHIM_PATH:
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/javascript; charset=utf-8"),
                    ("Content-Length", str(len(SHIM))),
                    ("Cache-Control", "no-cache"),
                ],
            )
            return [SHIM]
        if path.startswith(_OWN_PATHS):
            return self._app(environ, start_response)
        # Every other path is a page of the app: its own /dashboard/... route. The page is
        # rewritten, so optuna-dashboard's validators (of its index.html) do not describe it:
        # no conditional requests, no validators, and browsers revalidate it every time.
        environ = {
            **{k: v for k, v in environ.items() if k not in _CONDITIONAL},
            "SCRIPT_NAME": "",
            "PATH_INFO": PREFIX + path.rstrip("/"),
        }
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda _data: None

        chunks = self._app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        status, headers = captured["status"], captured["headers"]
        content_type = dict((k.lower(), v) for k, v in headers).get("content-type", "")
        if status.startswith("200") and content_type.startswith("text/html"):
            body = rewrite_page(body)
            headers = [(k, v) for k, v in headers if k.lower() not in _PAGE_VALIDATORS]
            headers += [("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
        start_response(status, headers)
        return [body]


class _LogStream:
    """A ``wsgi.errors`` stream that writes to the log (one line per write)."""

    def write(self, text: str) -> None:
        if text.strip():
            log.error("optuna-dashboard: %s", text.rstrip())

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        return None


_ERRORS = _LogStream()
