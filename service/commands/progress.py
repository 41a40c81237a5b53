"""``submit --wait`` and ``demo``: follow a study to its end with a live progress view."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from rich.console import Console
from rich.live import Live
from rich.text import Text

from service.client import FINAL_STATUSES, Client
from service.commands.views import number
from service.schemas import StudyPublic


def progress_line(study: StudyPublic, now: datetime | None = None) -> str:
    """Trials done/running/pruned/failed of the budget, best value so far and an ETA."""
    counts = study.trial_counts
    n_trials = int(study.spec.get("budget", {}).get("n_trials", 0))
    done = sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
    return (
        f"{study.status}: {done}/{n_trials} trials done "
        f"({counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, "
        f"{counts.get('FAIL', 0)} failed), {counts.get('RUNNING', 0)} running; "
        f"best {number(study.best_value)}; ETA {eta(study, done, n_trials, now)}"
    )


def eta(study: StudyPublic, done: int, n_trials: int, now: datetime | None = None) -> str:
    """Time left at the pace so far (trials finished per second since the study started)."""
    if study.status in FINAL_STATUSES:
        return "0s"
    if study.started_at is None or done == 0:
        return "?"
    now = now or datetime.now(timezone.utc)
    started = study.started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    elapsed = max((now - started).total_seconds(), 0.0)
    left = elapsed / done * max(n_trials - done, 0)
    budget_s = study.spec.get("budget", {}).get("time_budget_s")
    if budget_s is not None:
        left = min(left, max(float(budget_s) - elapsed, 0.0))
    return _duration(left)


def follow(client: Client, study_id: str, console: Console, poll_s: float = 0.5) -> StudyPublic:
    """Poll the study until it is final: a live line on a terminal, one line per change else."""
    if console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                study = client.study(study_id)
                live.update(Text(progress_line(study)), refresh=True)
                if study.status in FINAL_STATUSES:
                    break
                time.sleep(poll_s)
    else:
        last = ""
        while True:
            study = client.study(study_id)
            line = progress_line(study).rsplit("; ETA", 1)[0]
            if line != last:
                console.print(progress_line(study), highlight=False, markup=False)
                last = line
            if study.status in FINAL_STATUSES:
                break
            time.sleep(poll_s)
    if study.status_reason:
        console.print(study.status_reason, highlight=False, markup=False)
    return study


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
