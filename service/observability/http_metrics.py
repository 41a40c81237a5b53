"""Requests and latency per route, as a pure ASGI middleware.

``http_requests_total{handler,method,status}`` (status grouped: 2xx, 4xx, …) and
``http_request_duration_seconds{handler,method}``, the names prometheus-fastapi-instrumentator
uses. The handler is the route template the app's router matched (``/studies/{study_id}/best``),
read from the request scope after the app answered, so a request costs two metric updates and no
route matching of its own (the instrumentator matched every route again before each request:
about a third of the app's CPU for a cached ``/best``). A mount (``/dashboard``) is its path; a
path no route matched is ``none``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets (s): from a cached read (~1 ms) to a slow export.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The two HTTP metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, excluded: frozenset[str]) -> None:
        self.excluded = excluded
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency of requests by handler and method, to the end of the response.",
            ("method", "handler"),
            buckets=BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, method: str, handler: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (method, handler, f"{status // 100}xx")
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the updates: keep the children
            children = (
                self.requests.labels(method, key[2], handler),
                self.latency.labels(method, handler),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class HttpMetricsMiddleware:
    """Times every HTTP request and records it under the route the app matched."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = route_template(scope)
            if handler not in self.metrics.excluded:
                elapsed = time.perf_counter() - started
                self.metrics.observe(scope["method"], handler, status, elapsed)


def route_template(scope: Scope) -> str:
    """The template of the route the router matched; a mount's path; else ``none``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    # A mount adds its path to root_path and keeps the app's own in app_root_path.
    root = str(scope.get("root_path", ""))
    app_root = str(scope.get("app_root_path", root))
    if root != app_root and root.startswith(app_root):
        return root[len(app_root) :]
    return "none"
