"""Every validation rule of StudySpec: each bad case names its field and reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from search_spaces.loader import SpecSyntaxError, load_spec_file, parse_text, ready_spec_path
from search_spaces.spec import SpecError, validate_spec
from search_spaces.tunables import TUNABLES

BASE: dict[str, Any] = {
    "name": "unit",
    "algorithm": "tpe",
    "budget": {"n_trials": 4},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32]},
    },
}


def _with(**changes: Any) -> dict[str, Any]:
    return changed(BASE, **changes)


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with each ``parent__child`` key set to its value."""
    spec = copy.deepcopy(base)
    for dotted, value in changes.items():
        target = spec
        *parents, last = dotted.split("__")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return spec


def first_problem(data: dict[str, Any]) -> tuple[str, str]:
    """The field and reason of the first problem ``data`` is refused with."""
    with pytest.raises(SpecError) as caught:
        validate_spec(data)
    first = caught.value.problems[0]
    return first.field, first.reason


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (_with(algorithm="hyperopt"), "algorithm", "unknown algorithm 'hyperopt'"),
        (
            _with(search_space__learning_rate={"type": "float", "low": 1e-3, "high": 1e-5}),
            "search_space.learning_rate",
            "must be less than high",
        ),
        (
            _with(search_space__learning_rate={"type": "float", "low": 1e-3, "high": 1e-3}),
            "search_space.learning_rate",
            "must be less than high",
        ),
        (
            _with(search_space__learning_rate={"type": "float", "low": 0, "high": 1, "log": True}),
            "search_space.learning_rate",
            "log scale needs low > 0",
        ),
        (
            _with(
                search_space__epochs={"type": "int", "low": 1, "high": 4, "log": True, "step": 2}
            ),
            "search_space.epochs",
            "log and step cannot be combined",
        ),
        (
            _with(search_space__unknown_knob={"type": "float", "low": 0, "high": 1}),
            "search_space.unknown_knob",
            "unknown parameter 'unknown_knob'",
        ),
        (
            _with(search_space__optimizer={"type": "categorical", "choices": ["adamw", "lion"]}),
            "search_space.optimizer",
            "'lion' is not one of",
        ),
        (
            _with(search_space__batch_size={"type": "float", "low": 8, "high": 64}),
            "search_space.batch_size",
            "integer",
        ),
        (
            _with(search_space__dropout={"type": "float", "low": 0.0, "high": 1.5}),
            "search_space.dropout",
            "above its maximum",
        ),
        (
            _with(search_space__learning_rate={"type": "gaussian", "low": 0, "high": 1}),
            "search_space.learning_rate",
            "does not match any of the expected tags",
        ),
        (
            _with(search_space__batch_size={"type": "categorical", "choices": []}),
            "search_space.batch_size.choices",
            "at least 1 item",
        ),
        (_with(objective={"metric": "bleu"}), "objective.metric", "unknown metric 'bleu'"),
        (
            _with(objective={"metric": "eval_loss", "direction": "up"}),
            "objective.direction",
            "'maximize' or 'minimize'",
        ),
        (
            _with(task={"dataset": {"train": "/does/not/exist.tsv"}}),
            "task.dataset.train",
            "file not found",
        ),
        (
            _with(task={"dataset": {"name": "imagenet"}}),
            "task.dataset.name",
            "unknown dataset 'imagenet'",
        ),
        (_with(task={"model": "./no/such/dir"}), "task.model", "model directory not found"),
        (_with(task={"model": "bad id with spaces"}), "task.model", "valid hub id"),
        (
            _with(task={"hyperparameters": {"momentum": 2.0}}),
            "task.hyperparameters.momentum",
            "above its maximum",
        ),
        (
            _with(task={"hyperparameters": {"batch_size": 8}}),
            "task.hyperparameters.batch_size",
            "also tuned in search_space",
        ),
        (_with(budget={"n_trials": 0}), "budget.n_trials", "greater than or equal to 1"),
        (_with(budget={"n_trials": "many"}), "budget.n_trials", "valid integer"),
        (
            _with(resources_per_trial={"num_workers": 0}),
            "resources_per_trial.num_workers",
            "greater than or equal to 1",
        ),
        (
            _with(algorithm_settings={"n_startup_trials": -1}),
            "algorithm_settings.n_startup_trials",
            "greater than or equal to 0",
        ),
        (
            _with(algorithm="random", algorithm_settings={"multivariate": True}),
            "algorithm_settings.multivariate",
            "Extra inputs are not permitted",
        ),
        (_with(surprise=1), "surprise", "Extra inputs are not permitted"),
        (_with(name=""), "name", "printable"),
        (_with(name="a\x00b"), "name", "printable"),
        (_with(task__compression="zip"), "task.compression", "not one of"),
        (_with(task__finetune_method="qlora"), "task.finetune_method", "not one of"),
        (
            _with(task__model="toy", task__compression="dynamic_int8"),
            "task.compression",
            "needs a model; the toy objective has none",
        ),
        (
            _with(
                task__model="toy",
                search_space__finetune_method={"type": "categorical", "choices": ["full", "lora"]},
            ),
            "search_space.finetune_method",
            "needs a model",
        ),
        (_with(task__precision="fp16"), "task.precision", "fp16 needs GPUs"),
        (
            _with(search_space__precision={"type": "categorical", "choices": ["fp32", "fp16"]}),
            "search_space.precision",
            "fp16 needs GPUs",
        ),
        (
            _with(task__compression="none", task__hyperparameters={"compression": "none"}),
            "task.hyperparameters.compression",
            "given twice",
        ),
        (
            _with(task__model="toy", objective={"metric": "compressed_latency_b1_ms"}),
            "objectives.0.metric",
            "measured only by fine-tuning trials",
        ),
        (
            _with(task__model="toy", constraints=[{"metric": "model_bytes", "max": 1e6}]),
            "constraints.0.metric",
            "measured only by fine-tuning trials",
        ),
        (
            _with(
                objective={"metric": "model_bytes"},
                task__epochs=3,
                scheduler={"type": "asha"},
            ),
            "scheduler.type",
            "model_bytes is measured once, after the last epoch",
        ),
        (_with(objective={"metric": "energy_estimated"}), "objective.metric", "unknown metric"),
        (
            _with(task__epochs=3, scheduler={"type": "asha", "metric": "eval_los"}),
            "scheduler.metric",
            "unknown metric 'eval_los'",
        ),
        (
            _with(task__epochs=3, scheduler={"type": "asha", "metric": "latency_b1_ms"}),
            "scheduler.metric",
            "latency_b1_ms is measured once, after the last epoch",
        ),
        (
            _with(
                task__model="toy",
                task__epochs=3,
                scheduler={"type": "asha", "metric": "parameter_count"},
            ),
            "scheduler.metric",
            "measured only by fine-tuning trials",
        ),
        (_with(scheduler={"metric": "eval_loss"}), "scheduler.metric", "no scheduler type"),
        (
            _with(task__epochs=3, scheduler={"type": "asha", "direction": "minimize"}),
            "scheduler.direction",
            "give scheduler.metric",
        ),
        (
            _with(task__hyperparameters={"gradient_accumulation_steps": 0}),
            "task.hyperparameters.gradient_accumulation_steps",
            "below its minimum",
        ),
        (_with(checkpoint={"every_epochs": -1}), "checkpoint.every_epochs", "greater than or"),
        (_with(checkpoint={"every_epochs": 1.5}), "checkpoint.every_epochs", "integer"),
        (_with(checkpoint={"keep": 0}), "checkpoint.keep", "greater than or equal to 1"),
        (_with(checkpoint={"max_bytes": 0}), "checkpoint.max_bytes", "greater than or equal"),
        (_with(checkpoint={"max_bytes": 2**41}), "checkpoint.max_bytes", "less than or equal"),
        (_with(checkpoint={"enabled": False}), "checkpoint.enabled", "Extra inputs"),
    ],
)
def test_bad_spec_names_field_and_reason(data: dict[str, Any], field: str, reason: str) -> None:
    found_field, found_reason = first_problem(data)
    assert found_field == field
    assert reason in found_reason


def test_checkpoints_are_on_by_default_and_off_with_zero_epochs() -> None:
    spec = validate_spec(BASE)
    assert spec.checkpoint.enabled and spec.checkpoint.every_epochs == 1
    assert spec.checkpoint.keep == 2 and spec.checkpoint.max_bytes == 10 * 1024**3
    assert not validate_spec(_with(checkpoint={"every_epochs": 0})).checkpoint.enabled


def test_grid_rejects_continuous_parameters() -> None:
    field, reason = first_problem(_with(algorithm="grid"))
    assert field == "search_space.learning_rate"
    assert "discrete" in reason


def test_grid_rejects_more_trials_than_points() -> None:
    data = _with(algorithm="grid", budget={"n_trials": 7})
    data["search_space"]["learning_rate"] = {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1}
    field, reason = first_problem(data)
    assert field == "budget.n_trials"
    assert "grid size (6)" in reason


def test_grid_accepts_fewer_trials_than_points() -> None:
    data = _with(algorithm="grid", budget={"n_trials": 5})
    data["search_space"]["learning_rate"] = {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1}
    assert validate_spec(data).grid_size() == 6


def test_defaults_and_normalisation(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\nfine\t1\n")
    data = _with(objective={"metric": "eval_loss"}, task={"dataset": {"train": str(train)}})
    spec = validate_spec(data)
    assert spec.objective.direction == "minimize"  # from the metric's natural direction
    assert spec.task.dataset.train == str(train.resolve())
    assert spec.algorithm_settings == {}


def test_relative_paths_resolve_against_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.csv").write_text("sentence,label\nok,1\n")
    monkeypatch.chdir(tmp_path)
    spec = validate_spec(_with(task={"dataset": {"train": "d.csv"}}))
    assert spec.task.dataset.train == str(tmp_path / "d.csv")
    assert spec.task.dataset.file_format == "csv"


def test_a_validated_spec_validates_again_unchanged() -> None:
    """The service stores the validated spec; the driver validates it again."""
    first = validate_spec(_with(objectives=[{"metric": "eval_f1"}, {"metric": "eval_loss"}]))
    again = validate_spec(first.model_dump(mode="json"))
    assert again == first
    assert [o.metric for o in again.goals] == ["eval_f1", "eval_loss"]


def test_cost_and_deployment_metrics_are_objectives_and_constraints() -> None:
    spec = validate_spec(
        _with(
            algorithm="nsga2",
            objectives=[
                {"metric": "eval_accuracy"},
                {"metric": "compressed_latency_b1_ms"},
                {"metric": "train_tokens_per_second"},
            ],
            constraints=[{"metric": "peak_rss_bytes", "max": 4e9}],
            search_space__compression={"type": "categorical", "choices": ["none", "dynamic_int8"]},
            task__finetune_method="lora",
            task__precision="bf16",
        )
    )
    assert [g.direction for g in spec.goals] == ["maximize", "minimize", "maximize"]
    assert spec.task.finetune_method == "lora"
    # The toy objective measures the cost that needs no model.
    toy = validate_spec(_with(task__model="toy", objective={"metric": "device_seconds"}))
    assert toy.goals[0].direction == "minimize"


def test_documented_tunables_are_all_accepted() -> None:
    for name in [
        "learning_rate",
        "batch_size",
        "weight_decay",
        "warmup_ratio",
        "optimizer",
        "momentum",
        "adam_beta1",
        "adam_beta2",
        "dropout",
        "epochs",
        "max_seq_length",
        "seed",
    ]:
        assert name in TUNABLES


@pytest.mark.parametrize(
    "name",
    [
        "quickstart",
        "sst2_minilm",
        "sst2_minilm_efficiency",
        "bert_base_glue_gpu",
        "rte_minilm",
        "mrpc_minilm",
        "stsb_minilm",
        "wnut17_minilm",
        "sst2_replay",
    ],
)
def test_ready_study_files_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # paths are relative to the repo
    spec = load_spec_file(ready_spec_path(name))
    assert spec.budget.n_trials >= 1


def test_yaml_aliases_and_non_mappings_are_refused() -> None:
    with pytest.raises(SpecSyntaxError, match="aliases"):
        parse_text("a: &x [1]\nb: *x\n", yaml_syntax=True)
    with pytest.raises(SpecSyntaxError, match="mapping"):
        parse_text("[1, 2]", yaml_syntax=False)
    with pytest.raises(SpecSyntaxError, match="malformed JSON"):
        parse_text("{", yaml_syntax=False)
    with pytest.raises(SpecSyntaxError, match="malformed YAML"):
        parse_text("a: [1,", yaml_syntax=True)
