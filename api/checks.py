"""What an upload must be before anything is stored: a safe compute package, or a loadable seed model.

Both checks read the spooled upload in a streaming way (one tar member, one array at a time), so an
upload is refused with its reason and the statestore and model repository stay untouched.
"""

import posixpath
import tarfile
import zlib
from typing import BinaryIO

import numpy as np
import yaml

from scaleout.compute_package import unsafe_member
from scaleout.errors import PackageError, ScaleoutError
from scaleoututil.helpers.helpers import known_helpers

PACKAGE_FILE = "scaleout.yaml"
GZIP_MAGIC = b"\x1f\x8b"
# A tar bomb is refused before a client would unpack it.
MAX_MEMBERS = 100_000
MAX_UNPACKED_BYTES = 16 * 1024**3
MAX_PROJECT_FILE_BYTES = 1024 * 1024
HOW_TO_PACKAGE = "create one with `scaleout package create --path <package folder>`"


class InvalidModel(ScaleoutError):
    """A seed model the active helper cannot use; the message says why."""


def check_helper(helper: str) -> str:
    """The helper name if scaleoututil ships it; PackageError naming the known ones otherwise."""
    known = known_helpers()
    if helper not in known:
        raise PackageError(f"unknown helper {helper!r}; use one of: {', '.join(known)}")
    return helper


def check_package(stream: BinaryIO) -> dict:
    """Check a compute package tarball and return its parsed scaleout.yaml; PackageError says what is wrong.

    It must be gzip, every member must stay inside the folder it unpacks to (no absolute paths, no
    '..', no links pointing out, no device files), and scaleout.yaml must sit at its root.
    """
    stream.seek(0)
    if stream.read(2) != GZIP_MAGIC:
        raise PackageError(f"the upload is not a gzip tarball (.tgz); {HOW_TO_PACKAGE}")
    stream.seek(0)
    try:
        project = _scan_members(stream)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise PackageError(f"the upload is not a readable gzip tarball ({error}); {HOW_TO_PACKAGE}") from None
    finally:
        stream.seek(0)
    if project is None:
        raise PackageError(f"the package has no {PACKAGE_FILE} at its root; {HOW_TO_PACKAGE}")
    return project


def _scan_members(stream: BinaryIO) -> dict | None:
    """Walk the members once; return the parsed project file if one is at the root."""
    project = None
    total = 0
    with tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for count, member in enumerate(tar, start=1):
            _check_member(member)
            total += member.size
            if count > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
                raise PackageError(
                    f"the package unpacks to more than {MAX_MEMBERS} files or {MAX_UNPACKED_BYTES} bytes; "
                    "leave data out of it (list it in .scaleoutignore)"
                )
            if member.isreg() and posixpath.normpath(member.name) == PACKAGE_FILE:
                project = _parse_project_file(tar, member)
    return project


def _check_member(member: tarfile.TarInfo) -> None:
    """The rules the edge client applies when it unpacks, so a stored package always unpacks."""
    why = unsafe_member(member)
    if why is not None:
        raise PackageError(f"unsafe package member {member.name!r}: it {why}; rebuild the package without it")


def _parse_project_file(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if member.size > MAX_PROJECT_FILE_BYTES:
        raise PackageError(f"{PACKAGE_FILE} is {member.size} bytes; a project file is a few lines of YAML")
    handle = tar.extractfile(member)
    try:
        project = yaml.safe_load(handle.read()) if handle else None
    except yaml.YAMLError as error:
        raise PackageError(f"{PACKAGE_FILE} is not valid YAML: {error}") from None
    if not isinstance(project, dict) or not isinstance(project.get("entry_points"), dict):
        raise PackageError(
            f"{PACKAGE_FILE} must be a mapping with an 'entry_points' section (train, validate)"
        )
    return project


def check_seed_model(stream: BinaryIO, helper: str) -> None:
    """Raise InvalidModel unless the active helper can use this model as a seed."""
    stream.seek(0)
    try:
        if helper == "numpyhelper":
            _check_npz(stream)
    finally:
        stream.seek(0)


def _check_npz(stream: BinaryIO) -> None:
    """numpyhelper models are npz files of numeric, finite arrays; read one array at a time."""
    try:
        archive = np.load(stream, allow_pickle=False)
    except Exception as error:  # np.load raises ValueError, OSError, EOFError, zipfile errors, ...
        raise InvalidModel(f"the seed model is not an npz file numpyhelper can load ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InvalidModel("the seed model is a single .npy array; numpyhelper needs an .npz (helper.save)")
    with archive:
        if not archive.files:
            raise InvalidModel("the seed model npz holds no arrays")
        for key in archive.files:
            _check_array(key, archive, helper="numpyhelper")


def _check_array(key: str, archive: np.lib.npyio.NpzFile, helper: str) -> None:
    try:
        array = archive[key]
    except Exception as error:  # a corrupt member or an object array (allow_pickle=False)
        raise InvalidModel(f"array {key!r} of the seed model cannot be read: {error}") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InvalidModel(f"array {key!r} of the seed model has dtype {array.dtype}; {helper} needs numbers")
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
        raise InvalidModel(f"array {key!r} of the seed model contains NaN or inf values")
