"""Compute packages: upload one (it becomes active), and serve the active one to clients."""

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from scaleout.api import compat, deps
from scaleout.api.checks import check_helper
from scaleout.api.streaming import stream_object
from scaleout.api.uploads import sha256_and_size
from scaleout.compute_package import PackageLimits, check_package
from scaleout.errors import NotFound
from scaleout.store.entities import Package, new_id
from scaleout.store.statestore import Statestore

router = APIRouter(prefix="/packages", tags=["packages"])
NO_PACKAGE = (
    "no compute package is active; upload one with POST /api/v1/packages/ (APIClient.set_active_package)"
)


class Checksum(BaseModel):
    checksum: str


def active_package(store: Statestore) -> Package:
    """The active package, or 404 saying how to set one."""
    try:
        return store.packages.active()
    except NotFound:
        raise HTTPException(404, NO_PACKAGE) from None


@router.post(
    "/", response_model=Package, status_code=201, summary="Upload a compute package; it becomes active"
)
def upload_package(
    request: Request,
    store: deps.StatestoreDep,
    repository: deps.RepositoryDep,
    settings: deps.SettingsDep,
    name: Annotated[str, Form(max_length=200)] = "",
    helper: Annotated[str, Form(description="the helper plugin the package uses")] = "numpyhelper",
    description: Annotated[str, Form(max_length=2000)] = "",
    file: Annotated[
        UploadFile | None, File(description="the package tarball (.tgz), scaleout.yaml at its root")
    ] = None,
    file_token: Annotated[str | None, Form(description="instead of file: a chunked upload's token")] = None,
) -> Package:
    """Checked (gzip, safe members, scaleout.yaml at the root) before anything is stored."""
    check_helper(helper)
    with compat.uploaded_file(request, file, file_token, "package.tgz") as (stream, uploaded_name):
        check_package(stream, PackageLimits(max_unpacked_bytes=settings.max_unpacked_bytes))
        checksum, size = sha256_and_size(stream)
        file_name = PurePath(uploaded_name).name
        package = Package(
            id=new_id(),
            name=name or file_name,
            file_name=file_name,
            sha256=checksum,
            size=size,
            helper=helper,
            description=description,
        )
        repository.put_package(package.id, stream)  # bytes first: a record never names missing bytes
    store.packages.add(package)
    return store.packages.set_active(package.id)


@router.get("/active", response_model=Package, summary="The active compute package")
def get_active_package(store: deps.StatestoreDep) -> Package:
    """The record of the package clients run now. 404 when none was uploaded."""
    return active_package(store)


@router.get("/checksum", response_model=Checksum, summary="sha256 of the active package's tarball")
def get_package_checksum(store: deps.StatestoreDep) -> dict[str, str]:
    """sha256 of the active package's tarball, which clients compare before downloading."""
    return {"checksum": active_package(store).sha256}


@router.get("/download", summary="Download the active package's tarball", response_class=StreamingResponse)
def download_package(store: deps.StatestoreDep, repository: deps.RepositoryDep) -> StreamingResponse:
    """The active package's tarball as bytes."""
    package = active_package(store)
    stream = repository.open_package(package.id)
    return stream_object(stream, package.size, package.file_name)
