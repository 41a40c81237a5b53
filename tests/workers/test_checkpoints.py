"""Trial checkpoints: the save/load round trip, verification, and resuming the training loop
exactly where it stopped."""

from __future__ import annotations

import json
import random
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces.tunables import TUNABLES
from workers.checkpoints import (
    CHECKPOINT_DIR_KEY,
    MANIFEST,
    STATE,
    CheckpointPlan,
    CheckpointTooLarge,
    Progress,
    checkpoint_problem,
    first_whole,
    read_checkpoint,
    rng_states,
    set_rng_states,
    write_checkpoint,
)
from workers.data import TokenizedData, synthetic_sentiment, tokenize
from workers.lr_schedule import linear_schedule_with_warmup
from workers.tiny_bert import build_tiny_bert_tokenizer
from workers.train_loop import run_training

COMPARED = ("eval_accuracy", "eval_f1", "eval_loss", "train_loss", "epoch")


def _small_model_state() -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = linear_schedule_with_warmup(optimizer, 2, 10)
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def test_state_round_trips_exactly() -> None:
    model, optimizer, scheduler = _small_model_state()
    progress = Progress(epochs_done=3, history=[{"eval_loss": 0.5}], sizes=[10])
    random.seed(4)
    np.random.seed(4)
    rngs = rng_states()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": [rngs],
    }
    directory = write_checkpoint(state, progress)
    try:
        assert checkpoint_problem(directory) is None
        assert sorted(p.name for p in directory.iterdir()) == [MANIFEST, "progress.json", STATE]
        loaded, read_progress = read_checkpoint(directory, torch.device("cpu"))
    finally:
        shutil.rmtree(directory)
    assert read_progress == progress

    fresh, fresh_optimizer, fresh_scheduler = _small_model_state()  # same shapes, then reload
    torch.nn.init.zeros_(fresh[0].weight)
    fresh.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    fresh_scheduler.load_state_dict(loaded["scheduler"])
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name]), name
    for key, moments in optimizer.state_dict()["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, fresh_optimizer.state_dict()["state"][key][name]), name
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()

    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    set_rng_states(loaded["rng"][0])
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def _hp(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    values.update(epochs=3, batch_size=16, max_seq_length=32, learning_rate=3e-3)
    values.update(warmup_ratio=0.2, num_threads=1)
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def data() -> TokenizedData:
    text = synthetic_sentiment(n_train=64, n_eval=32, seed=0)
    return tokenize(text, build_tiny_bert_tokenizer(), max_length=32)


def _train(data: TokenizedData, plan: CheckpointPlan | None, **hp: Any) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    run_training(
        _hp(**hp), data, "tiny-bert", reports.append, device=torch.device("cpu"), checkpoints=plan
    )
    return reports


def _as_tune_keeps(reports: list[dict[str, Any]], trial_dir: Path) -> list[Path]:
    """Move each report's checkpoint to ``checkpoint_00000N`` as Tune stores them."""
    kept = []
    for index, report in enumerate(r for r in reports if CHECKPOINT_DIR_KEY in r):
        target = trial_dir / f"checkpoint_{index:06d}"
        shutil.move(report.pop(CHECKPOINT_DIR_KEY), target)
        kept.append(target)
    return kept


def test_a_resumed_run_continues_exactly_and_skips_a_truncated_checkpoint(
    data: TokenizedData, tmp_path: Path
) -> None:
    plan = CheckpointPlan(every_epochs=1, keep=2, max_bytes=10**9)
    whole = _train(data, plan)
    kept = _as_tune_keeps(whole, tmp_path)
    assert len(kept) == 2  # after epochs 1 and 2, none after the last
    assert [r["epochs_trained"] for r in whole] == [1, 2, 3]
    assert all("resumed_from_epoch" not in r for r in whole)
    assert whole[-1]["checkpoint_bytes_total"] > whole[0]["checkpoint_bytes_total"] > 0

    # Resume from the newest (after epoch 2): epoch 3 as before.
    resumed = _train(data, CheckpointPlan(1, 2, 10**9, latest=str(kept[-1])))
    assert [r["epoch"] for r in resumed] == [3.0]
    assert resumed[0]["resumed_from_epoch"] == 2 and resumed[0]["epochs_trained"] == 1
    assert {k: resumed[0][k] for k in COMPARED} == {k: whole[2][k] for k in COMPARED}

    # Truncate it: the one before (after epoch 1) is used, and the reason is reported.
    state = kept[-1] / STATE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    assert "truncated" in (checkpoint_problem(kept[-1]) or "")
    assert first_whole(kept[-1])[0] == kept[0]
    fallback = _train(data, CheckpointPlan(1, 2, 10**9, latest=str(kept[-1])))
    for report in fallback:
        shutil.rmtree(report.pop(CHECKPOINT_DIR_KEY, tmp_path / "none"), ignore_errors=True)
    assert [r["epoch"] for r in fallback] == [2.0, 3.0]
    assert all(r["resumed_from_epoch"] == 1 for r in fallback)
    assert "checkpoint_000001: state.pt is truncated" in fallback[0]["checkpoint_skipped"]
    for got, expected in zip(fallback, whole[1:], strict=True):
        assert {k: got[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}


def test_a_restored_checkpoint_trains_on_with_this_trials_own_learning_rate(
    data: TokenizedData, tmp_path: Path
) -> None:
    """PBT restores another trial's checkpoint under explored hyperparameters: the optimizer
    state comes from the checkpoint, the learning rate from this trial. At a rate of 0 the
    resumed epoch leaves the copied weights as they were (the checkpoint's own rate would not)."""
    whole = _train(data, CheckpointPlan(every_epochs=1, keep=2, max_bytes=10**9))
    kept = _as_tune_keeps(whole, tmp_path)
    frozen = _train(data, CheckpointPlan(1, 2, 10**9, latest=str(kept[-1])), learning_rate=0.0)
    assert frozen[0]["resumed_from_epoch"] == 2
    assert frozen[0]["eval_loss"] == pytest.approx(whole[1]["eval_loss"], abs=1e-7)
    assert frozen[0]["eval_loss"] != pytest.approx(whole[2]["eval_loss"], abs=1e-7)


def test_a_corrupt_only_checkpoint_starts_fresh(data: TokenizedData, tmp_path: Path) -> None:
    directory = tmp_path / "checkpoint_000000"
    directory.mkdir()
    (directory / STATE).write_bytes(b"not a checkpoint")  # and no manifest
    reports = _train(data, CheckpointPlan(0, 2, 10**9, latest=str(directory)), epochs=1)
    assert "resumed_from_epoch" not in reports[0] and reports[0]["epochs_trained"] == 1
    assert "no manifest.json" in reports[0]["checkpoint_skipped"]


def test_a_checkpoint_over_the_limit_fails_the_trial(data: TokenizedData) -> None:
    with pytest.raises(CheckpointTooLarge, match=r"over checkpoint.max_bytes \(1000 bytes\)"):
        _train(data, CheckpointPlan(1, 2, max_bytes=1000), epochs=2)


def _ddp_resume_worker(rank: int, port: int, data: TokenizedData, out: str) -> None:
    """Train 3 epochs as one of 2 gloo ranks, then again from rank 0's epoch-1 checkpoint."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        whole = _train(data, CheckpointPlan(1, 2, 10**9))
        first = Path(out, "first")
        if rank == 0:
            assert CHECKPOINT_DIR_KEY in whole[0]
            shutil.move(whole[0].pop(CHECKPOINT_DIR_KEY), first)
            shutil.rmtree(whole[1].pop(CHECKPOINT_DIR_KEY))
        else:  # rank 0 writes; the others only hand over their RNG states
            assert all(CHECKPOINT_DIR_KEY not in r for r in whole)
        dist.barrier()
        resumed = _train(data, CheckpointPlan(1, 2, 10**9, latest=str(first)))
        for report in resumed:
            shutil.rmtree(report.pop(CHECKPOINT_DIR_KEY, Path(out, "none")), ignore_errors=True)
        kept = [{k: r[k] for k in (*COMPARED, "epochs_trained")} for r in (*whole, *resumed)]
        Path(out, f"rank{rank}.json").write_text(json.dumps(kept))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(240)
def test_ddp_rank_zero_writes_and_every_rank_resumes_exactly(
    data: TokenizedData, tmp_path: Path
) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mp.spawn(_ddp_resume_worker, args=(port, data, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    whole, resumed = ranks[0][:3], ranks[0][3:]
    assert [r["epochs_trained"] for r in resumed] == [1, 2]
    strip = [{k: r[k] for k in COMPARED} for r in resumed]
    assert strip == [{k: r[k] for k in COMPARED} for r in whole[1:]]


def test_fault_injection_after_an_epoch_fails_only_the_first_attempts_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.faults import FAULT_ENV, InjectedFailure, maybe_fail, maybe_fail_after_epoch

    monkeypatch.setenv(FAULT_ENV, "trial=0,after_epoch=2,failures=1")
    maybe_fail(0, str(tmp_path))  # not at the start
    maybe_fail_after_epoch(0, 1, str(tmp_path))
    maybe_fail_after_epoch(1, 2, str(tmp_path))  # another trial
    with pytest.raises(InjectedFailure, match="trial 0 after epoch 2, attempt 1"):
        maybe_fail_after_epoch(0, 2, str(tmp_path))
    maybe_fail_after_epoch(0, 2, str(tmp_path))  # the retry gets past it
