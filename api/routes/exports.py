"""Exports: CSV in long format (streamed) and TensorBoard event files, for the owner only."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from api import service
from api.deps import CurrentOwner, SessionDep, SettingsDep
from api.exports.tables import csv_stream, run_refs

router = APIRouter(prefix="/api/v1/experiments", tags=["exports"])

CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, streamed"},
    404: {},
}
ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "a zip of event files"},
    404: {},
}


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _csv_export(
    session: SessionDep,
    experiment_id: uuid.UUID,
    owner: str,
    settings: SettingsDep,
    table: str,
    suffix: str,
) -> StreamingResponse:
    """The owner's experiment's rows of `table`, streamed as a CSV attachment."""
    experiment = service.get_experiment(session, experiment_id, owner)
    stream = csv_stream(settings.resolved_database_url, run_refs(experiment), table)
    headers = _attachment(f"{experiment.name}-{str(experiment.id)[:8]}{suffix}.csv")
    return StreamingResponse(stream, media_type="text/csv", headers=headers)


@router.get(
    "/{experiment_id}/export.csv",
    operation_id="exports-csv",
    response_class=StreamingResponse,
    responses=CSV,
)
def export_csv(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, settings: SettingsDep
) -> StreamingResponse:
    """Every metric point: experiment, run, variant, seed, key, step, value (one row each)."""
    return _csv_export(session, experiment_id, owner, settings, "metrics", "")


@router.get(
    "/{experiment_id}/export/histograms.csv",
    operation_id="exports-histograms-csv",
    response_class=StreamingResponse,
    responses=CSV,
)
def export_histograms_csv(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, settings: SettingsDep
) -> StreamingResponse:
    """Every histogram bin: its run, layer, kind, step, bin index, edges and count."""
    return _csv_export(session, experiment_id, owner, settings, "histograms", "-histograms")


@router.get(
    "/{experiment_id}/export/tensorboard.zip",
    operation_id="exports-tensorboard",
    response_class=FileResponse,
    responses=ZIP,
)
def export_tensorboard(
    experiment_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, settings: SettingsDep
) -> FileResponse:
    """Event files, one folder per run (variant/seed-N): `tensorboard --logdir` shows them."""
    from api.exports import tensorboard  # the tensorboard package, for this route only

    experiment = service.get_experiment(session, experiment_id, owner)
    wall_time = (experiment.started_at or experiment.created_at).timestamp()
    scratch = Path(tempfile.mkdtemp(prefix="bnlab-tb-"))
    target = scratch / "tensorboard.zip"
    try:
        tensorboard.write_zip(
            settings.resolved_database_url, run_refs(experiment), wall_time, target
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type="application/zip",
        filename=f"{experiment.name}-{str(experiment.id)[:8]}-tensorboard.zip",
        background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
    )
