"""Every number a client sends as text is range- and format-checked before SQL, ``int()`` or
optuna-dashboard sees it: beyond 64 bits, 400 digits, non-ASCII digits, NaN and words are 4xx
naming the parameter, never a 500 (or a 200 that then drops the connection)."""

from __future__ import annotations

import httpx
import pytest

from tests.security.hostile_shapes import forged_cursor

TRIAL_QUERIES = [
    ({"cursor": forged_cursor("number", False, None, 2**70)}, "query.cursor"),
    ({"cursor": forged_cursor("value", False, 10**400, 1)}, "query.cursor"),
    ({"cursor": forged_cursor("number", True, None, True)}, "query.cursor"),
    ({"param": "learning_rate:1" + "0" * 400}, "query.param"),
    ({"param": "learning_rate:1e-5:1" + "0" * 400}, "query.param"),
    ({"param": "learning_rate:٣:"}, "query.param"),  # an Arabic-Indic 3: float() takes it
    ({"param": "learning_rate:²"}, "query.param"),
    ({"value_min": "nan"}, "query.value_min"),
    ({"value_max": "1e400"}, "query.value_max"),
    ({"limit": "٣"}, "query.limit"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("query", "field"), TRIAL_QUERIES)
def test_trial_queries_with_hostile_numbers_are_422(
    api: httpx.Client, cancelled_study: str, query: dict[str, str], field: str
) -> None:
    response = api.get(f"/studies/{cancelled_study}/trials", params=query)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == field


@pytest.mark.integration
def test_event_ids_are_checked_before_the_stream_starts(
    api: httpx.Client, cancelled_study: str
) -> None:
    url = f"/studies/{cancelled_study}/events"
    for header in ("²".encode(), "²".encode("latin-1"), "٣".encode(), b"1" * 23, b"-1", b"1e3"):
        response = api.get(url, headers={"Last-Event-ID": header})
        assert response.status_code == 400, (header, response.text)
        assert "Last-Event-ID" in response.json()["detail"]
    response = api.get(url, params={"last_event_id": "1" * 23})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "query.last_event_id"
    whole = api.get(url, headers={"Last-Event-ID": "0"})  # the stream ends: study cancelled
    assert whole.status_code == 200 and "CANCELLED" in whole.text


@pytest.mark.integration
@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/api/studies/1?after=abc",
        "/dashboard/api/studies/1?after=",
        "/dashboard/api/studies/1?after=99999999999999999999999",
        "/dashboard/api/studies/99999999999999999999999",
        "/dashboard/api/studies/٣",
        "/dashboard/api/studies/-1/param_importances",
    ],
)
def test_dashboard_numbers_are_400_before_optuna_dashboard(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 400, response.text
    assert "is not an id" in response.json()["detail"]


@pytest.mark.integration
def test_a_valid_dashboard_query_still_reaches_optuna_dashboard(api: httpx.Client) -> None:
    studies = api.get("/dashboard/api/studies").json()["study_summaries"]
    assert studies, "the shared server has studies"
    study_id = studies[0]["study_id"]
    assert api.get(f"/dashboard/api/studies/{study_id}?after=0").status_code == 200
