"""``tracking.mlflow`` in a spec: where a tracking URI may point, checked like a data path."""

from __future__ import annotations

from typing import Any

import pytest

from search_spaces.spec import SpecError, validate_spec
from search_spaces.tracking import TrackingPolicy

DEFAULT = "databricks"  # any URI the administrator sets, scheme and all
POLICY = TrackingPolicy(default_uri=DEFAULT, hosts=("localhost", "127.0.0.1", "::1"))


def spec(tracking: Any) -> dict[str, Any]:
    return {
        "name": "tracked",
        "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3}},
        "tracking": tracking,
    }


@pytest.mark.parametrize(
    ("uri", "resolved"),
    [
        (None, DEFAULT),  # the server-wide default
        (DEFAULT, DEFAULT),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://LOCALHOST/mlflow", "https://LOCALHOST/mlflow"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_allowed_tracking_uris_resolve(uri: str | None, resolved: str) -> None:
    mlflow = {"experiment": "sms spam"} if uri is None else {"tracking_uri": uri}
    checked = validate_spec(spec({"mlflow": mlflow}), tracking=POLICY)
    assert checked.tracking.mlflow is not None
    assert checked.tracking.mlflow.tracking_uri == resolved


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://mlflow.example.com", "allowed host (HPO_TRACKING_HOSTS: localhost, 127.0.0.1"),
        ("file:///tmp/mlruns", "only the server's default tracking URI or http(s)"),
        ("sqlite:///mlflow.db", "only the server's default tracking URI or http(s)"),
        ("http://user:secret@127.0.0.1:5000", "set MLFLOW_TRACKING_TOKEN"),
        ("http://127.0.0.1:99999", "not a valid URI"),
    ],
)
def test_other_tracking_uris_are_refused_naming_the_field(uri: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(spec({"mlflow": {"tracking_uri": uri}}), tracking=POLICY)
    (problem,) = caught.value.problems
    assert problem.field == "tracking.mlflow.tracking_uri"
    assert reason in problem.reason
    assert "secret" not in str(caught.value)


def test_no_uri_and_no_server_default_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(spec({"mlflow": {}}), tracking=TrackingPolicy())
    assert caught.value.problems[0].field == "tracking.mlflow.tracking_uri"
    assert "HPO_MLFLOW_TRACKING_URI" in caught.value.problems[0].reason


def test_tracking_checked_offline_keeps_the_spec_as_written() -> None:
    checked = validate_spec(spec({"mlflow": {"tracking_uri": "http://mlflow.example.com"}}))
    assert checked.tracking.mlflow is not None
    assert checked.tracking.mlflow.tracking_uri == "http://mlflow.example.com"
    assert validate_spec(spec({})).tracking.mlflow is None


@pytest.mark.parametrize(
    ("tracking", "field"),
    [
        ({"wandb": {}}, "tracking.wandb"),
        ({"mlflow": {"token": "x"}}, "tracking.mlflow.token"),
        ({"mlflow": {"experiment": ""}}, "tracking.mlflow.experiment"),
    ],
)
def test_unknown_or_empty_tracking_fields_are_refused(tracking: Any, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(spec(tracking), tracking=POLICY)
    assert caught.value.problems[0].field == field
