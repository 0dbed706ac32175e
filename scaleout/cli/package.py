"""`scaleout package`: turn a compute package folder into the tarball a federation distributes."""

from __future__ import annotations

import tarfile
from pathlib import Path

import click

from scaleout.cli.common import env_dir_option, user_errors
from scaleout.client.package import create_package, sha256_file


@click.group("package")
def package_group() -> None:
    """Create compute package tarballs."""


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
