"""``/studies/{id}/best/artifact``: the best trial's saved model as a tar.gz."""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from search_spaces.protocol import ARTIFACTS_DIR, BEST_DIR
from search_spaces.registry import SIMULATED_MODELS
from service.api.studies import require_study
from service.auth.principal import PrincipalDep
from service.deps import SettingsDep, StoreDep, TrialsDep
from service.store import StudyRecord, TrialQueries
from service.store.studies import FINAL_STATES

router = APIRouter(prefix="/studies", tags=["trials"])

CHUNK_BYTES = 1024 * 1024
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        "description": "tar.gz of the best trial's model directory",
    },
    404: {"description": "Unknown study, or the study kept no model (the reason says why)"},
}


def best_model_dir(results_dir: str, study_id: str) -> Path:
    """``<results_dir>/artifacts/<study_id>/best``."""
    return Path(results_dir) / ARTIFACTS_DIR / study_id / BEST_DIR


@router.get("/{study_id}/best/artifact", response_class=StreamingResponse, responses=_RESPONSES)
def download_best_artifact(
    study_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    trials: TrialsDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """The best trial's fine-tuned model as a tar.gz (``application/gzip``, sent as the
    attachment ``<study_id>-best.tar.gz``).

    Every fine-tuning trial saves its final model and tokenizer (``save_pretrained``); while the
    study runs only the best completed trial's copy is kept, and when it ends that copy becomes
    the study's best model. The archive's members are relative to the model directory:
    unpacked into DIR, ``AutoModelForSequenceClassification.from_pretrained(DIR)`` and
    ``AutoTokenizer.from_pretrained(DIR)`` load it offline (the tokenizer truncates at the
    trial's ``max_seq_length``), and ``DIR/hpo_trial.json`` names the trial: {study_id,
    trial_number, value, params}. On a multi-objective study the model is the first trial of
    the Pareto front (by number). ``hpo export ID DIR`` downloads and unpacks it.

    404 with the reason when the study is unknown or kept no model: the toy objective, a study
    still queued or running, no completed trial, or a best trial that saved none.
    """
    study = require_study(store, study_id, principal)
    directory = best_model_dir(settings.results_dir, study.id)
    reason = _no_model_reason(study, directory, trials)
    if reason is not None:
        raise HTTPException(404, f"study {study.id!r} kept no model: {reason}")
    archive = _archive(directory)
    return StreamingResponse(
        _chunks(archive),
        media_type="application/gzip",
        headers={"Content-Disposition": f"attachment; filename={study.id}-best.tar.gz"},
    )


def _no_model_reason(study: StudyRecord, directory: Path, trials: TrialQueries) -> str | None:
    """Why the study has no model to download, or None when it has one."""
    task = study.spec.get("task") or {}
    if task.get("model") in SIMULATED_MODELS:
        return f"{task['model']} objective"
    if study.status not in FINAL_STATES:
        state = "queued" if study.status == "QUEUED" else "still running"
        return f"{state} (status {study.status})"
    if directory.is_dir() and any(p.is_file() for p in directory.iterdir()):
        return None
    optuna_id = trials.study_id(study.optuna_study_name)
    best = None
    if optuna_id is not None:
        if len(trials.directions(optuna_id)) > 1:
            front = trials.pareto(optuna_id)
            best = front[0] if front else None
        else:
            best = trials.best(optuna_id)
    if best is None:
        return f"no completed trial yet (status {study.status})"
    if study.status == "CANCELLED":
        return f"cancelled before the best trial's model (number {best.number}) was kept"
    return f"its best trial (number {best.number}) saved none (status {study.status})"


def _archive(directory: Path) -> IO[bytes]:
    """A temporary file holding ``directory``'s regular files as a tar.gz, at offset 0.

    Members are named relative to ``directory`` (no absolute paths, no ``..``); symbolic
    links are left out.
    """
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _chunks or on error)
    try:
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for path in sorted(directory.rglob("*")):
                if path.is_symlink() or not path.is_file():
                    continue
                info = tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
        archive.seek(0)
    except BaseException:
        archive.close()
        raise
    return archive


def _chunks(archive: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := archive.read(CHUNK_BYTES):
            yield chunk
    finally:
        archive.close()
