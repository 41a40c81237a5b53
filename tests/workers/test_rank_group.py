"""The kept DDP worker group on a real local Ray: reuse, a stop at an epoch boundary, a failed rank.

Rank 0 runs in a Ray actor standing in for a Tune trial process (``torch.distributed`` is
per process, so not in pytest's); rank 1 is the group's own ``RankWorker`` actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from search_spaces.tunables import TUNABLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _hp(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    values.update(epochs=3, batch_size=16, max_seq_length=32, learning_rate=3e-3)
    return {**values, **overrides}


@ray.remote(num_cpus=0)
class TrialProcess:
    """Rank 0 of a group, as a trial process runs it (``workers.trainable._fit_on_kept_group``)."""

    def run(
        self, data_refs: tuple[Any, ...], stop_after: int | None = None, rank_model: str = ""
    ) -> dict[str, Any]:
        """One trial; ``stop_after``: Tune stops it after that epoch's report; ``rank_model``:
        a model for ranks 1..N-1 only (a directory without one makes rank 1 fail)."""
        from workers.rank_group import group_for, run_on_group
        from workers.train_loop import run_training

        group = group_for(2, 0.5, 0.0, 1)
        data = ray.get(data_refs[0])
        hp = _hp()
        epochs: list[float] = []

        def report(metrics: dict[str, Any]) -> None:
            epochs.append(metrics["epoch"])
            if stop_after is not None and metrics["epoch"] >= stop_after:
                raise SystemExit(0)  # what Tune's report raises in a trial it stops

        def rank_zero(send: Any) -> None:
            run_training(hp, data, "tiny-bert", report=send)

        options = {"hp": hp, "model": rank_model or "tiny-bert", "data_refs": data_refs,
                   "started_at": None, "auto_batch_size": False}  # fmt: skip
        outcome = "finished"
        try:
            run_on_group(group, options, rank_zero, report)
        except SystemExit:
            outcome = "stopped"
        except RuntimeError as exc:
            outcome = f"error: {exc}"
        return {"outcome": outcome, "epochs": epochs, "pids": group.pids,
                "trials": group.trials, "broken": group.broken}  # fmt: skip


@pytest.fixture(scope="module")
def data_refs() -> Iterator[tuple[Any, ...]]:
    from workers.data import synthetic_sentiment, tokenize
    from workers.tiny_bert import build_tiny_bert_tokenizer

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        text = synthetic_sentiment(n_train=128, n_eval=64, seed=0)
        yield (ray.put(tokenize(text, build_tiny_bert_tokenizer(), max_length=32)),)
    finally:
        ray.shutdown()


@pytest.mark.timeout(300)
def test_group_is_kept_across_trials_stops_together_and_is_replaced_after_a_failure(
    data_refs: tuple[Any, ...], tmp_path: Path
) -> None:
    trial = TrialProcess.remote()  # type: ignore[attr-defined]
    first = ray.get(trial.run.remote(data_refs))
    assert first["outcome"] == "finished" and first["epochs"] == [1.0, 2.0, 3.0]
    assert first["trials"] == 1

    # Stopped after epoch 1: both ranks leave at that boundary and the group stays usable.
    stopped = ray.get(trial.run.remote(data_refs, stop_after=1), timeout=120)
    assert stopped["outcome"] == "stopped" and stopped["epochs"] == [1.0]
    assert stopped["pids"] == first["pids"] and stopped["trials"] == 2

    again = ray.get(trial.run.remote(data_refs), timeout=120)
    assert again["outcome"] == "finished" and again["epochs"] == [1.0, 2.0, 3.0]
    assert again["pids"] == first["pids"] and again["trials"] == 3

    # Rank 1 fails: rank 0 does not wait for a collective timeout; the trial names rank 1's
    # error, and the next trial gets a new group.
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    failed = ray.get(trial.run.remote(data_refs, rank_model=str(no_model)), timeout=120)
    assert failed["outcome"].startswith("error: DDP rank 1 failed"), failed
    assert "config.json" in failed["outcome"] and failed["broken"]
    after = ray.get(trial.run.remote(data_refs), timeout=120)
    assert after["outcome"] == "finished" and after["trials"] == 1
    assert after["pids"] != first["pids"]
