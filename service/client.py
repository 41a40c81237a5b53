"""A typed Python client of the REST API; the ``hpo`` CLI is its first user.

from service.client import Client
with Client("http://127.0.0.1:8000") as hpo:
    study = hpo.submit(open("study.yaml").read())
    hpo.wait(study.id)
    print(hpo.best(study.id).params)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from service.schemas import StudiesPublic, StudyPublic, TrialPublic, TrialsPublic, WhatIfPublic
from service.statuses import FINAL_STATES

FINAL_STATUSES = FINAL_STATES
DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(RuntimeError):
    """The server answered with an error; ``str()`` is one readable line."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(_one_line(status_code, detail))
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class Event:
    """One server-sent event of a study's stream."""

    id: int
    kind: str
    data: dict[str, Any]


class Client:
    """Talks to one hpo-service server; every method raises ``ApiError`` on a 4xx/5xx."""

    def __init__(
        self, url: str = DEFAULT_URL, api_key: str | None = None, timeout_s: float = 30.0
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def submit(self, spec_text: str, *, yaml_syntax: bool = True) -> StudyPublic:
        """Submit a study spec (YAML or JSON text)."""
        content_type = "application/yaml" if yaml_syntax else "application/json"
        response = self._http.post(
            "/studies", content=spec_text.encode(), headers={"Content-Type": content_type}
        )
        return StudyPublic.model_validate(_json(response))

    def validate(self, spec_text: str, *, yaml_syntax: bool = True) -> dict[str, Any]:
        """The server's verdict on a spec (``POST /studies/validate``; nothing is stored)."""
        content_type = "application/yaml" if yaml_syntax else "application/json"
        response = self._http.post(
            "/studies/validate", content=spec_text.encode(), headers={"Content-Type": content_type}
        )
        verdict: dict[str, Any] = _json(response)
        return verdict

    def study(self, study_id: str) -> StudyPublic:
        """One study, with its status history."""
        return StudyPublic.model_validate(_json(self._http.get(f"/studies/{study_id}")))

    def studies(self, status: str | None = None, limit: int = 50, offset: int = 0) -> StudiesPublic:
        """Studies, newest first."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return StudiesPublic.model_validate(_json(self._http.get("/studies", params=params)))

    def trials(self, study_id: str, **params: Any) -> TrialsPublic:
        """One page of trials: state, value_min, value_max, param, sort, order, limit, offset,
        cursor (see ``GET /studies/{id}/trials``)."""
        query = {k: v for k, v in params.items() if v is not None}
        found = self._http.get(f"/studies/{study_id}/trials", params=query)
        return TrialsPublic.model_validate(_json(found))

    def all_trials(self, study_id: str, **params: Any) -> list[TrialPublic]:
        """Every trial that matches, following ``next_cursor`` page by page."""
        found: list[TrialPublic] = []
        cursor: str | None = None
        while True:
            page = self.trials(study_id, limit=1000, cursor=cursor, **params)
            found.extend(page.data)
            cursor = page.next_cursor
            if cursor is None:
                return found

    def best(self, study_id: str) -> TrialPublic | TrialsPublic:
        """The best completed trial (the Pareto front for several objectives)."""
        body = _json(self._http.get(f"/studies/{study_id}/best"))
        if "data" in body:
            return TrialsPublic.model_validate(body)
        return TrialPublic.model_validate(body)

    def pareto(self, study_id: str) -> TrialsPublic:
        """The Pareto-optimal completed trials."""
        return TrialsPublic.model_validate(_json(self._http.get(f"/studies/{study_id}/pareto")))

    def whatif(self, study_id: str, scheduler: dict[str, Any]) -> WhatIfPublic:
        """What ``scheduler`` (the spec's ``scheduler`` settings) would have done to a finished
        study: the trials it would stop, the compute saved, whether the best survives."""
        body = {"scheduler": scheduler}
        timeout = httpx.Timeout(30.0, read=180.0)  # the replay runs in a child process
        found = self._http.post(f"/studies/{study_id}/whatif", json=body, timeout=timeout)
        return WhatIfPublic.model_validate(_json(found))

    def cancel(self, study_id: str) -> StudyPublic:
        """Stop a queued or running study."""
        found = self._http.post(f"/studies/{study_id}/cancel")
        return StudyPublic.model_validate(_json(found))

    def delete(self, study_id: str) -> None:
        """Remove a finished study with its trials and events."""
        _json(self._http.delete(f"/studies/{study_id}"))

    def download_artifact(self, study_id: str, target: Any) -> None:
        """Write the best trial's model archive (tar.gz) to the binary file ``target``."""
        with self._http.stream("GET", f"/studies/{study_id}/best/artifact") as response:
            if response.status_code >= 400:
                response.read()
                _json(response)
            for chunk in response.iter_bytes():
                target.write(chunk)

    def events(self, study_id: str, last_event_id: int = 0) -> Iterator[Event]:
        """Follow the study's event stream until its final status event."""
        timeout = httpx.Timeout(30.0, read=None)
        params = {"last_event_id": last_event_id}
        url = f"/studies/{study_id}/events"
        with self._http.stream("GET", url, params=params, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                _json(response)
            yield from _parse_sse(response.iter_lines())

    def health(self) -> dict[str, Any]:
        """The health document."""
        return dict(_json(self._http.get("/healthz")))

    def wait(self, study_id: str, timeout_s: float = 3600, poll_s: float = 0.5) -> StudyPublic:
        """Poll until the study reaches a final status."""
        deadline = time.monotonic() + timeout_s
        while True:
            study = self.study(study_id)
            if study.status in FINAL_STATUSES:
                return study
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still {study.status} after {timeout_s} s")
            time.sleep(poll_s)


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    event_id, kind, data = 0, "message", ""
    for line in lines:
        if not line:
            if data:
                yield Event(event_id, kind, json.loads(data))
            event_id, kind, data = 0, "message", ""
        elif line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail", body) if isinstance(body, dict) else body
        except ValueError:
            detail = response.text or response.reason_phrase
        raise ApiError(response.status_code, detail)
    return response.json() if response.content else None


def _one_line(status_code: int, detail: Any) -> str:
    if isinstance(detail, list):
        parts = [
            f"{d.get('field') or 'spec'}: {d.get('reason')}" if isinstance(d, dict) else str(d)
            for d in detail
        ]
        return f"HTTP {status_code}: " + "; ".join(parts)
    return f"HTTP {status_code}: {detail}"
