"""Local paths in a spec: dataset files only under the data roots, model directories only under
the model roots, hub ids of a strict form. Each rejection is a 422 naming the field and reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.test_api import IN_PROCESS_HOSTS, SPEC, RecordingDispatcher


def _spec(**task: Any) -> dict[str, Any]:
    return {**SPEC, "task": task}


def _problem(client: TestClient, spec: dict[str, Any]) -> tuple[str, str, str]:
    response = client.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    first = response.json()["detail"][0]
    return first["field"], first["reason"], response.text


def _dataset(train: str, **extra: Any) -> dict[str, Any]:
    return {"model": "toy", "dataset": {"train": train, **extra}}


@pytest.mark.parametrize(
    ("train", "reason"),
    [
        ("../../../../../../../../etc/passwd", "outside the allowed data roots"),
        ("{data}/../outside/secret.tsv", "outside the allowed data roots"),
        ("{data}/../../../../../../etc/passwd", "outside the allowed data roots"),
        ("/etc/passwd", "outside the allowed data roots"),
        ("{outside}/secret.tsv", "outside the allowed data roots"),
        ("~/secret.tsv", "'~' is not expanded"),
        ("{data}/link.tsv", "symlink leaves the allowed data roots"),
        ("{data}/linked-dir/secret.tsv", "symlink leaves the allowed data roots"),
        ("{data}/nul\x00.tsv", "NUL"),
        ("{data}/" + "x" * 5000, "at most 4096 characters"),
    ],
)
def test_dataset_paths_outside_the_roots_are_rejected(
    client: TestClient, roots: dict[str, Path], train: str, reason: str
) -> None:
    (roots["data"] / "link.tsv").symlink_to(roots["outside"] / "secret.tsv")
    (roots["data"] / "linked-dir").symlink_to(roots["outside"], target_is_directory=True)
    path = train.format(data=roots["data"], outside=roots["outside"])
    field, found, text = _problem(client, _spec(**_dataset(path)))
    assert field == "task.dataset.train"
    assert reason in found
    assert "TOP-SECRET" not in text  # never the file's contents


def test_the_eval_file_is_confined_too(client: TestClient, roots: dict[str, Path]) -> None:
    spec = _spec(**_dataset(str(roots["data"] / "train.tsv"), eval="/etc/passwd"))
    field, reason, _ = _problem(client, spec)
    assert (field, reason) == ("task.dataset.eval", "outside the allowed data roots: /etc/passwd")


def test_files_and_symlinks_inside_the_roots_are_accepted(
    client: TestClient, roots: dict[str, Path]
) -> None:
    (roots["data"] / "sub").mkdir()
    (roots["data"] / "sub" / "link.tsv").symlink_to(roots["data"] / "train.tsv")
    inside = (
        roots["data"] / "train.tsv",
        roots["data"] / "sub" / "link.tsv",
        f"{roots['data']}/sub/../train.tsv",  # '..' that stays inside a root is fine
    )
    for train in inside:
        response = client.post("/studies", json=_spec(**_dataset(str(train))))
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["task"]["dataset"]["train"] == str(
            roots["data"] / "train.tsv"
        )


def test_a_missing_file_inside_a_root_is_still_not_found(
    client: TestClient, roots: dict[str, Path]
) -> None:
    field, reason, _ = _problem(client, _spec(**_dataset(str(roots["data"] / "nope.tsv"))))
    assert field == "task.dataset.train" and reason.startswith("file not found")


def test_empty_data_roots_disable_local_files(tmp_path: Path, roots: dict[str, Path]) -> None:
    settings = Settings(
        allowed_hosts=IN_PROCESS_HOSTS,
        database_url=f"sqlite:///{tmp_path / 'e.db'}",
        state_dir=tmp_path / "s",
        data_roots=[],
    )
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        field, reason, _ = _problem(client, _spec(**_dataset(str(roots["data"] / "train.tsv"))))
    assert field == "task.dataset.train" and "no data roots are configured" in reason


@pytest.mark.parametrize("env", ['["/tmp", ""]', '[""]', '["  "]'])
def test_an_empty_root_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("HPO_DATA_ROOTS", env)
    with pytest.raises(ValueError, match="must not be empty"):
        Settings()


def test_roots_come_from_the_environment_as_a_json_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HPO_DATA_ROOTS", json.dumps([str(tmp_path / "a"), str(tmp_path)]))
    monkeypatch.setenv("HPO_MODEL_ROOTS", "[]")
    settings = Settings()
    assert settings.data_roots == [(tmp_path / "a").resolve(), tmp_path.resolve()]
    assert settings.model_roots == []
    monkeypatch.delenv("HPO_DATA_ROOTS")
    assert Settings().data_roots == [Path.cwd()]  # the default: the server's directory


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("{outside}/bert", "outside the allowed model roots"),
        ("{models}/link", "symlink leaves the allowed model roots"),
        ("../../../../../../../../outside/bert", "outside the allowed model roots"),
        ("{models}/../outside/bert", "outside the allowed model roots"),
        ("/etc", "outside the allowed model roots"),
        ("{models}/empty", "has no config.json"),
    ],
)
def test_model_directories_outside_the_roots_are_rejected(
    client: TestClient, roots: dict[str, Path], model: str, reason: str
) -> None:
    (roots["models"] / "link").symlink_to(roots["outside"] / "bert", target_is_directory=True)
    (roots["models"] / "empty").mkdir()
    path = model.format(models=roots["models"], outside=roots["outside"])
    field, found, _ = _problem(client, _spec(model=path))
    assert field == "task.model"
    assert reason in found


def test_model_directories_inside_the_roots_are_accepted(
    client: TestClient, roots: dict[str, Path]
) -> None:
    (roots["models"] / "alias").symlink_to(roots["models"] / "bert", target_is_directory=True)
    for model in (roots["models"] / "bert", roots["models"] / "alias"):
        response = client.post("/studies", json=_spec(model=str(model)))
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["task"]["model"] == str(roots["models"] / "bert")


@pytest.mark.parametrize(
    "model",
    [
        "bert base",
        "org/team/model",
        "-bert",
        "bert-",
        "bert.",
        "bert--large",
        "bert..large",
        "org/..",
        "org/.hidden",
        "x" * 97,
        "bert;rm -rf /",
        "$(id)",
        "`id`",
        "bert\nx",
        "ünïcödé/bert",
        "C:\\models\\bert",
        "",
    ],
)
def test_malformed_hub_ids_are_rejected(client: TestClient, model: str) -> None:
    field, reason, _ = _problem(client, _spec(model=model))
    assert field == "task.model"
    assert reason


@pytest.mark.parametrize(
    "model", ["bert-base-uncased", "google/bert_uncased_L-2_H-128_A-2", "org/model.v1", "minilm-l6"]
)
def test_well_formed_hub_ids_and_built_in_names_are_accepted(
    client: TestClient, model: str
) -> None:
    response = client.post("/studies", json=_spec(model=model))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["task"]["model"] == model
