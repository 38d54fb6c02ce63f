"""Which data set a run trains on: the spec's own where it can be had, else the spec's fallback."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from shared.datasets import CATALOG, DatasetUnavailable, DataSources, locate, same_shape
from shared.spec import DatasetSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetChoice:
    """The data set a run really used, where it came from, and why it is not the one asked for."""

    requested: str
    used: str
    source: str  # local | download | generated | shipped
    where: str | None  # the folder read, or the mirror that served the files
    reason: str | None = None  # set when the fallback stands in for the requested data set

    def to_dict(self) -> dict[str, Any]:
        """As stored on the experiment and shown in its JSON."""
        return asdict(self)


def resolve_dataset(
    spec: DatasetSpec, sources: DataSources, *, only: str | None = None
) -> tuple[DatasetSpec, DatasetChoice]:
    """The data set to load, and the record of the choice; DatasetUnavailable if none can be had.

    `only`: the data set a checkpoint was trained on, so a resumed run never switches data.
    """
    names = [only] if only else [spec.name, *([spec.fallback] if spec.fallback else [])]
    if not all(same_shape(CATALOG[name], CATALOG[spec.name]) for name in names):
        raise ValueError(f"{names[-1]} cannot stand in for {spec.name}: not the same shape")
    errors: list[str] = []
    for name in names:
        try:
            found = locate(name, sources)
        except DatasetUnavailable as exc:
            log.warning("%s", exc)
            errors.append(str(exc))
            continue
        reason = None
        if name != spec.name:
            reason = "; ".join(errors) or f"the checkpoint being resumed was trained on {name}"
        choice = DatasetChoice(spec.name, name, found.source, found.where, reason)
        return spec.model_copy(update={"name": name, "fallback": None}), choice
    if len(errors) > 1:
        raise DatasetUnavailable(f"{errors[0]}; nor its fallback: {'; '.join(errors[1:])}")
    raise DatasetUnavailable(errors[0])
