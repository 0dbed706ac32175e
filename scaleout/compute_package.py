"""Compute package tarballs: create one from a folder, check its checksum, and unpack it safely.

A package is a gzip tarball of the compute package folder with names relative to it. Files listed
in ``.scaleoutignore`` (or ``.ignore``) are left out, and so are virtualenvs and caches, which are
machine-specific and often larger than the code. Unpacking checks every member before writing
anything, because the tarball comes from the server and must not write outside its destination.

Shared by the initiator (CLI, APIClient), the API (which refuses an unsafe upload with the same
rules, ``unsafe_member``) and the edge client, so it sits at the package root with ``errors``.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from scaleout.errors import PackageError

IGNORE_FILES = (".scaleoutignore", ".ignore")
# Never packaged: environments and caches are rebuilt on each client.
ALWAYS_EXCLUDED = (
    "__pycache__",
    "*.pyc",
    ".venv*",
    ".scaleout",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
)
CHUNK_SIZE = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks so a large package is never whole in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def read_ignore_patterns(package_dir: Path) -> list[str]:
    """Patterns from ``.scaleoutignore`` and ``.ignore``; blank lines and ``#`` comments skipped."""
    patterns = []
    for name in IGNORE_FILES:
        path = package_dir / name
        if path.is_file():
            lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
            patterns += [line for line in lines if line and not line.startswith("#")]
    return patterns


def is_ignored(rel_path: str, is_dir: bool, patterns: Iterable[str]) -> bool:
    """True when a pattern matches the relative path or the basename (``dir/`` matches directories only)."""
    basename = posixpath.basename(rel_path)
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        pattern = pattern.removeprefix("./").lstrip("/")
        if fnmatch.fnmatchcase(rel_path, pattern) or fnmatch.fnmatchcase(basename, pattern):
            return True
    return False


def create_package(
    path: str | os.PathLike[str],
    name: str = "package.tgz",
    output_dir: str | os.PathLike[str] = ".",
    exclude: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``output_dir/name``: the folder ``path`` as a gzip tarball, and return its path.

    ``exclude`` lists more paths to leave out (e.g. the dispatcher's env dir if it sits inside).
    """
    package_dir = Path(path).resolve()
    if not package_dir.is_dir():
        raise PackageError(f"package folder {package_dir} does not exist; pass the compute package folder")
    if not (package_dir / "scaleout.yaml").is_file():
        raise PackageError(f"{package_dir} has no scaleout.yaml; is it the compute package folder (client/)?")
    target = Path(output_dir).resolve() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed, so a crash never leaves a truncated package.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    skip = {target, Path(tmp_name), *(Path(p).resolve() for p in exclude)}
    try:
        # No name and a zero mtime in the gzip header: the same folder packs to the same bytes, so its
        # sha256 tells whether a package changed (`scaleout init` skips an upload on it).
        with (
            open(tmp_name, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w") as tar,
        ):
            for file_path, arcname in _package_members(package_dir, skip):
                tar.add(file_path, arcname=arcname, recursive=False, filter=_anonymize)
        os.chmod(tmp_name, 0o644)  # mkstemp made it private; a package is meant to be shared
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _package_members(package_dir: Path, skip: set[Path]) -> Iterator[tuple[Path, str]]:
    """Walk the folder in sorted order (a stable tarball), pruning ignored and excluded entries."""
    patterns = [*ALWAYS_EXCLUDED, *read_ignore_patterns(package_dir)]
    for root, dirs, files in os.walk(package_dir):
        root_path = Path(root)
        kept_dirs = []
        for name in sorted(dirs):
            full = root_path / name
            rel = full.relative_to(package_dir).as_posix()
            if full in skip or is_ignored(rel, True, patterns) or (full / "pyvenv.cfg").exists():
                continue
            _check_link(full, package_dir, rel)
            yield full, rel
            if not full.is_symlink():  # a symlinked dir goes in as a link, not as its content
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(files):
            full = root_path / name
            rel = full.relative_to(package_dir).as_posix()
            if full not in skip and not is_ignored(rel, False, patterns):
                _check_link(full, package_dir, rel)
                yield full, rel


def _check_link(path: Path, package_dir: Path, rel: str) -> None:
    """Refuse a symlink that leaves the package: every client would refuse to unpack it."""
    if path.is_symlink() and not path.resolve().is_relative_to(package_dir):
        raise PackageError(
            f"{rel} in {package_dir} is a symlink to {os.readlink(path)}, outside the package; "
            "copy the file in or list it in .scaleoutignore"
        )


def _anonymize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def extract_package(tarball: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Unpack ``tarball`` into ``dest`` after checking every member; return ``dest``.

    Rejects absolute names, ``..`` components, links that point outside ``dest`` and special
    files, naming the member, before anything is written.
    """
    dest_path = Path(dest).resolve()
    try:
        with tarfile.open(tarball, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            dest_path.mkdir(parents=True, exist_ok=True)
            # The data filter re-checks against the real filesystem (e.g. chains of links) as it writes.
            tar.extractall(dest_path, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise PackageError(f"package {tarball} has an unsafe member: {exc}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"package {tarball} is not a readable tarball ({exc}); re-create it") from exc
    return dest_path


def _check_member(member: tarfile.TarInfo) -> None:
    why = unsafe_member(member)
    if why is not None:
        raise PackageError(f"package member '{member.name}' {why}; refusing to unpack the package")


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why this member could write outside the folder it unpacks to ("is a symlink to ..."), or None."""
    name = member.name
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "is a device, fifo or other special file"
    if _escapes(name):
        return "has an absolute path or a '..' component"
    if member.issym():
        target = posixpath.join(posixpath.dirname(name), member.linkname)
        if member.linkname.startswith(("/", "\\")) or _escapes_after_normalizing(target):
            return f"is a symlink to '{member.linkname}', outside the package"
    if member.islnk() and (_escapes(member.linkname) or _escapes_after_normalizing(member.linkname)):
        return f"is a hard link to '{member.linkname}', outside the package"
    return None


def _escapes(name: str) -> bool:
    absolute = name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")
    return absolute or ".." in name.replace("\\", "/").split("/")


def _escapes_after_normalizing(name: str) -> bool:
    normalized = posixpath.normpath(name)
    return normalized == ".." or normalized.startswith(("../", "/"))
