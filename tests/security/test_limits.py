"""Hostile bodies and specs: size limits, YAML bombs, deep nesting, wrong types, odd Unicode,
oversized spaces and pages. Each is a 4xx naming the field or the reason, never a 5xx."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from search_spaces.loader import MAX_SPEC_BYTES, SpecSyntaxError, SpecTooLarge, parse_text
from search_spaces.spec import SpecError, validate_spec
from service.local_server import Server
from tests.service.test_api import SPEC

LIMIT = 64 * 1024  # max_body_bytes of the client fixture


def _post(client: TestClient, body: bytes, yaml_body: bool = False) -> httpx.Response:
    kind = "application/yaml" if yaml_body else "application/json"
    return client.post("/studies", content=body, headers={"Content-Type": kind})


def _padded(size: int) -> bytes:
    """A valid JSON spec of about ``size`` bytes (a long run of spaces)."""
    body = json.dumps(SPEC).encode()
    return body[:-1] + b" " * max(0, size - len(body)) + b"}"


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    response = _post(client, _padded(LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["detail"] == f"request body larger than {LIMIT} bytes"
    assert _post(client, _padded(LIMIT - 10)).status_code == 201


def test_a_chunked_body_without_content_length_is_cut_off_while_read(client: TestClient) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 8 MiB if it were all read
            sent.append(1)
            yield b" " * 8192

    response = client.post(
        "/studies", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "request body larger than" in response.json()["detail"]


@pytest.mark.parametrize("yaml_syntax", [True, False])
def test_nesting_far_past_the_recursion_limit_is_a_syntax_error(yaml_syntax: bool) -> None:
    depth = MAX_SPEC_BYTES // 2 - 10
    with pytest.raises(SpecSyntaxError, match="nesting deeper than 32 levels"):
        parse_text(b'{"a": ' + b"[" * depth + b"]" * depth + b"}", yaml_syntax=yaml_syntax)


def test_a_document_over_the_spec_limit_is_413() -> None:
    with pytest.raises(SpecTooLarge, match=f"larger than {MAX_SPEC_BYTES} bytes"):
        parse_text(b" " * (MAX_SPEC_BYTES + 1), yaml_syntax=True)


BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
).encode()


@pytest.mark.parametrize(
    ("body", "yaml_body", "needle"),
    [
        (BILLION_LAUGHS, True, "YAML aliases are not allowed"),
        (b"name: &n x\nalgorithm: *n\n", True, "YAML aliases are not allowed"),
        (b"a: " + b"[" * 50 + b"]" * 50, True, "nesting deeper than 32 levels"),
        (b"a: " + b"[" * 60_000, True, "nesting deeper than 32 levels"),
        (
            "".join(f"{'  ' * i}k{i}:\n" for i in range(40)).encode() + b"  " * 40 + b"x: 1\n",
            True,
            "nesting deeper than 32 levels",
        ),
        (b'{"a": ' + b"[" * 50 + b"]" * 50 + b"}", False, "nesting deeper than 32 levels"),
        (b'{"a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", False, "nesting deeper than 32"),
        (b"a: !!python/object/apply:os.system [id]", True, "YAML tags are not allowed"),
        (b"name: !!binary aGVsbG8=", True, "YAML tags are not allowed"),
        (b"name: a\nname: b\n", True, "duplicate key 'name'"),
        (b'{"name": "a", "budget": {"n_trials": 1, "n_trials": 9}}', False, "duplicate key"),
        (b'{"name": NaN}', False, "NaN is not allowed"),
        (b'{"budget": {"time_budget_s": Infinity}}', False, "Infinity is not allowed"),
        (b"task: {hyperparameters: {weight_decay: .nan}}", True, "numbers must be finite"),
        (b'{"name": "\\ud800"}', False, "not valid Unicode"),
        (b'{"budget": {"n_trials": 1' + b"0" * 5000 + b"}}", False, "malformed JSON"),
        (b"created: 2026-13-45", True, "malformed YAML"),
    ],
)
def test_hostile_documents_are_400(
    client: TestClient, body: bytes, yaml_body: bool, needle: str
) -> None:
    response = _post(client, body, yaml_body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]


WRONG_TYPES: dict[str, Any] = {
    "name": 123,
    "objective": "eval_accuracy",
    "objectives": {"metric": "eval_accuracy"},
    "constraints": {"metric": "eval_loss"},
    "scheduler": ["asha"],
    "algorithm": ["tpe"],
    "algorithm_settings": [1],
    "budget": 10,
    "resources_per_trial": "cpu",
    "max_failures": "many",
    "task": "toy",
    "search_space": ["learning_rate"],
    "points_to_evaluate": {"learning_rate": 1e-4},
    "warm_start": "abc",
    "tracking": ["mlflow"],
    "checkpoint": 1,
    "surprise": 1,
}


@pytest.mark.parametrize("field", sorted(WRONG_TYPES))
def test_a_wrong_type_in_each_top_level_field_is_422(client: TestClient, field: str) -> None:
    response = client.post("/studies", json={**SPEC, field: WRONG_TYPES[field]})
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"].split(".")[0] == field
    assert problem["reason"]


def test_every_top_level_field_has_a_wrong_type_case() -> None:
    from search_spaces.spec import StudySpec

    assert set(StudySpec.model_fields) <= set(WRONG_TYPES)


@pytest.mark.parametrize(
    "name", ["études 研究 🚀", "Ωmega-β", "a b", "x" * 100, "名前" * 50, "emoji 👩‍💻"[:6]]
)
def test_printable_unicode_names_are_accepted(client: TestClient, name: str) -> None:
    response = client.post("/studies", json={**SPEC, "name": name})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name
    assert client.get(f"/studies/{response.json()['id']}").json()["name"] == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "x" * 101,
        "tab\there",
        "new\nline",
        "nul\x00",
        "c1\x85control",
        "bidi\u202eoverride",
        "zero\u200bwidth",
        "line\u2028separator",
        "private\ue000use",
        "bom\ufeff",
    ],
)
def test_unprintable_names_are_422(client: TestClient, name: str) -> None:
    response = client.post("/studies", json={**SPEC, "name": name})
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"] == "name"
    assert "printable" in problem["reason"]


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    target = spec
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "field", "needle"),
    [
        (
            ("search_space",),
            {f"p{i}": {"type": "int", "low": 0, "high": 1} for i in range(65)},
            "search_space",
            "at most 64",
        ),
        (
            ("search_space", "seed"),
            {"type": "categorical", "choices": list(range(1001))},
            "search_space.seed.choices",
            "at most 1000",
        ),
        (("budget", "n_trials"), 100_001, "budget.n_trials", "less than or equal to 100000"),
        (("task", "max_seq_length"), 4097, "task.max_seq_length", "less than or equal to 4096"),
        (("task", "epochs"), 101, "task.epochs", "less than or equal to 100"),
        (("task", "max_train_samples"), 10**12, "task.max_train_samples", "less than or equal"),
        (("points_to_evaluate",), [{}] * 1001, "points_to_evaluate", "at most 1000"),
        (("constraints",), [{"metric": "eval_loss", "max": 1}] * 17, "constraints", "at most 16"),
        (("objectives",), [{"metric": "eval_loss"}] * 9, "objectives", "at most 8"),
        (("task", "model"), "m" * 5000, "task.model", "at most 4096"),
        (
            ("task", "dataset"),
            {"name": "synthetic-sentiment", "text_column": "c" * 300},
            "task.dataset.text_column",
            "at most 256",
        ),
        (
            ("task", "dataset"),
            {"name": "synthetic-sentiment", "column_names": ["c"] * 1001},
            "task.dataset.column_names",
            "at most 1000",
        ),
        (("warm_start",), {"from_study": "s" * 65}, "warm_start.from_study", "at most 64"),
        (("max_failures",), 101, "max_failures", "less than or equal to 100"),
        (
            ("resources_per_trial", "num_workers"),
            513,
            "resources_per_trial.num_workers",
            "less than or equal to 512",
        ),
    ],
)
def test_oversized_specs_are_422_naming_the_field(
    client: TestClient, path: tuple[str, ...], value: Any, field: str, needle: str
) -> None:
    response = client.post("/studies", json=_with(path, value))
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"] == field
    assert needle in problem["reason"]


def test_non_finite_fixed_hyperparameters_are_422() -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(_with(("task", "hyperparameters"), {"weight_decay": float("nan")}))
    problem = caught.value.problems[0]
    assert problem.field == "task.hyperparameters.weight_decay"
    assert "finite" in problem.reason


@pytest.mark.parametrize(
    "url",
    [
        "/studies?limit=501",
        "/studies?limit=0",
        "/studies?offset=-1",
        "/studies?offset=99999999999999999999999",  # once a 500: an SQLite integer overflow
        "/studies/x/trials?limit=1001",
        "/studies/x/trials?offset=99999999999999999999999",
    ],
)
def test_page_sizes_and_offsets_are_bounded(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"].startswith("query.")


def test_yaml_and_json_specs_parse_the_same() -> None:
    as_yaml = parse_text(yaml.safe_dump(SPEC), yaml_syntax=True)
    assert as_yaml == parse_text(json.dumps(SPEC).encode(), yaml_syntax=False) == SPEC
    with pytest.raises(SpecSyntaxError):
        parse_text(b"- a list", yaml_syntax=True)


@pytest.mark.integration
def test_the_real_server_refuses_oversized_and_hostile_bodies(server: Server) -> None:
    """Over real HTTP (uvicorn): a 2 MiB body, a chunked body, a path outside the roots."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        big = http.post(
            "/studies", content=_padded(2 * 1024 * 1024), headers={"Content-Type": "text/yaml"}
        )
        assert big.status_code == 413
        assert big.json()["detail"] == f"request body larger than {1024 * 1024} bytes"

        def chunks() -> Iterator[bytes]:
            for _ in range(512):
                yield b" " * 8192

        chunked = http.post(
            "/studies", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        outside = http.post(
            "/studies",
            json={**SPEC, "task": {"model": "toy", "dataset": {"train": "/etc/passwd"}}},
        )
        assert outside.status_code == 422
        assert outside.json()["detail"][0] == {
            "field": "task.dataset.train",
            "loc": ["task", "dataset", "train"],
            "reason": "outside the allowed data roots: /etc/passwd",
        }
        yaml_type = {"Content-Type": "application/yaml"}
        bomb = http.post("/studies", content=BILLION_LAUGHS, headers=yaml_type)
        assert bomb.status_code == 400 and "aliases" in bomb.json()["detail"]
        binary = http.post("/studies", content=b"name: !!binary aGVsbG8=", headers=yaml_type)
        assert binary.status_code == 400 and "tags are not allowed" in binary.json()["detail"]
        twice = http.post("/studies", content=b"name: a\nname: b\n", headers=yaml_type)
        assert twice.status_code == 400 and "duplicate key" in twice.json()["detail"]
        # start_server lets the server read files under its own root (and the repo, ../shared)
        train = server.state_dir.parent / "security-train.tsv"
        train.write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
        inside = http.post(
            "/studies",
            json={**SPEC, "task": {"model": "toy", "dataset": {"train": str(train)}}},
        )
        assert inside.status_code == 201, inside.text
        study_id = inside.json()["id"]
        assert http.post(f"/studies/{study_id}/cancel").status_code == 200
        assert http.delete(f"/studies/{study_id}").status_code == 204
        assert http.get("/healthz").status_code == 200
