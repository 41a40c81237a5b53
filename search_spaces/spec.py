"""``StudySpec``: what a user submits, validated completely before anything reaches Ray."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from search_spaces.algorithms import ALGORITHMS
from search_spaces.dataset_checks import file_problem
from search_spaces.limits import (
    grid_problem,
    grid_size,
    longest_trial_epochs,
    scheduler_problem,
    step_problem,
)
from search_spaces.params import CategoricalParam, FloatParam, IntParam, Param, contains
from search_spaces.paths import (
    MAX_PATH_CHARS,
    PathPolicy,
    contained_path,
    exists,
    hub_id_problem,
    looks_like_path,
)
from search_spaces.pausing import pausing_problem
from search_spaces.registry import BUILTIN_DATASETS, BUILTIN_MODELS, SIMULATED_MODELS
from search_spaces.replay import replay_problem, table_names
from search_spaces.rules import TASK_OPTIONS, dataset_problem, metric_problem, option_problem
from search_spaces.tasks import DEFAULT_TASK, TaskInfo, task_info
from search_spaces.tracking import URI_LOC, Tracking, TrackingPolicy, resolve_tracking
from search_spaces.tunables import TUNABLES, Tunable, metric_directions

MAX_NAME_CHARS = 100
MAX_COLUMN_CHARS = 256
MAX_EPOCHS = 100
MODEL_PARAM = "model"  # the search-space name of the model dimension (not a tunable)
POLICY_KEY = "path_policy"  # the validation context entry holding the server's PathPolicy
TRACKING_KEY = "tracking_policy"  # ... and the one holding its TrackingPolicy
FILES_KEY = "check_files"  # ... and whether to read the data files' first rows (at submit)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    """The metric to optimise and its direction."""

    metric: str = "eval_accuracy"
    direction: Literal["maximize", "minimize"] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        known = metric_directions()
        if metric not in known:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(known)}")
        return metric

    @model_validator(mode="after")
    def _default_direction(self) -> Objective:
        if self.direction is None:
            self.direction = metric_directions()[self.metric]
        return self


class Constraint(_Strict):
    """A bound on a reported metric; trials outside it are infeasible for the sampler."""

    metric: str
    max: float | None = None
    min: float | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        return Objective._known_metric(metric)

    @model_validator(mode="after")
    def _a_bound(self) -> Constraint:
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class Scheduler(_Strict):
    """A Ray Tune trial scheduler: early stopping of poor trials (stopped trials are PRUNED),
    or one that pauses trials and resumes them from their checkpoints (``PAUSING_SCHEDULERS``:
    synchronous Hyperband, BOHB, and population based training, PBT and PB2)."""

    type: Literal["none", "asha", "hyperband", "median", "hyperband_sync", "bohb", "pbt", "pb2"] = (
        "none"
    )
    grace_period: Annotated[int, Field(ge=1, le=10_000)] = 1
    reduction_factor: Annotated[float, Field(gt=1, le=100)] = 3.0
    max_epochs: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Epochs of the longest trial (default: the task's epochs)."
    )
    min_samples_required: Annotated[int, Field(ge=1, le=10_000)] = 3
    metric: str | None = Field(
        default=None,
        description=(
            "Metric the scheduler compares trials on after each epoch (default: the objective). "
            "eval_loss tells a diverged run from a slow starter earlier than accuracy does."
        ),
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="Which way the scheduler's metric is better (default: its usual)."
    )
    perturbation_interval: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=1, description="pbt, pb2: epochs between two exploit-and-explore steps."
    )
    quantile_fraction: Annotated[float, Field(gt=0, le=0.5)] = Field(
        default=0.25,
        description="pbt, pb2: the bottom share of the population that copies the top share.",
    )
    resample_probability: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.25,
        description="pbt: chance that an explored value is drawn anew from the search space "
        "instead of perturbed (x0.8 or x1.2, or a neighbouring choice).",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str | None) -> str | None:
        return None if metric is None else Objective._known_metric(metric)


DEFAULT_CHECKPOINT_BYTES = 10 * 1024**3  # a study's checkpoints, all trials together
MAX_CHECKPOINT_BYTES = 1024**4  # the largest limit a spec may ask for


class Checkpointing(_Strict):
    """Trial checkpoints (fine-tuning models only): a failed trial that Tune retries resumes
    from its last one instead of epoch 0."""

    every_epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = Field(
        default=1, description="Write a checkpoint after every this many epochs (0: never)."
    )
    keep: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Checkpoints kept per trial (older ones are deleted)."
    )
    max_bytes: Annotated[int, Field(ge=1, le=MAX_CHECKPOINT_BYTES)] = Field(
        default=DEFAULT_CHECKPOINT_BYTES,
        description="The most bytes the study's kept checkpoints may take, all trials "
        "together; a trial whose checkpoint does not fit fails with the reason.",
    )

    @property
    def enabled(self) -> bool:
        """Whether trials write checkpoints at all."""
        return self.every_epochs > 0

    def per_trial_bytes(self, concurrent_trials: int) -> int:
        """The share of ``max_bytes`` one running trial's kept checkpoints may take."""
        return self.max_bytes // max(1, concurrent_trials)


class WarmStart(_Strict):
    """Enqueue the best configurations of an earlier study first."""

    from_study: Annotated[str, Field(min_length=1, max_length=64)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 3


class Budget(_Strict):
    """How many trials to run and how many at once."""

    n_trials: Annotated[int, Field(ge=1, le=100_000)] = 10
    max_concurrent_trials: Annotated[int, Field(ge=1, le=1000)] = 1
    time_budget_s: Annotated[float, Field(gt=0, le=30 * 24 * 3600)] | None = Field(
        default=None, description="Stop the study this long after it first started."
    )
    max_failed_trials: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="Stop (FAILED) once this many trials have failed for good."
    )


class Resources(_Strict):
    """Resources of one trial: DDP workers and what each worker reserves."""

    num_workers: Annotated[int, Field(ge=1, le=512)] = 1
    cpus_per_worker: Annotated[float, Field(gt=0, le=512)] = 1.0
    gpus_per_worker: Annotated[float, Field(ge=0, le=16)] = 0.0
    ddp: Literal["kept", "ray_train"] = Field(
        default="kept",
        description=(
            "How a multi-worker trial gets its DDP workers: kept (one worker group per trial "
            "process, started by its first trial and reused by the study's later ones) or "
            "ray_train (a Ray Train TorchTrainer with fresh workers for every trial)."
        ),
    )


Column = Annotated[str, Field(min_length=1, max_length=MAX_COLUMN_CHARS)]


class Dataset(_Strict):
    """A built-in dataset by name, or local train/eval files."""

    name: str | None = None
    train: Annotated[str, Field(max_length=MAX_PATH_CHARS)] | None = None
    eval: Annotated[str, Field(max_length=MAX_PATH_CHARS)] | None = None
    format: Literal["tsv", "csv", "jsonl", "conll"] | None = None
    text_column: Column = "sentence"
    text_pair_column: Column | None = Field(
        default=None, description="The second text of a sentence pair (GLUE RTE, MRPC, STS-B)."
    )
    label_column: Column = "label"
    tokens_column: Column = Field(default="tokens", description="jsonl: the list of words.")
    tags_column: Column = Field(default="tags", description="jsonl: the list of word tags.")
    tag_scheme: Literal["iob1", "iob2", "bioes"] = Field(
        default="iob2", description="How entity spans are tagged (token_classification)."
    )
    column_names: (
        Annotated[
            list[Annotated[str, Field(max_length=MAX_COLUMN_CHARS)]],
            Field(min_length=1, max_length=1000),
        ]
        | None
    ) = Field(default=None, description="Column names for a tsv/csv file without a header row.")
    eval_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.name is None) == (self.train is None):
            raise ValueError("give either a built-in dataset name or a train file, not both")
        if self.eval is not None and self.train is None:
            raise ValueError("eval needs a train file")
        return self

    def columns(self, info: TaskInfo) -> dict[str, str]:
        """The column fields the task reads, by field name (a pair column only when given)."""
        names = [f for f in info.dataset_fields if f.endswith("_column")]
        return {f: getattr(self, f) for f in names if getattr(self, f) is not None}

    @field_validator("name")
    @classmethod
    def _builtin_name(cls, name: str | None) -> str | None:
        if name is not None and name not in BUILTIN_DATASETS and name not in table_names():
            known = [*BUILTIN_DATASETS, *(f"{t} (replay)" for t in table_names())]
            raise ValueError(f"unknown dataset {name!r}; built-in: {', '.join(known)}")
        return name

    @field_validator("train", "eval")
    @classmethod
    def _existing_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is None:
            return None
        policy = _policy(info)
        if policy is None:  # re-validation of a stored spec, or a local check by the CLI
            resolved = Path(path).expanduser().resolve()
        else:
            resolved = contained_path(path, policy.data_roots, "data")
        if not exists(resolved, file=True):
            raise ValueError(f"file not found: {path}")
        return str(resolved)

    @property
    def file_format(self) -> str:
        """The file format, from ``format`` or the train file's extension."""
        if self.format:
            return self.format
        suffix = Path(self.train or "").suffix.lstrip(".").lower()
        return suffix if suffix in ("tsv", "csv", "jsonl", "conll") else "tsv"


class Task(_Strict):
    """The fine-tuning task every trial runs."""

    type: str = Field(
        default=DEFAULT_TASK,
        description="classification | regression | token_classification, or a task plugin's "
        "name (GET /tasks lists the registered ones).",
    )
    model: Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)] = "tiny-bert"
    dataset: Dataset = Field(default_factory=lambda: Dataset(name="synthetic-sentiment"))
    max_seq_length: Annotated[int, Field(ge=8, le=4096)] = 128
    max_train_samples: Annotated[int, Field(ge=2, le=1_000_000_000)] | None = None
    max_eval_samples: Annotated[int, Field(ge=2, le=1_000_000_000)] | None = None
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 1
    finetune_method: str = Field(
        default="full", description="full | lora (peft adapters; lora_r/alpha/dropout tunable)."
    )
    compression: str = Field(
        default="none",
        description="none | dynamic_int8 | prune_l1_30 | prune_l1_50, applied after fine-tuning.",
    )
    precision: str = Field(
        default="auto",
        description="auto (bf16 on GPUs that have it, else fp32) | fp32 | bf16 | fp16.",
    )
    auto_batch_size: bool = Field(
        default=True,
        description="On GPUs, split batches that run out of memory into smaller micro-batches "
        "(gradients accumulated, so the effective batch size is unchanged).",
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Fixed values of tunables that are not searched."
    )

    @field_validator("type")
    @classmethod
    def _registered_type(cls, name: str) -> str:
        task_info(name)
        return name

    @model_validator(mode="after")
    def _dataset_fits(self, info: ValidationInfo) -> Task:
        problem = dataset_problem(self.info, self.dataset, self.model)
        context = info.context if isinstance(info.context, dict) else {}
        if problem is None and context.get(FILES_KEY):  # not again for a stored spec
            problem = file_problem(self.info, self.dataset)
        if problem:
            raise FieldError(("task", *problem[0]), problem[1])
        return self

    @property
    def info(self) -> TaskInfo:
        """The registered task this study fine-tunes for."""
        return task_info(self.type)

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str, info: ValidationInfo) -> str:
        return _model_name(model, info)

    @field_validator(*TASK_OPTIONS)
    @classmethod
    def _known_option(cls, value: str, info: ValidationInfo) -> str:
        assert info.field_name is not None
        _check_value(info.field_name, TUNABLES[info.field_name], value)
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _known_hyperparameters(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name, value in values.items():
            try:
                _check_value(name, _tunable(name), value)
            except ValueError as exc:
                raise FieldError(("task", "hyperparameters", name), str(exc)) from None
        return values


class StudySpec(_Strict):
    """A complete tuning study: space, objective, algorithm, budget, resources and task."""

    name: str
    objective: Objective | None = None
    objectives: Annotated[list[Objective], Field(min_length=1, max_length=8)] | None = None
    constraints: Annotated[list[Constraint], Field(max_length=16)] = Field(default_factory=list)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    algorithm: str = "tpe"
    algorithm_settings: dict[str, Any] = Field(default_factory=dict)
    budget: Budget = Field(default_factory=Budget)
    resources_per_trial: Resources = Field(default_factory=Resources)
    max_failures: Annotated[int, Field(ge=0, le=100)] = 0
    task: Task = Field(default_factory=Task)
    search_space: Annotated[dict[str, Param], Field(min_length=1, max_length=64)]
    points_to_evaluate: Annotated[list[dict[str, Any]], Field(max_length=1000)] = Field(
        default_factory=list, description="Configurations to try first, in this order."
    )
    warm_start: WarmStart | None = None
    tracking: Tracking = Field(default_factory=Tracking)
    checkpoint: Checkpointing = Field(default_factory=Checkpointing)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        if not (0 < len(name) <= MAX_NAME_CHARS and name.isprintable() and name.strip()):
            raise ValueError(
                f"name must be 1-{MAX_NAME_CHARS} printable characters (no control, format or "
                "separator characters but the space), not blank"
            )
        return name

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, algorithm: str) -> str:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        return algorithm

    @field_validator("tracking")
    @classmethod
    def _allowed_tracking(cls, tracking: Tracking, info: ValidationInfo) -> Tracking:
        context = info.context if isinstance(info.context, dict) else {}
        policy = context.get(TRACKING_KEY)
        if not isinstance(policy, TrackingPolicy) or tracking.mlflow is None:
            return tracking  # a stored spec (resolved at submit), or a local check by the CLI
        problem, uri = resolve_tracking(tracking, policy)
        if problem:
            raise FieldError(URI_LOC, problem)
        tracking.mlflow.tracking_uri = uri
        return tracking

    @field_validator("search_space")
    @classmethod
    def _tunable_names(cls, space: dict[str, Param], info: ValidationInfo) -> dict[str, Param]:
        for name, param in space.items():
            try:
                if name == MODEL_PARAM:
                    space[name] = _model_choices(param, info)
                else:
                    _check_param(name, _tunable(name), param)
            except ValueError as exc:
                raise FieldError(("search_space", name), str(exc)) from None
        return space

    @model_validator(mode="after")
    def _cross_checks(self) -> StudySpec:
        algorithm = ALGORITHMS[self.algorithm]
        self._normalise_objectives()
        if self.is_multi_objective and not algorithm.multi_objective:
            raise FieldError(("algorithm",), f"{self.algorithm} cannot optimise several objectives")
        if self.constraints and not algorithm.constraints:
            raise FieldError(
                ("constraints",),
                f"{self.algorithm} does not support constraints (tpe, gp and nsga2 do)",
            )
        self._check_scheduler()
        checks = (metric_problem, option_problem, step_problem, replay_problem)
        for broken in (check(self) for check in checks):
            if broken:
                raise FieldError(*broken)
        self._check_conditions(algorithm.conditional)
        for index, point in enumerate(self.points_to_evaluate):
            problem = self.point_problem(point)
            if problem:
                raise FieldError(("points_to_evaluate", index), problem)
        try:
            settings = algorithm.settings.model_validate(self.algorithm_settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise FieldError(
                ("algorithm_settings", *first["loc"]),
                f"{_clean(first['msg'])} (for algorithm {self.algorithm!r})",
            ) from None
        self.algorithm_settings = settings.model_dump(exclude_unset=True)
        for name in set(self.task.hyperparameters) & set(self.search_space):
            raise FieldError(
                ("task", "hyperparameters", name), "fixed here but also tuned in search_space"
            )
        if algorithm.needs_grid:
            for name, param in self.search_space.items():
                if not param.is_discrete:
                    raise FieldError(
                        ("search_space", name),
                        "grid needs discrete parameters (categorical, or int/float with step)",
                    )
            if broken := grid_problem(self):
                raise FieldError(*broken)
        return self

    def _normalise_objectives(self) -> None:
        if (
            self.objective is not None
            and self.objectives is not None
            and self.objective != self.objectives[0]  # a stored spec carries both, equal
        ):
            raise FieldError(("objectives",), "give objective or objectives, not both")
        if self.objectives is None:
            primary = self.task.info.primary_metric
            self.objectives = [self.objective or Objective(metric=primary)]
        self.objective = self.objectives[0]
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise FieldError(("objectives",), "each metric may appear once")

    def _check_scheduler(self) -> None:
        if self.scheduler.direction is not None and self.scheduler.metric is None:
            raise FieldError(("scheduler", "direction"), "give scheduler.metric with its direction")
        if self.scheduler.type == "none":
            if self.scheduler.metric is not None:
                raise FieldError(("scheduler", "metric"), "no scheduler type to use it (none)")
            return
        if self.is_multi_objective:
            raise FieldError(("scheduler", "type"), "early stopping needs a single objective")
        if broken := scheduler_problem(self) or pausing_problem(self):
            raise FieldError(*broken)
        epochs = self.max_epochs()
        if epochs < 2:
            raise FieldError(
                ("scheduler", "type"),
                f"{self.scheduler.type} needs per-epoch reports, but trials run {epochs} epoch",
            )
        if self.scheduler.grace_period >= epochs:
            raise FieldError(
                ("scheduler", "grace_period"),
                f"grace_period ({self.scheduler.grace_period}) must be below the epochs ({epochs})",
            )

    def _check_conditions(self, supported: bool) -> None:
        for name, param in self.search_space.items():
            if not param.when:
                continue
            if not supported:
                raise FieldError(
                    ("search_space", name, "when"),
                    f"{self.algorithm} does not support conditional parameters",
                )
            for parent, value in param.when.items():
                target = self.search_space.get(parent)
                if not isinstance(target, CategoricalParam):
                    raise FieldError(
                        ("search_space", name, "when", parent),
                        f"{parent!r} must be a categorical parameter of the search space",
                    )
                if target.when:
                    raise FieldError(
                        ("search_space", name, "when", parent),
                        f"{parent!r} is itself conditional; conditions may not be chained",
                    )
                if not contains(target, value):
                    raise FieldError(
                        ("search_space", name, "when", parent),
                        f"{value!r} is not one of {parent}'s choices {target.choices}",
                    )

    @property
    def goals(self) -> list[Objective]:
        """The objectives, in order (``objective`` alone is a list of one)."""
        assert self.objectives is not None  # set by validation
        return self.objectives

    @property
    def is_multi_objective(self) -> bool:
        """True when the study optimises more than one metric."""
        return self.objectives is not None and len(self.objectives) > 1

    def stopping_goal(self) -> Objective:
        """What the early-stopping scheduler compares: ``scheduler.metric`` (in its usual
        direction unless ``scheduler.direction`` says otherwise), else the objective."""
        if self.scheduler.metric is None:
            return self.goals[0]
        return Objective(metric=self.scheduler.metric, direction=self.scheduler.direction)

    def models(self) -> list[str]:
        """The models trials fine-tune: the searched ``model`` choices, else the task's."""
        param = self.search_space.get(MODEL_PARAM)
        if isinstance(param, CategoricalParam):
            return [str(choice) for choice in param.choices]
        return [self.task.model]

    def max_epochs(self) -> int:
        """Epochs of the longest trial the spec allows."""
        if self.scheduler.max_epochs is not None:
            return self.scheduler.max_epochs
        return longest_trial_epochs(self)

    def active(self, name: str, point: dict[str, Any]) -> bool:
        """Whether a (conditional) parameter is sampled given the point's other values."""
        when = self.search_space[name].when or {}
        return all(point.get(parent) == value for parent, value in when.items())

    def point_problem(self, point: dict[str, Any]) -> str | None:
        """Why ``point`` is not a configuration of this space, or None if it is."""
        unknown = sorted(set(point) - set(self.search_space))
        if unknown:
            return f"not in the search space: {', '.join(unknown)}"
        for name, param in self.search_space.items():
            if not self.active(name, point):
                if name in point:
                    return f"{name} is given but inactive for this point"
                continue
            if name not in point:
                return f"{name} is missing"
            if not contains(param, point[name]):
                return f"{name}={point[name]!r} is outside its range"
        return None

    def grid_size(self) -> int:
        """Number of points of the full grid over the search space (computed, not counted)."""
        return grid_size(self)


def _model_name(model: str, info: ValidationInfo) -> str:
    """A built-in model, an existing model directory (resolved, within the model roots) or a
    valid hub id."""
    if model in BUILTIN_MODELS:
        return model
    policy = _policy(info)
    if looks_like_path(model):
        if policy is None:  # re-validation of a stored spec, or a local check by the CLI
            directory = Path(model).expanduser().resolve()
        else:
            directory = contained_path(model, policy.model_roots, "model")
        if not exists(directory / "config.json", file=True):
            raise ValueError(f"model directory not found or has no config.json: {model}")
        return str(directory)
    problem = hub_id_problem(model)
    if problem:
        raise ValueError(
            f"model {model!r} is neither built-in ({', '.join(BUILTIN_MODELS)}), "
            f"an existing directory, nor a valid hub id: {problem}"
        )
    return model


def _model_choices(param: Param, info: ValidationInfo) -> CategoricalParam:
    """The search space's ``model``: a categorical of models, each checked like task.model."""
    if not isinstance(param, CategoricalParam):
        raise ValueError("model is searched as a categorical: type categorical, choices [...]")
    names = []
    for choice in param.choices:
        if not isinstance(choice, str) or choice in SIMULATED_MODELS:
            raise ValueError(f"model choice {choice!r} must name a model (not a simulated one)")
        names.append(_model_name(choice, info))
    if len(set(names)) != len(names):
        raise ValueError("model choices must differ")
    return param.model_copy(update={"choices": names})


def _policy(info: ValidationInfo) -> PathPolicy | None:
    context = info.context if isinstance(info.context, dict) else {}
    policy = context.get(POLICY_KEY)
    return policy if isinstance(policy, PathPolicy) else None


def _tunable(name: str) -> Tunable:
    if name not in TUNABLES:
        raise ValueError(
            f"unknown parameter {name!r}: the training loop does not use it; "
            f"known: {', '.join(TUNABLES)}"
        )
    return TUNABLES[name]


def _check_param(
    name: str, tunable: Tunable, param: FloatParam | IntParam | CategoricalParam
) -> None:
    if isinstance(param, CategoricalParam):
        for choice in param.choices:
            _check_value(name, tunable, choice)
        return
    if tunable.kind == "str":
        raise ValueError(f"{name} takes one of {list(tunable.choices or ())}: use a categorical")
    if tunable.kind == "int" and isinstance(param, FloatParam):
        raise ValueError(f"{name} is an integer: use type int")
    _check_value(name, tunable, param.low)
    _check_value(name, tunable, param.high)


def _check_value(name: str, tunable: Tunable, value: Any) -> None:
    if tunable.kind == "str":
        if value not in (tunable.choices or ()):
            raise ValueError(f"{name}={value!r} is not one of {list(tunable.choices or ())}")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    if tunable.kind == "int" and not float(value).is_integer():
        raise ValueError(f"{name}={value!r} must be an integer")
    if tunable.low is not None and value < tunable.low:
        raise ValueError(f"{name}={value!r} is below its minimum {tunable.low}")
    if tunable.high is not None and value > tunable.high:
        raise ValueError(f"{name}={value!r} is above its maximum {tunable.high}")


class FieldError(Exception):
    """A cross-field rule broken at a known location (raised through pydantic untouched)."""

    def __init__(self, loc: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.loc = loc
        self.reason = reason


@dataclass(frozen=True)
class Problem:
    """One reason a spec is invalid: the field path and why."""

    loc: tuple[str | int, ...]
    reason: str

    @property
    def field(self) -> str:
        """Dotted field path, e.g. ``search_space.learning_rate.low``."""
        return ".".join(str(part) for part in self.loc)


class SpecError(ValueError):
    """A spec failed validation; ``problems`` names every field and reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field or 'spec'}: {p.reason}" for p in problems))
        self.problems = problems


def validate_spec(
    data: Any,
    policy: PathPolicy | None = None,
    tracking: TrackingPolicy | None = None,
    check_files: bool = False,
) -> StudySpec:
    """Validate a parsed spec; raises ``SpecError`` listing each bad field and its reason.

    ``policy`` (the server's data and model roots) confines local paths; without it (a stored,
    already checked spec, or a local check) paths need only exist. ``tracking`` (the server's
    default tracking URI and allowed hosts) checks a tracking URI and fills in the default.
    ``check_files`` reads the first rows of the data files (headers, labels, tags): at submit and
    in ``hpo validate``, not again for a stored spec.
    """
    try:
        context = {POLICY_KEY: policy, TRACKING_KEY: tracking, FILES_KEY: check_files}
        return StudySpec.model_validate(data, context=context)
    except FieldError as exc:
        raise SpecError([Problem(exc.loc, exc.reason)]) from None
    except ValidationError as exc:
        problems = [Problem(_public_loc(e["loc"]), _clean(e["msg"])) for e in exc.errors()]
        raise SpecError(problems) from None


def _public_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # Drop the union tag pydantic inserts: ("search_space", "lr", "float", "low") → without "float".
    if len(loc) > 2 and loc[0] == "search_space" and loc[2] in ("float", "int", "categorical"):
        return (*loc[:2], *loc[3:])
    return loc


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message
