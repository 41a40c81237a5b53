"""A small typed Python client of the REST API (the CLI is its first user)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from service.schemas import StudiesPublic, StudyPublic, TrialPublic, TrialsPublic

FINAL_STATUSES = ("SUCCEEDED", "FAILED", "CANCELLED")


class ApiError(RuntimeError):
    """The server answered with an error; ``str()`` is one readable line."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(_one_line(status_code, detail))
        self.status_code = status_code
        self.detail = detail


class Client:
    """Talks to one hpo-service server."""

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)

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

    def study(self, study_id: str) -> StudyPublic:
        """One study."""
        return StudyPublic.model_validate(_json(self._http.get(f"/studies/{study_id}")))

    def studies(self, status: str | None = None, limit: int = 50) -> StudiesPublic:
        """Studies, newest first."""
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return StudiesPublic.model_validate(_json(self._http.get("/studies", params=params)))

    def trials(self, study_id: str, **params: Any) -> TrialsPublic:
        """Trials of a study (state, sort, order, limit, offset)."""
        found = self._http.get(f"/studies/{study_id}/trials", params=params)
        return TrialsPublic.model_validate(_json(found))

    def best(self, study_id: str) -> TrialPublic:
        """The best completed trial."""
        return TrialPublic.model_validate(_json(self._http.get(f"/studies/{study_id}/best")))

    def health(self) -> dict[str, Any]:
        """The health document (raises on 5xx)."""
        return dict(_json(self._http.get("/healthz")))

    def wait(self, study_id: str, timeout_s: float = 3600, poll_s: float = 2.0) -> StudyPublic:
        """Poll until the study reaches a final status."""
        deadline = time.monotonic() + timeout_s
        while True:
            study = self.study(study_id)
            if study.status in FINAL_STATUSES:
                return study
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still {study.status} after {timeout_s} s")
            time.sleep(poll_s)


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(response.status_code, detail)
    return response.json()


def _one_line(status_code: int, detail: Any) -> str:
    if isinstance(detail, list):
        parts = [f"{d.get('field') or 'spec'}: {d.get('reason')}" for d in detail]
        return f"HTTP {status_code}: " + "; ".join(parts)
    return f"HTTP {status_code}: {detail}"
