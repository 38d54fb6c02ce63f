"""Experiments, runs, findings and workers as rich tables for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Column, Table


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _spread(found: dict[str, Any]) -> str:
    """mean ± std across seeds (no ± with a single seed)."""
    if not isinstance(found, dict) or found.get("mean") is None:
        return "-"
    text = _num(found["mean"])
    return text if (found.get("n") or 0) < 2 else f"{text} ± {found['std']:.2g}"


def experiments_table(experiments: list[dict[str, Any]]) -> Table:
    table = Table(Column("id", no_wrap=True, min_width=36), "name", "preset", "status")
    table.add_column("progress")
    table.add_column("created")
    for e in experiments:
        table.add_row(
            e["id"],
            e["name"],
            e.get("preset") or "-",
            e["status"],
            f"{e['progress']:.0%}",
            e["created_at"][:19].replace("T", " "),
        )
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    keys = sorted({k for run in runs for k, v in (run.get("summary") or {}).items() if _scalar(v)})
    run_column = Column("run", no_wrap=True, min_width=36)
    table = Table(run_column, "variant", "seed", "status", *keys, title="runs")
    for run in runs:
        summary = run.get("summary") or {}
        table.add_row(
            run["id"], run["variant"], str(run["seed"]), run["status"],
            *(_num(summary.get(k)) for k in keys),
        )  # fmt: skip
    return table


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, int | float)


def findings_tables(findings: dict[str, Any] | None) -> Group:
    """Per-variant measures (mean ± std across seeds), then each pair's statements."""
    if not findings or not findings.get("variants"):
        return Group("no findings yet")
    variants = findings["variants"]
    measures = sorted({m for found in variants.values() for m in found})
    table = Table("measure", *variants, title="findings (mean ± std across seeds)")
    for measure in measures:
        table.add_row(measure, *(_spread(variants[v].get(measure, {})) for v in variants))
    pairs = Table("pair", "finding", title="compared seed by seed")
    for pair in findings.get("pairs", []):
        for statement in pair.get("statements", []):
            pairs.add_row(f"{pair['a']} vs {pair['b']}", statement)
    return Group(table, pairs) if pairs.row_count else Group(table)


def experiment_view(experiment: dict[str, Any]) -> Group:
    """Header lines, the runs, the findings."""
    lines = [
        f"[bold]{experiment['name']}[/] {experiment['id']}",
        f"status {experiment['status']}  progress {experiment['progress']:.0%}  "
        f"preset {experiment.get('preset') or '-'}  queue {experiment['queue']}  "
        f"attempt {experiment['attempt']}",
        f"created {experiment['created_at']}  finished {experiment.get('finished_at') or '-'}",
    ]
    if experiment.get("error"):
        lines.append(f"[red]error: {experiment['error']}[/]")
    findings = findings_tables(experiment.get("findings"))
    return Group(*lines, runs_table(experiment["runs"]), findings)


def workers_view(fleet: dict[str, Any]) -> Group:
    worker = Column("worker", no_wrap=True, min_width=24)  # an id is host:pid:suffix, never cut
    table = Table(worker, "host", "queues", "device", "training", "steps/s", "last seen", "alive")
    for w in fleet["workers"]:
        table.add_row(
            w["id"], w["host"], ",".join(w["queues"]), w["device"] or "-",
            w.get("experiment_id") or ("busy" if w.get("busy") else "idle"),
            _num(w.get("steps_per_s")), w["last_seen"][:19].replace("T", " "),
            "yes" if w["alive"] else "no",
        )  # fmt: skip
    depth = Table("queue", "waiting", title="queues")
    for queue, count in fleet["queues"].items():
        depth.add_row(queue, "?" if count is None else str(count))
    return Group(table, depth)
