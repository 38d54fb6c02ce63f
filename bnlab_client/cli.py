"""The `bnlab` command: a user's side over HTTP (login, run, watch, show, ...), and the admin's
`bnlab tokens`, handed to shared.cli (it needs the database, so the server's installation).

Ids and files go to stdout, messages and live progress to stderr; `--json` on every read command
prints the API's own JSON for scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bnlab_client.client import ApiError, Client
from bnlab_client.config import Config, load_config, save_config
from bnlab_client.tables import experiment_view, experiments_table, findings_tables, workers_view

app = typer.Typer(
    name="bnlab",
    help="Train batch-norm and dropout experiments on a bnlab API, and read the results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

Json = Annotated[bool, typer.Option("--json", help="print the API's JSON (for scripts)")]
Url = Annotated[str | None, typer.Option(help="API address (default: BNLAB_URL, login file)")]


def client() -> Client:
    return Client()


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`training.epochs=5` -> {"training": {"epochs": 5}}; values are JSON, else strings."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        path, sep, raw = pair.partition("=")
        if not sep or not path:
            raise typer.BadParameter(f"{pair!r}: expected KEY.PATH=VALUE", param_hint="--set")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = overrides
        *parents, leaf = path.split(".")
        for name in parents:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise typer.BadParameter(f"{path}: {name} is set to a value", param_hint="--set")
        node[leaf] = value
    return overrides


@app.command()
def login(
    url: Url = None,
    token: Annotated[str | None, typer.Option(help="API token (prompted when not given)")] = None,
) -> None:
    """Check a token against the API and keep URL and token in the login file."""
    address = url or load_config().url
    if token is None:
        token = typer.prompt("API token (empty: none)", default="", hide_input=True)
    with Client(address, token or None) as api:
        who = api.whoami()
    path = save_config(Config(url=address.rstrip("/"), token=token or None))
    err.print(f"logged in to {address} as {who['owner']}; saved in {path}")


@app.command()
def presets(as_json: Json = False) -> None:
    """The named studies, with a sentence each."""
    with client() as api:
        found = api.presets()
    if as_json:
        return emit_json(found)
    for preset in found:
        out.print(f"[bold]{preset['name']}[/]  {preset['description']}")


@app.command()
def run(
    preset: Annotated[str | None, typer.Argument(help="a preset (see `bnlab presets`)")] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="override, e.g. training.epochs=5")
    ] = None,
    spec: Annotated[Path | None, typer.Option(help="a full spec as a JSON file")] = None,
    watch_it: Annotated[bool, typer.Option("--watch", help="follow it to the end")] = False,
    as_json: Json = False,
) -> None:
    """Submit a preset (with --set overrides) or a spec file; prints the experiment's id."""
    if (preset is None) == (spec is None):
        raise typer.BadParameter("give a PRESET or --spec FILE (one of them)")
    with client() as api:
        if spec is not None:
            if sets:
                raise typer.BadParameter("--set applies to presets; edit the spec file instead")
            experiment = api.submit(spec=json.loads(spec.read_text()))
        else:
            experiment = api.submit(preset=preset, overrides=parse_sets(sets or []))
        if as_json and not watch_it:
            return emit_json(experiment)
        err.print(f"submitted {experiment['name']} on {experiment['spec']['dataset']['name']}")
        if not as_json:
            print(experiment["id"])
        if watch_it:
            follow(api, experiment["id"], as_json)


def follow(api: Client, experiment_id: str, as_json: bool) -> None:
    """Watch to the end, then the findings; Ctrl-C stops watching, not training."""
    try:
        experiment = api.wait(experiment_id, progress=True)
    except KeyboardInterrupt:
        err.print(
            f"\nstopped watching; {experiment_id} keeps training.\n"
            f"  follow it again: bnlab watch {experiment_id}\n"
            f"  cancel it:       bnlab cancel {experiment_id}"
        )
        raise typer.Exit(130) from None
    if as_json:
        emit_json(experiment)
    else:
        out.print(findings_tables(experiment.get("findings")))
    raise typer.Exit(0 if experiment["status"] == "succeeded" else 1)


@app.command()
def watch(experiment_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False):
    """A live bar per seed group with the latest loss and time left, then the findings."""
    with client() as api:
        follow(api, experiment_id, as_json)


@app.command("ls")
def list_experiments(
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: Json = False,
) -> None:
    """Your experiments, newest first."""
    with client() as api:
        found = api.experiments(status=status, limit=limit)
    if as_json:
        return emit_json(found)
    out.print(experiments_table(found))


@app.command()
def show(experiment_id: Annotated[str, typer.Argument(metavar="ID")], as_json: Json = False):
    """One experiment: status, runs and findings as tables."""
    with client() as api:
        experiment = api.experiment(experiment_id)
        if experiment.get("findings") is None and experiment["runs"]:
            experiment["findings"] = api.findings(experiment_id)  # live while it trains
    if as_json:
        return emit_json(experiment)
    out.print(experiment_view(experiment))


@app.command()
def cancel(experiment_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel: a queued experiment never starts, a running one stops within a step."""
    with client() as api:
        experiment = api.cancel(experiment_id)
    if experiment["status"] == "running":
        err.print(f"{experiment_id}: cancelling (it stops within a step and a flush)")
    else:
        err.print(f"{experiment_id}: {experiment['status']}")


@app.command()
def plot(
    experiment_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str, typer.Argument(help="loss, activations, distributions, eval, fit")],
    output: Annotated[Path, typer.Option("-o", "--output", help="FILE (.png .svg .json .gif)")],
    params: Annotated[
        list[str] | None, typer.Option("--param", help="query parameter, e.g. step=20")
    ] = None,
) -> None:
    """Write one of the experiment's plots to a file; its format follows the file's suffix."""
    query = dict(pair.partition("=")[::2] for pair in params or [])
    with client() as api:
        api.plot(experiment_id, name, output, **query)
    print(output)


@app.command()
def export(
    experiment_id: Annotated[str, typer.Argument(metavar="ID")],
    csv: Annotated[Path | None, typer.Option(help="every metric point, long format")] = None,
    histograms: Annotated[Path | None, typer.Option(help="every histogram bin, as CSV")] = None,
    tensorboard: Annotated[
        Path | None, typer.Option(help="event files for `tensorboard --logdir DIR`")
    ] = None,
) -> None:
    """Take the results elsewhere: CSV for pandas and spreadsheets, TensorBoard event files."""
    if not (csv or histograms or tensorboard):
        raise typer.BadParameter("give --csv FILE, --histograms FILE and/or --tensorboard DIR")
    with client() as api:
        if csv:
            print(api.export_csv(experiment_id, csv))
        if histograms:
            print(api.export_histograms_csv(experiment_id, histograms))
        if tensorboard:
            print(api.export_tensorboard(experiment_id, tensorboard))
            err.print(f"view them with: tensorboard --logdir {tensorboard}")


@app.command()
def workers(as_json: Json = False) -> None:
    """The fleet: each worker, what it trains, and how many experiments each queue holds."""
    with client() as api:
        fleet = api.workers()
    if as_json:
        return emit_json(fleet)
    out.print(workers_view(fleet))


# Sweeps (issue 9) join here as `bnlab sweep ...` once the API has them.


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def tokens(ctx: typer.Context) -> None:
    """Admin: API tokens (create NAME | list | revoke NAME); run with the API's environment."""
    try:
        from shared.cli import main as admin
    except ImportError:
        err.print("bnlab tokens talks to the database: run it where the server is installed")
        raise typer.Exit(2) from None
    raise typer.Exit(admin(["tokens", *ctx.args]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bnlab` console script."""
    try:
        app(args=argv, prog_name="bnlab")
    except ApiError as exc:
        err.print(f"bnlab: {exc}", markup=False, highlight=False)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
