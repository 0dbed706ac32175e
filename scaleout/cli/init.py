"""`scaleout init`: seed a fresh federation with a compute package and its seed model.

What docker compose's one-shot `init` service runs: it waits for the API, then uploads the package
(made active) and the seed model. Run again, it uploads nothing while the active package has the same
sha256 and a model exists, so restarting the stack never forks the model trail.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx

from scaleout.api.client import APIClient, APIError
from scaleout.cli.common import env_dir_option
from scaleout.cli.remote import Remote, api_options
from scaleout.cli.run import run_entry_point
from scaleout.compute_package import create_package, sha256_file
from scaleout.seed import RunBuild, build_seed

FIRST_DELAY = 0.25  # seconds before the second /health try; doubles up to MAX_DELAY
MAX_DELAY = 5.0


@click.command("init")
@click.option(
    "--package",
    "package_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The compute package folder (the one holding scaleout.yaml).",
)
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Seed model to upload [default: built now with the package's build entry point].",
)
@click.option("--helper", default="numpyhelper", show_default=True, help="Helper that reads its models.")
@click.option("--name", help="The package's name [default: <folder>.tgz].")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the API to answer /health (retried with backoff).",
)
@click.option(
    "--enroll-secret-file",
    envvar="SCALEOUT_ENROLL_SECRET_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also issue a fresh enrollment secret and write it to this file (owner-only), for clients "
    "started with the same --enroll-secret-file to enroll themselves.",
)
@click.option(
    "--enroll-uses",
    type=click.IntRange(min=1, max=1_000_000),
    default=10,
    show_default=True,
    help="Clients that secret may enroll (valid for a day).",
)
@env_dir_option
@api_options
def init_command(
    remote: Remote,
    package_dir: Path,
    seed: Path | None,
    helper: str,
    name: str | None,
    wait_timeout: float,
    enroll_secret_file: Path | None,
    enroll_uses: int,
    env_dir: Path,
) -> None:
    """Upload the compute package (active) and its seed model, unless already done.

    Already done means the active package has this folder's sha256 and a model exists: then nothing is
    uploaded and the exit code is 0. A changed package is uploaded with a new seed. With
    --enroll-secret-file a fresh enrollment secret is written on every run: clients that enrolled before
    keep their credentials, new or recreated ones enroll with the new secret.
    """
    package_dir = package_dir.resolve()
    with (
        remote.errors(),
        remote.client() as api,
        tempfile.TemporaryDirectory(prefix="scaleout-init-") as work,
    ):
        wait_for_api(api, remote, wait_timeout)
        enrollment = issue_enrollment_file(api, enroll_secret_file, enroll_uses) if enroll_secret_file else ""
        tarball = create_package(
            package_dir, name=name or f"{package_dir.name}.tgz", output_dir=work, exclude=[env_dir]
        )
        checksum = sha256_file(tarball)
        active, models = active_package(api), api.count_entities("models")
        same_package = active is not None and active["sha256"] == checksum
        if same_package and models:
            report = {"package": active, "model_id": None, "uploaded": False, "enrollment": enrollment}
            remote.emit(report, lambda: click.echo(already_seeded(active, models) + enrollment))
            return
        seed = seed or build_seed_model(package_dir, Path(work) / "build", env_dir)
        package = active if same_package else api.set_active_package(tarball, helper, tarball.name)
        model_id = api.set_active_model(seed)
    report = {"package": package, "model_id": model_id, "uploaded": True, "enrollment": enrollment}
    text = seeded(package, model_id, uploaded_package=not same_package) + enrollment
    remote.emit(report, lambda: click.echo(text))


def wait_for_api(api: APIClient, remote: Remote, timeout: float) -> None:
    """Until /health answers ok, with doubling delays; past `timeout`, fail naming the last error.

    A process outside ours gives no event to wait on (compose starts services in any order).
    """
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    while True:
        try:
            if api.health().get("status") == "ok":
                return
            last: BaseException = RuntimeError("/health did not say ok")
        except (httpx.TransportError, APIError) as error:  # not listening yet, or its statestore is down
            last = error
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise click.ClickException(remote.unreachable(f"no answer within {timeout:g} s (last: {last})"))
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)


def issue_enrollment_file(api: APIClient, path: Path, uses: int) -> str:
    """Write a fresh enrollment secret for `uses` clients owner-only to `path`; say so in a line."""
    from scaleout.client.credential import write_private

    issued = api.create_enrollment(name=f"scaleout init ({path.name})", uses=uses)
    write_private(path, issued["secret"])
    return f"\nEnrollment secret for {uses} client(s) written to {path}."


def active_package(api: APIClient) -> dict[str, Any] | None:
    try:
        return api.get_active_package()
    except APIError as error:
        if error.status_code == 404:  # none uploaded yet
            return None
        raise


def build_seed_model(package_dir: Path, output_dir: Path, env_dir: Path) -> Path:
    """Run build as `scaleout run build` does (its output passed through, its python_env cached)."""
    run: RunBuild = lambda env: run_entry_point(package_dir, env_dir, "build", extra_env=env)  # noqa: E731
    return build_seed(package_dir, output_dir, run).require()


def already_seeded(package: dict[str, Any], models: int) -> str:
    return (
        f"Already seeded: package {package['name']} (sha256 {package['sha256'][:12]}) is active and "
        f"{models} model(s) exist; nothing uploaded."
    )


def seeded(package: dict[str, Any], model_id: str, uploaded_package: bool) -> str:
    what = "uploaded and active" if uploaded_package else "already active"
    return (
        f"Package {package['name']} (sha256 {package['sha256'][:12]}) {what}; seed model {model_id}.\n"
        "Start a session with `scaleout session start`."
    )
