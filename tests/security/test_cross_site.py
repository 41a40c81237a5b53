"""Browsers and slow or bloated clients: Host allow-list (DNS rebinding), cross-origin refusal,
body types, the body limit on every route, header limits and the body read deadline."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.local_server import Server
from service.settings import Settings
from tests.service.test_api import SPEC, RecordingDispatcher


@pytest.mark.integration
def test_the_keyless_loopback_server_refuses_cross_site_requests(
    api: httpx.Client, cancelled_study: str
) -> None:
    body = json.dumps(SPEC)
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        headers = {"Content-Type": kind} if kind else {}
        response = api.post("/studies", content=body, headers=headers)
        assert response.status_code == 415, (kind, response.text)
        assert "application/json or application/yaml" in response.json()["detail"]
    rebound = api.get("/studies", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 400 and "HPO_ALLOWED_HOSTS" in rebound.json()["detail"]
    evil = {"Origin": "http://attacker.example"}
    cancel = api.post(f"/studies/{cancelled_study}/cancel", headers=evil)
    assert cancel.status_code == 403 and "cross-origin" in cancel.json()["detail"]
    assert api.delete(f"/studies/{cancelled_study}", headers=evil).status_code == 403
    assert api.get("/studies", headers={"Origin": "null"}).status_code == 403
    own = {"Origin": str(api.base_url).rstrip("/")}  # the server's own pages
    assert api.get(f"/studies/{cancelled_study}", headers=own).status_code == 200
    assert api.get("/healthz", headers={"Host": "localhost"}).status_code == 200


def test_configured_hosts_and_origins_are_served_with_cors(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "allowed_hosts": ["*.example.org"],
            "allowed_origins": ["https://app.example.org"],
        }
    )
    app = create_app(configured, dispatcher=RecordingDispatcher())
    with TestClient(app, base_url="http://hpo.example.org") as client:
        allowed = {"Origin": "https://app.example.org"}
        assert client.get("/studies", headers=allowed).headers["access-control-allow-origin"]
        preflight = client.options(
            "/studies",
            headers={**allowed, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        other = client.get("/studies", headers={"Origin": "https://evil.example.org"})
        assert other.status_code == 403
        assert client.get("/healthz", headers={"Host": "example.com"}).status_code == 400


@pytest.mark.integration
def test_every_route_limits_its_body_and_uvicorn_its_headers(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def body() -> object:
            for _ in range(40):  # 10 MiB if it were read to the end
                yield b"k" * 256 * 1024

        login = http.post("/dashboard/login", content=body(), headers=form)
        assert login.status_code == 413, login.text
        declared = http.post("/dashboard/login", content=b"key=x" * 2000, headers=form)
        assert declared.status_code == 413
        json_type = {"Content-Type": "application/json"}
        cancel = http.post("/studies/x/cancel", content=b"{}" * 600_000, headers=json_type)
        assert cancel.status_code == 413
        assert http.get("/healthz", headers={"X-Big": "a" * 200_000}).status_code in (400, 431)
        many = {f"X-H{i}": "v" for i in range(5000)}
        assert http.get("/healthz", headers=many).status_code == 431
        assert http.get("/healthz").status_code == 200


def test_a_body_that_stops_arriving_is_408_after_the_deadline(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"body_timeout_s": 0.3}), dispatcher=RecordingDispatcher()
    )
    sent: list[dict[str, object]] = []

    async def stalled() -> dict[str, object]:  # headers came, the body never does
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/studies",
        "raw_path": b"/studies",
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"content-length", b"100")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
    }
    with TestClient(app):  # runs the lifespan
        asyncio.run(asyncio.wait_for(app(scope, stalled, send), 10))  # type: ignore[arg-type]
    assert sent[0]["status"] == 408
    assert b"not received within 0.3 s" in b"".join(m.get("body", b"") for m in sent)  # type: ignore[misc]
