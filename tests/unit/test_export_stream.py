"""The CSV export streams: memory stays flat however many points the experiment has."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

from sqlalchemy import insert

from api.exports.tables import RunRef, csv_stream
from shared.db import session_scope
from shared.models import Experiment, Metric, Run
from tests.migration_check import upgrade_and_diff

ROOT = Path(__file__).resolve().parents[2]

POINTS = 100_000


def test_a_large_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'export.sqlite3'}"
    assert upgrade_and_diff(url) == []
    experiment_id, run_id = uuid.uuid4(), uuid.uuid4()
    with session_scope(url) as session:
        session.add(Experiment(id=experiment_id, name="big", queue="any", spec={}))
        session.add(Run(id=run_id, experiment_id=experiment_id, position=0, variant="v", seed=3))
        session.flush()
        session.execute(
            insert(Metric),
            [
                {"run_id": run_id, "key": "train_loss", "step": s, "value": s / 7}
                for s in range(POINTS)
            ],
        )
    runs = [RunRef(experiment_id, run_id, "v", 3)]
    tracemalloc.start()
    size = lines = 0
    last = ""
    for chunk in csv_stream(url, runs, "metrics"):
        size += len(chunk)
        lines += chunk.count("\n")
        last = chunk or last
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lines == POINTS + 1
    # The rows in flight (one yield_per batch, one chunk), not the export: about 3 MiB here
    # whether it has a hundred thousand points or ten million.
    assert peak < size / 2, f"peak {peak} bytes for a {size}-byte export"
    row = list(csv.reader(io.StringIO(last.splitlines()[-1])))[0]
    assert row == [
        str(experiment_id),
        str(run_id),
        "v",
        "3",
        "train_loss",
        str(POINTS - 1),
        repr((POINTS - 1) / 7),
    ]


def test_the_api_loads_tensorboard_only_for_that_export() -> None:
    probe = (
        "import sys, api.main; "
        "print(sorted(m for m in ('tensorboard', 'torch', 'google.protobuf') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
