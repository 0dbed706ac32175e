"""Fetch the active compute package from the API: stream it to a file, check its sha256, unpack it safely.

The tarball comes from the server, so it is checked twice before it can run anything here: its
checksum must equal the one the API states for the active package, and ``extract_package`` refuses
absolute names, ``..`` and links out of the folder before writing a single file. The package is
unpacked into a fresh folder and swapped in only when complete, so a refused or half-downloaded
package never mixes with the previous one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path

import httpx

from scaleout.client.backoff import Backoff
from scaleout.client.dispatcher import PROJECT_FILE
from scaleout.client.rest import auth_hint, error_detail
from scaleout.compute_package import DEFAULT_LIMITS, PackageLimits, extract_package, sha256_file
from scaleout.errors import PackageError

logger = logging.getLogger(__name__)

PACKAGE_DIR = "package"
TARBALL = "package.tgz"
DOWNLOAD_ATTEMPTS = 5  # transport errors only; a wrong checksum is never retried


async def fetch_package(
    api: httpx.AsyncClient, work_dir: Path, backoff: Backoff, limits: PackageLimits = DEFAULT_LIMITS
) -> Path:
    """Download, verify and unpack the active package under ``work_dir``; return the folder to run.

    Raises PackageError when the API has no active package, the checksum differs, or the tarball
    is unsafe, over ``limits`` or unreadable (the API's own package check).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    tarball = work_dir / TARBALL
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            expected = await _checksum(api)
            await _download(api, tarball)
            break
        except httpx.TransportError as exc:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise PackageError(
                    f"could not download the compute package from {api.base_url} after {attempt} attempts "
                    f"({exc!r}); check that the API is reachable and restart the client"
                ) from exc
            delay = backoff.next_delay()
            logger.warning("package download failed (%r); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
    backoff.reset()
    try:
        _verify(tarball, expected)
        return _unpack(tarball, work_dir, limits)
    finally:
        tarball.unlink(missing_ok=True)


async def _checksum(api: httpx.AsyncClient) -> str:
    response = await api.get("/packages/checksum")
    _raise_for_package_status(response)
    try:
        checksum = response.json()["checksum"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageError(
            f"the API's /packages/checksum answer has no 'checksum' (got {response.text[:200]!r})"
        ) from exc
    if not isinstance(checksum, str) or not checksum:
        raise PackageError(f"the API stated no checksum for the active package (got {checksum!r})")
    return checksum.lower()


async def _download(api: httpx.AsyncClient, tarball: Path) -> None:
    """Stream the active package to ``tarball`` chunk by chunk; it is never whole in memory."""
    partial = tarball.with_name(tarball.name + ".part")
    try:
        async with api.stream("GET", "/packages/download") as response:
            if response.status_code != 200:
                await response.aread()
                _raise_for_package_status(response)
            with open(partial, "wb") as handle:
                async for chunk in response.aiter_bytes():
                    handle.write(chunk)
        partial.replace(tarball)
    finally:
        partial.unlink(missing_ok=True)


def _raise_for_package_status(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    if response.status_code in (401, 403):
        raise PackageError(auth_hint(response))
    if response.status_code == 404:
        raise PackageError(
            f"the API has no active compute package ({error_detail(response)}); upload one "
            "(APIClient.set_active_package) or start the client with --local-package DIR"
        )
    raise PackageError(
        f"the API answered {response.status_code} to {response.request.url}: {error_detail(response)}"
    )


def _verify(tarball: Path, expected: str) -> None:
    actual = sha256_file(tarball)
    if actual != expected:
        raise PackageError(
            f"the downloaded compute package has sha256 {actual}, but the API states {expected} for the "
            "active package; it was corrupted or replaced during the download. Refusing to run it; "
            "restart the client to download it again"
        )


def _unpack(tarball: Path, work_dir: Path, limits: PackageLimits) -> Path:
    """Extract into a fresh folder, then swap it in for the previous package."""
    for stale in work_dir.glob(".package-*"):  # left by a killed client; the work dir lock says it is ours
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".package-", dir=work_dir))
    try:
        extract_package(tarball, staging, limits)
        target = work_dir / PACKAGE_DIR
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return package_root(target)


def package_root(folder: Path) -> Path:
    """The folder holding scaleout.yaml: the top, or its single subfolder (a tarball of ``client/``)."""
    if (folder / PROJECT_FILE).is_file():
        return folder
    candidates = [sub for sub in folder.iterdir() if sub.is_dir() and (sub / PROJECT_FILE).is_file()]
    if len(candidates) == 1:
        return candidates[0]
    raise PackageError(
        f"the compute package has no {PROJECT_FILE} at its top (unpacked in {folder}); "
        "create it with `scaleout package create --path <folder with scaleout.yaml>`"
    )
