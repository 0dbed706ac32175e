"""`scaleout package`: turn a compute package folder into the tarball a federation distributes, upload it
to a running federation (where it becomes the active package), and show the active one."""

from __future__ import annotations

import tarfile
from pathlib import Path

import click

from scaleout.cli.common import env_dir_option, user_errors
from scaleout.cli.remote import Remote, api_options
from scaleout.cli.tables import console, key_value_table, size, when
from scaleout.compute_package import create_package, sha256_file


@click.group("package")
def package_group() -> None:
    """Create compute package tarballs, upload one, show the active one."""


@package_group.command("create")
@click.option(
    "--path",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The compute package folder (the one holding scaleout.yaml).",
)
@click.option("--name", default="package.tgz", show_default=True, help="File name of the tarball.")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default="the current directory",
    help="Folder to write the tarball to.",
)
@env_dir_option
def create(path: Path, name: str, output: Path, env_dir: Path) -> None:
    """Pack the folder, minus .scaleoutignore/.ignore entries, virtualenvs and caches.

    The python_env cache (--env-dir) is left out too, should it lie inside the folder.
    """
    if "/" in name or name in ("", ".", ".."):
        raise click.BadParameter("give a file name, and the folder with --output", param_hint="--name")
    with user_errors():
        tarball = create_package(path, name=name, output_dir=output, exclude=[env_dir])
    with tarfile.open(tarball) as tar:
        files = sum(1 for member in tar if not member.isdir())
    click.echo(f"Created {tarball}: {files} files, {tarball.stat().st_size} bytes")
    click.echo(f"sha256 {sha256_file(tarball)}")


@package_group.command("upload")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--helper", default="numpyhelper", show_default=True, help="Helper that reads its models.")
@click.option("--name", help="A name for people (default: the tarball's file name).")
@api_options
def upload(remote: Remote, path: Path, helper: str, name: str | None) -> None:
    """Upload PATH (a .tgz, or a folder packed first as `package create` does); it becomes active.

    Clients started with the remote package fetch it when they next ask for an assignment.
    """
    with remote.connect() as api:
        package = api.set_active_package(path, helper=helper, name=name)
    remote.emit(
        package,
        lambda: click.echo(
            f"Package {package['name']} ({package['id']}) is active: "
            f"sha256 {package['sha256']}, {package['size']} bytes"
        ),
    )


@package_group.command("active")
@api_options
def active(remote: Remote) -> None:
    """The active compute package: its name, helper, size and sha256."""
    with remote.connect() as api:
        package = api.get_active_package()

    def render() -> None:
        values = {**package, "size": f"{size(package['size'])} ({package['size']} bytes)"}
        values["committed_at"] = when(package.get("committed_at"))
        console().print(key_value_table("active package", values))

    remote.emit(package, render)
