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
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

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
PROJECT_FILE = "scaleout.yaml"
GZIP_MAGIC = b"\x1f\x8b"
HOW_TO_PACKAGE = "create one with `scaleout package create --path <package folder>`"
# Bounds on unpacking, the same in the API (upload) and on every client (download).
MAX_MEMBERS = 100_000
DEFAULT_MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_EXPANSION = 250  # unpacked bytes per tarball byte: code compresses ~5x, gzip at most ~1000x (a bomb)
MAX_PROJECT_FILE_BYTES = 256 * 1024
MAX_YAML_VALUES = 10_000  # values of scaleout.yaml with aliases expanded: an alias bomb has billions
MAX_LINK_DEPTH = 40  # links followed within one path, as Linux's ELOOP bound


@dataclass(frozen=True)
class PackageLimits:
    """Bounds on what a package unpacks to; the API's come from its settings, a client's are the defaults."""

    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_members: int = MAX_MEMBERS


DEFAULT_LIMITS = PackageLimits()


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


def extract_package(
    tarball: str | os.PathLike[str], dest: str | os.PathLike[str], limits: PackageLimits = DEFAULT_LIMITS
) -> Path:
    """Unpack ``tarball`` into ``dest`` after ``check_package`` passed on it; return ``dest``.

    The check is the API's own (member names, links resolved against ``dest``, sizes, member count,
    scaleout.yaml), so nothing is written unless the whole package is safe.
    """
    dest_path = Path(dest).resolve()
    try:
        with open(tarball, "rb") as stream:
            check_package(stream, limits, require_project=False)
        with tarfile.open(tarball, "r:*") as tar:
            dest_path.mkdir(parents=True, exist_ok=True)
            # The data filter re-checks against the real filesystem as it writes: a second line of defence.
            tar.extractall(dest_path, filter="data")
    except tarfile.FilterError as exc:
        raise PackageError(f"package {tarball} has an unsafe member: {exc}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise PackageError(f"package {tarball} is not a readable tarball ({exc}); re-create it") from exc
    return dest_path


def check_package(
    stream: BinaryIO, limits: PackageLimits = DEFAULT_LIMITS, require_project: bool = True
) -> dict | None:
    """Check a package tarball in one streamed pass; return its parsed scaleout.yaml (None if absent
    and not ``require_project``). PackageError names the member and the fix.

    Every member must stay inside the folder it unpacks to, with symlinks resolved as the filesystem
    would (a link through a link), no device files; the members' total size is at most
    ``limits.max_unpacked_bytes`` and at most MAX_EXPANSION times the tarball's own size (a small
    tarball that inflates to gigabytes is a bomb); scaleout.yaml is small and parsed safely.
    """
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if stream.read(2) != GZIP_MAGIC:
        raise PackageError(f"the package is not a gzip tarball (.tgz); {HOW_TO_PACKAGE}")
    stream.seek(0)
    budget = min(limits.max_unpacked_bytes, MAX_EXPANSION * size)
    try:
        project = _scan_members(stream, limits.max_members, budget)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise PackageError(
            f"the package is not a readable gzip tarball ({error}); {HOW_TO_PACKAGE}"
        ) from None
    finally:
        stream.seek(0)
    if project is None and require_project:
        raise PackageError(f"the package has no {PROJECT_FILE} at its root; {HOW_TO_PACKAGE}")
    return project


def _scan_members(stream: BinaryIO, max_members: int, budget: int) -> dict | None:
    """Walk the members once; return the parsed project file if one is at the root."""
    project = None
    total = 0
    links: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for count, member in enumerate(tar, start=1):
            if count > max_members:
                raise PackageError(
                    f"the package has more than {max_members} files; leave data out of it "
                    "(list it in .scaleoutignore)"
                )
            _check_member(member, links)
            total += member.size
            if total > budget:
                raise PackageError(
                    f"the package unpacks to more than {budget} bytes (at most {MAX_EXPANSION} times the "
                    f"tarball's size, and --max-unpacked-bytes); leave data out of "
                    "it (list it in .scaleoutignore)"
                )
            name = posixpath.normpath(member.name)
            # At the root, or in a single top folder (a tarball of `client/`), where clients look.
            if member.isreg() and posixpath.basename(name) == PROJECT_FILE and name.count("/") <= 1:
                parsed = _parse_project_file(tar, member)
                project = parsed if name == PROJECT_FILE else project
    for name, target in links.items():  # a link may be redefined later: recheck against the final set
        if _resolve(posixpath.join(posixpath.dirname(name), target), links) is None:
            raise PackageError(
                f"unsafe package member '{name}' is a symlink to '{target}', outside the package"
            )
    return project


def _check_member(member: tarfile.TarInfo, links: dict[str, str]) -> None:
    """The member's own rules (unsafe_member), then its path and link resolved through the links so far."""
    why = unsafe_member(member)
    name = posixpath.normpath(member.name)
    if why is None and _resolve(posixpath.dirname(name), links) is None:
        why = "is written through a symlink that leaves the package"
    if why is None and member.issym():
        links[name] = member.linkname
        if _resolve(posixpath.join(posixpath.dirname(name), member.linkname), links) is None:
            why = f"is a symlink to '{member.linkname}', outside the package"
    if why is None and member.islnk() and _resolve(member.linkname, links) is None:
        why = f"is a hard link to '{member.linkname}', outside the package"
    if why is not None:
        raise PackageError(
            f"unsafe package member '{member.name}' {why}; "
            "refusing to unpack it: rebuild the package without it"
        )


def _resolve(path: str, links: dict[str, str], depth: int = 0) -> list[str] | None:
    """``path``'s components after following the package's symlinks as the filesystem would, or None
    if it leaves the package root (or links loop deeper than MAX_LINK_DEPTH)."""
    if depth > MAX_LINK_DEPTH:
        return None
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        candidate = "/".join([*parts, part])
        target = links.get(candidate)
        if target is None:
            parts.append(part)
            continue
        if target.startswith(("/", "\\")):
            return None
        resolved = _resolve("/".join([*parts, target]), links, depth + 1)
        if resolved is None:
            return None
        parts = resolved
    return parts


def _expanded_size(root: yaml.Node | None) -> int:
    """How many values the document stands for once its aliases are expanded (a recursive alias
    counts as unbounded); MAX_YAML_VALUES + 1 as soon as it is known to be more."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, path: frozenset[int]) -> int:
        if id(node) in path:
            return MAX_YAML_VALUES + 1
        if id(node) not in sizes:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [item for pair in node.value for item in pair]
            total = 1
            for child in children:
                total = min(total + size(child, path | {id(node)}), MAX_YAML_VALUES + 1)
            sizes[id(node)] = total
        return sizes[id(node)]

    return 0 if root is None else size(root, frozenset())


def _parse_project_file(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if member.size > MAX_PROJECT_FILE_BYTES:
        raise PackageError(
            f"{PROJECT_FILE} is {member.size} bytes, more than {MAX_PROJECT_FILE_BYTES}; a project file is "
            "a few lines of YAML"
        )
    handle = tar.extractfile(member)
    text = handle.read() if handle else b""
    try:
        values = _expanded_size(yaml.compose(text, Loader=yaml.SafeLoader))
        if values > MAX_YAML_VALUES:
            raise PackageError(
                f"{PROJECT_FILE} expands to more than {MAX_YAML_VALUES} values (through YAML aliases); "
                "write it out without anchors"
            )
        project = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PackageError(f"{PROJECT_FILE} is not valid YAML: {error}") from None
    except RecursionError:
        raise PackageError(
            f"{PROJECT_FILE} nests too deeply; a project file is a few lines of YAML"
        ) from None
    if not isinstance(project, dict) or not isinstance(project.get("entry_points"), dict):
        raise PackageError(
            f"{PROJECT_FILE} must be a mapping with an 'entry_points' section (train, validate)"
        )
    return project


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
