"""``/dashboard/login``: a browser cannot send a Bearer header, so the dashboard also accepts
the key from an HttpOnly, SameSite=Strict cookie that this form sets."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth.keys import KeyStore
from service.auth.principal import KEY_COOKIE
from service.request_guards import read_body

router = APIRouter(include_in_schema=False)

MAX_FORM_BYTES = 4096
_FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>hpo-service dashboard</title></head>
<body><form method="post" action="/dashboard/login">
<label>API key <input type="password" name="key" autocomplete="off" size="70"></label>
<button type="submit">Open the dashboard</button></form>{message}</body></html>
"""


@router.get("/dashboard/login")
def login_form() -> HTMLResponse:
    """The form that asks for an admin API key."""
    return HTMLResponse(_FORM.format(message=""))


@router.post("/dashboard/login")
async def login(request: Request) -> Response:
    """Check the key; on success set the cookie and go to the dashboard."""
    body = (await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace")
    presented = (parse_qs(body).get("key") or [""])[0].strip()
    keys: KeyStore = request.app.state.keys
    key = keys.verify(presented) if presented else None
    if key is None:
        message = "<p>That key is invalid or revoked.</p>"
        return HTMLResponse(_FORM.format(message=message), status_code=401)
    response = RedirectResponse("/dashboard/", status_code=303)
    response.set_cookie(
        KEY_COOKIE,
        presented,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/dashboard",
    )
    return response
