"""Property-based tests of the whole API from its OpenAPI schema (schemathesis), in-process with
the stand-in dispatcher: no request may get a 5xx, and every response must match its schema.
Queries, headers and bodies are mixed with hostile shapes (huge and non-ASCII numbers, forged
cursors, astronomically large specs) that the schema alone would rarely produce.

``make test`` runs a few cases per operation; ``make fuzz`` (``HPO_FUZZ_EXAMPLES``) many more.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import Settings
from tests.security.hostile_shapes import hostile_body, hostile_headers, hostile_query
from tests.service.test_api import IN_PROCESS_HOSTS, RecordingDispatcher

EXAMPLES = int(os.environ.get("HPO_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

_ROOT = Path(tempfile.mkdtemp(prefix="hpo-fuzz-"))
APP = create_app(
    Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{_ROOT / 'fuzz.db'}",
        state_dir=_ROOT / "state",
        poll_interval_s=0.2,
        data_roots=[_ROOT / "data"],
        model_roots=[_ROOT / "models"],
        max_body_bytes=64 * 1024,
    ),
    dispatcher=RecordingDispatcher(),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


# Mix in the hostile shapes the schema does not describe (tests/security/hostile_shapes.py).
@schema.hook
def flatmap_query(ctx: Any, query: Any) -> Any:
    return hostile_query(query)


@schema.hook
def flatmap_headers(ctx: Any, headers: Any) -> Any:
    return hostile_headers(headers)


@schema.hook
def flatmap_body(ctx: Any, body: Any) -> Any:
    return hostile_body(body)


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("HPO_FUZZ_RANDOM") is None,
)
def test_api_never_5xx_and_matches_its_schema(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=CHECKS)  # raises, naming the failed check
    assert response.status_code < 500, response.text
