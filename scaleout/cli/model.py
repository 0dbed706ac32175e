"""`scaleout model list|show|download|upload`: the model trail of a running federation."""

from __future__ import annotations

from pathlib import Path

import click

from scaleout.cli.remote import Remote, api_options, filter_id, paging_options, resolve_id
from scaleout.cli.tables import (
    ALWAYS,
    HIGH,
    LOW,
    Column,
    console,
    field,
    key_value_table,
    print_page,
    short_id,
    size,
    when,
)
from scaleout.compute_package import sha256_file

MODEL_COLUMNS = [
    Column("id", field("id", short_id), keep=ALWAYS),
    Column("name", field("name"), keep=HIGH),
    Column("session", field("session_id", short_id), keep=LOW),
    Column("round", field("round_id", short_id), keep=LOW),
    Column("parent", field("parent_id", short_id)),
    Column("size", field("size", size), "right"),
    Column("sha256", lambda m: m.get("sha256", "")[:12], keep=LOW),
    Column("committed", field("committed_at", when), keep=HIGH),
]


@click.group("model")
def model_group() -> None:
    """List, inspect, download and upload models (the model trail)."""


@model_group.command("list")
@click.option("--session-id", help="Only the models of this session.")
@paging_options
@api_options
def list_models(remote: Remote, session_id: str | None, limit: int, skip: int) -> None:
    """The models, oldest first, a page at a time: seeds have no session, each round's model names its
    parent."""
    with remote.connect() as api:
        session_id = filter_id(api, "sessions", session_id)
        models = api.get_models(session_id=session_id, limit=limit, skip=skip)
    remote.emit(models, lambda: print_page("models", models, MODEL_COLUMNS, skip))


@model_group.command("show")
@click.argument("model_id")
@api_options
def show(remote: Remote, model_id: str) -> None:
    """A model's record, with the length of its trail back to the seed."""
    with remote.connect() as api:
        model = api.get_model(resolve_id(api, "models", model_id))

    def render() -> None:
        values = {**model, "size": f"{size(model['size'])} ({model['size']} bytes)"}
        values["committed_at"] = when(model.get("committed_at"))
        values["ancestors"] = f"{len(model.get('ancestors', []))} (parent first: model show --json)"
        console().print(key_value_table(f"model {model['id']}", values))

    remote.emit(model, render)


@model_group.command("download")
@click.argument("model_id")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the model [default: ./<id>.npz].",
)
@api_options
def download(remote: Remote, model_id: str, output: Path | None) -> None:
    """Stream a model's bytes to a file and check them against the stored sha256."""
    with remote.connect() as api:
        model = api.get_model(resolve_id(api, "models", model_id))
        target = api.download_model(model["id"], output or Path(f"{model['id']}.npz"))
    checksum = sha256_file(target)
    if model.get("sha256") and checksum != model["sha256"]:
        raise click.ClickException(
            f"{target} has sha256 {checksum}, but model {model['id']} was stored with {model['sha256']}; "
            "download it again"
        )
    result = {"id": model["id"], "path": str(target), "size": target.stat().st_size, "sha256": checksum}
    remote.emit(result, lambda: click.echo(f"Model {model['id']} → {target} ({size(result['size'])})"))


@model_group.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="A name for people (default: the file name).")
@api_options
def upload(remote: Remote, path: Path, name: str | None) -> None:
    """Upload a seed model (checked loadable by the active package's helper); prints its id.

    The next session without --model-id starts from it, as it is the latest model.
    """
    with remote.connect() as api:
        model_id = api.set_active_model(path, name=name)
        model = api.get_model(model_id) if remote.as_json else {"id": model_id}
    remote.emit(
        model,
        lambda: click.echo(
            f"Uploaded {path.name} as model {model_id}; the next session without --model-id starts from it."
        ),
    )
