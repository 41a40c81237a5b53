"""The scheduler loop's decisions, with a scripted job scheduler in place of Ray (unit test)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from service.db import make_engine, metadata
from service.dispatcher import JobState
from service.lifecycle import Lifecycle
from service.monitor import StudyMonitor
from service.store import EventStore, StudyStore, TrialQueries


class ScriptedDispatcher:
    """Jobs whose states the test sets."""

    def __init__(self) -> None:
        self.states: dict[str, JobState] = {}
        self.submitted: list[str] = []
        self.stopped: list[str] = []

    def submit(self, study_id: str, attempt: int) -> str:
        job = f"{study_id}-{attempt}"
        self.submitted.append(job)
        self.states[job] = JobState("RUNNING")
        return job

    def status(self, job_id: str) -> JobState:
        return self.states.get(job_id, JobState("MISSING"))

    def stop(self, job_id: str) -> None:
        self.stopped.append(job_id)
        self.states[job_id] = JobState("STOPPED")

    def dashboard_job_url(self, job_id: str) -> str | None:
        return None

    def ping(self) -> bool:
        return True


@pytest.fixture
def parts(tmp_path: Path) -> tuple[StudyStore, ScriptedDispatcher, StudyMonitor, str]:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    store, trials = StudyStore(engine), TrialQueries(engine)
    storage = optuna.storages.RDBStorage(url)
    dispatcher = ScriptedDispatcher()
    lifecycle = Lifecycle(store, trials, EventStore(engine), dispatcher, storage)
    monitor = StudyMonitor(store, dispatcher, lifecycle, max_running=2, max_resumes=1)
    return store, dispatcher, monitor, url


def test_queue_limit_and_order(
    parts: tuple[StudyStore, ScriptedDispatcher, StudyMonitor, str],
) -> None:
    store, dispatcher, monitor, _ = parts
    ids = [store.create(f"s{i}", {}).id for i in range(3)]
    monitor.tick()
    assert dispatcher.submitted == [f"{ids[0]}-1", f"{ids[1]}-1"]
    dispatcher.states[f"{ids[0]}-1"] = JobState("SUCCEEDED", "study finished: 1 trials")
    monitor.tick()
    assert store.get(ids[0]).status == "SUCCEEDED"  # type: ignore[union-attr]
    assert dispatcher.submitted[-1] == f"{ids[2]}-1"


def test_a_tenant_at_its_running_limit_waits_while_others_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    store, dispatcher = StudyStore(engine), ScriptedDispatcher()
    lifecycle = Lifecycle(
        store, TrialQueries(engine), EventStore(engine), dispatcher, optuna.storages.RDBStorage(url)
    )
    limits = {"acme": 1}
    monitor = StudyMonitor(
        store, dispatcher, lifecycle, max_running=3, max_resumes=1, tenant_limit=limits.get
    )
    a1, a2 = (store.create(f"a{i}", {}, tenant="acme").id for i in (1, 2))
    b1 = store.create("b1", {}, tenant="bolt").id
    monitor.tick()
    assert dispatcher.submitted == [f"{a1}-1", f"{b1}-1"]  # acme's second study waits
    assert store.get(a2).status == "QUEUED"  # type: ignore[union-attr]
    dispatcher.states[f"{a1}-1"] = JobState("SUCCEEDED", "study finished: 1 trials")
    monitor.tick()
    assert dispatcher.submitted[-1] == f"{a2}-1"


def test_dead_driver_resumes_then_gives_up(
    parts: tuple[StudyStore, ScriptedDispatcher, StudyMonitor, str],
) -> None:
    store, dispatcher, monitor, url = parts
    study = store.create("s", {})
    optuna.create_study(storage=url, study_name=study.optuna_study_name)
    monitor.tick()
    loaded = optuna.load_study(study_name=study.optuna_study_name, storage=url)
    running = loaded.ask({"learning_rate": optuna.distributions.FloatDistribution(0.1, 1.0)})

    dispatcher.states[f"{study.id}-1"] = JobState("FAILED", None, "exit code -9")
    monitor.tick()
    resumed = store.get(study.id)
    assert resumed is not None and resumed.status == "RUNNING" and resumed.attempts == 2
    trials = loaded.get_trials(deepcopy=False)
    assert trials[0].number == running.number and trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["error"] == "interrupted"
    assert trials[1].state.name == "WAITING"  # its configuration queued again
    assert trials[1].params == {} and trials[1].system_attrs["fixed_params"] == running.params

    dispatcher.states[f"{study.id}-2"] = JobState("MISSING", None, "the Ray job is gone")
    monitor.tick()
    failed = store.get(study.id)
    assert failed is not None and failed.status == "FAILED"  # max_resumes = 1
    assert "died 2 times" in (failed.status_reason or "")


def test_driver_outcome_decides_the_final_state(
    parts: tuple[StudyStore, ScriptedDispatcher, StudyMonitor, str],
) -> None:
    store, dispatcher, monitor, _ = parts
    study = store.create("s", {})
    monitor.tick()
    dispatcher.states[f"{study.id}-1"] = JobState("FAILED", "study failed: all 2 trials failed")
    monitor.tick()
    ended = store.get(study.id)
    assert ended is not None and ended.status == "FAILED" and ended.attempts == 1
    assert ended.status_reason == "study failed: all 2 trials failed"


def test_an_unreachable_job_does_not_stall_the_others(
    parts: tuple[StudyStore, ScriptedDispatcher, StudyMonitor, str],
) -> None:
    store, dispatcher, monitor, _ = parts
    first, second = store.create("a", {}), store.create("b", {})
    monitor.tick()

    def broken(job_id: str) -> JobState:
        if job_id.startswith(first.id):
            raise ConnectionError("dashboard down")
        return JobState("SUCCEEDED", "study finished")

    dispatcher.status = broken  # type: ignore[method-assign]
    monitor.tick()
    assert store.get(second.id).status == "SUCCEEDED"  # type: ignore[union-attr]
    assert store.get(first.id).status == "RUNNING"  # type: ignore[union-attr]
