"""Several experiments' curves on one plot: the data behind /api/v1/compare/{name}."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.plots import build as b
from api.plots import data as d
from api.plots.params import PlotParamError
from shared.models import Experiment

COMPARABLE = ("loss", "eval")


def label(experiment: Experiment) -> str:
    """How an experiment is named in a legend: its name and the start of its id."""
    return f"{experiment.name} {str(experiment.id)[:8]}"


def gather(
    session: Session, experiments: list[Experiment], name: str, smooth: int | None = None
) -> dict[str, Any]:
    """Each experiment's series of plot `name`, labelled 'experiment/variant'."""
    if name not in COMPARABLE:
        raise PlotParamError("name", f"no comparison plot '{name}'", COMPARABLE)
    sources = [d.Source.of(e) for e in experiments]
    tasks = sorted({s.task for s in sources})
    if name == "eval" and len(tasks) > 1:
        raise PlotParamError("ids", "evaluations of different tasks do not compare", tasks)
    series: list[dict[str, Any]] = []
    spe: set[int | None] = set()
    for src in sources:
        one = d.loss(session, src, smooth) if name == "loss" else d.evaluation(session, src)
        spe.add(one.get("steps_per_epoch"))
        for s in one["series"]:
            series.append({**s, "label": f"{label(src.experiment)}/{s['label']}"})
    out: dict[str, Any] = {
        "experiment_ids": [str(e.id) for e in experiments],
        "variants": [s["label"] for s in series],
        "series": series,
    }
    if name == "loss":
        out.update(smooth=smooth or 1, title="Training loss per step, compared")
    else:
        out.update(
            task=tasks[0],
            train_is=b.train_is(tasks[0]),
            steps_per_epoch=spe.pop() if len(spe) == 1 else None,
            title="Evaluations, compared",
        )
    return b.clean(out)
