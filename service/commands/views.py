"""Rich renderings of studies, trials and events for people (``--json`` skips them)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from service.client import Event
from service.schemas import StudyPublic, TrialPublic

STATE_STYLE = {
    "COMPLETE": "green",
    "SUCCEEDED": "green",
    "RUNNING": "cyan",
    "RESUMING": "cyan",
    "QUEUED": "yellow",
    "WAITING": "yellow",
    "PRUNED": "magenta",
    "FAIL": "red",
    "FAILED": "red",
    "CANCELLED": "red",
}


def styled(state: str) -> str:
    """A status or state in its colour."""
    style = STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def number(value: float | None) -> str:
    """A short display of a metric value."""
    if value is None:
        return "-"
    return f"{value:.6g}"


def studies_table(studies: list[StudyPublic], count: int) -> Table:
    """One row per study, newest first."""
    table = Table(title=f"{len(studies)} of {count} studies", title_justify="left")
    for column in ("id", "name", "status", "algorithm", "trials", "best", "created"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for s in studies:
        done = sum(s.trial_counts.values())
        table.add_row(
            s.id,
            s.name,
            styled(s.status),
            str(s.spec.get("algorithm", "")),
            f"{done}/{s.spec.get('budget', {}).get('n_trials', '?')}",
            number(s.best_value),
            s.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


def study_table(s: StudyPublic) -> Table:
    """One study as a two-column table."""
    table = Table(show_header=False, title=f"study {s.id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    goals = s.spec.get("objectives") or [s.spec.get("objective", {})]
    rows: list[tuple[str, Any]] = [
        ("name", s.name),
        ("status", styled(s.status) + (f" ({s.status_reason})" if s.status_reason else "")),
        ("algorithm", s.spec.get("algorithm")),
        ("objective", ", ".join(f"{g.get('direction')} {g.get('metric')}" for g in goals)),
        ("trials", _counts(s.trial_counts)),
        ("best value", number(s.best_value)),
        ("attempts", s.attempts),
        ("ray job", s.ray_job_id or "-"),
        ("ray dashboard", s.dashboard_url or "-"),
        ("optuna study", s.optuna_study_name),
        ("created", s.created_at.isoformat(timespec="seconds")),
        ("finished", s.finished_at.isoformat(timespec="seconds") if s.finished_at else "-"),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def trials_table(trials: list[TrialPublic], count: int) -> Table:
    """One row per trial: number, state, value(s), duration and parameters."""
    table = Table(title=f"{len(trials)} of {count} trials", title_justify="left")
    for column in ("#", "state", "value", "duration s"):
        table.add_column(column, justify="right" if column != "state" else "left")
    names = sorted({name for t in trials for name in t.params})
    for name in names:
        table.add_column(name, justify="right")
    for t in trials:
        values = t.values if t.values and len(t.values) > 1 else [t.value]
        table.add_row(
            str(t.number),
            styled(t.state),
            ", ".join(number(v) for v in values),
            number(t.duration_s),
            *(_param(t.params.get(name)) for name in names),
        )
    return table


def trial_table(t: TrialPublic) -> Table:
    """One trial as a two-column table: value, parameters and metrics."""
    table = Table(show_header=False, title=f"trial #{t.number}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", styled(t.state))
    values = t.values if t.values and len(t.values) > 1 else [t.value]
    table.add_row("value", ", ".join(number(v) for v in values))
    table.add_row("duration s", number(t.duration_s))
    for name, value in t.params.items():
        table.add_row(f"param {name}", _param(value))
    for name, value in t.metrics.items():
        table.add_row(f"metric {name}", _param(value))
    return table


def event_line(event: Event) -> str:
    """One line per event of the stream."""
    data = {k: v for k, v in event.data.items() if k != "at"}
    at = str(event.data.get("at", ""))[11:19]
    if event.kind == "status":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"{at} status {styled(str(data.get('status')))}{reason}"
    details = " ".join(f"{k}={_param(v)}" for k, v in data.items())
    return f"{at} {event.kind} {details}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())) or "none yet"


def _param(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
    return "-" if value is None else str(value)
