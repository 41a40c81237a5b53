"""A study's trials as an in-memory Optuna study, and Optuna's plots of it (``hpo plots``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from search_spaces.converters import to_distributions
from search_spaces.spec import validate_spec
from service.population_plot import write_population_tree
from service.schemas import StudyPublic, TrialPublic

PLOTTED_STATES = {
    "COMPLETE": optuna.trial.TrialState.COMPLETE,
    "PRUNED": optuna.trial.TrialState.PRUNED,
    "FAIL": optuna.trial.TrialState.FAIL,
}


def optuna_study(study: StudyPublic, trials: list[TrialPublic]) -> optuna.Study:
    """An in-memory Optuna study holding the finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = validate_spec(study.spec)
    distributions = to_distributions(spec)
    directions = [goal.direction or "maximize" for goal in spec.goals]
    loaded = optuna.create_study(directions=directions, study_name=study.optuna_study_name)
    for t in trials:
        state = PLOTTED_STATES.get(t.state)
        raw = t.values if t.values is not None else [t.value]
        values = [float(v) for v in raw if v is not None]
        if state is None or (state == optuna.trial.TrialState.COMPLETE and len(values) != len(raw)):
            continue
        params = {k: v for k, v in t.params.items() if k in distributions}
        loaded.add_trial(
            optuna.trial.create_trial(
                state=state,
                params=params,
                distributions={k: distributions[k] for k in params},
                values=values if state == optuna.trial.TrialState.COMPLETE else None,
                intermediate_values={
                    k: v for k, v in t.intermediate_values.items() if v is not None
                },
                user_attrs={"number": t.number},
            )
        )
    return loaded


def write_plots(
    loaded: optuna.Study, study: StudyPublic, directory: Path, trials: list[TrialPublic]
) -> tuple[list[Path], dict[str, str]]:
    """Each plot as ``<name>.png`` and ``<name>.html``, and the population tree of a PBT / PB2
    study (``trials``, as the API gave them); plots that cannot be drawn are skipped with their
    reason."""
    spec = validate_spec(study.spec)
    metric = spec.goals[0].metric
    target: Callable[[optuna.trial.FrozenTrial], float] | None = None
    if len(spec.goals) > 1:
        target = _first_value
    common: dict[str, Any] = {"target": target, "target_name": metric}
    charts: dict[str, tuple[str, dict[str, Any]]] = {
        "optimization_history": ("plot_optimization_history", common),
        "parallel_coordinate": ("plot_parallel_coordinate", common),
        "param_importances": ("plot_param_importances", common),
    }
    if len(spec.goals) > 1:
        names = [goal.metric for goal in spec.goals]
        charts["pareto_front"] = ("plot_pareto_front", {"target_names": names})
    if any(t.intermediate_values for t in loaded.trials):
        charts["intermediate_values"] = ("plot_intermediate_values", {})
    written: list[Path] = []
    skipped: dict[str, str] = {}
    for name, (function, kwargs) in charts.items():
        try:
            written.extend(_draw(loaded, directory, name, function, kwargs))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            skipped[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if any(t.lineage for t in trials):
        written.append(write_population_tree(trials, directory, metric))
    return written, skipped


def _draw(
    loaded: optuna.Study, directory: Path, name: str, function: str, kwargs: dict[str, Any]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = getattr(optuna.visualization.matplotlib, function)(loaded, **kwargs)
    figure = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
    png = directory / f"{name}.png"
    figure.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(figure)
    html = directory / f"{name}.html"
    getattr(optuna.visualization, function)(loaded, **kwargs).write_html(
        html, include_plotlyjs=True
    )
    return [png, html]


def _first_value(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.values[0])
