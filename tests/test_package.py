"""Compute package tarballs: what goes in, what stays out, and unpacking that cannot escape."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from scaleout.compute_package import create_package, extract_package, is_ignored, sha256_file
from scaleout.errors import PackageError
from tests.packages import make_package


def names_in(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as tar:
        return set(tar.getnames())


def package_with_clutter(root: Path) -> Path:
    """A package holding what must never be packaged: venvs, caches, bytecode."""
    package = make_package(
        root,
        {"train": "python train.py"},
        {
            "train.py": "print('train')\n",
            "lib/util.py": "X = 1\n",
            "lib/__pycache__/util.cpython-311.pyc": "",
            "stray.pyc": "",
            ".venv/bin/python": "",
            ".venv-old/lib/x.py": "",
            ".scaleout/envs/e/bin/python": "",
            "myenv/pyvenv.cfg": "home = /usr/bin\n",
            "myenv/lib/site.py": "",
        },
    )
    return package


def test_tarball_holds_the_package_with_relative_names(tmp_path):
    package = package_with_clutter(tmp_path)
    tarball = create_package(package, output_dir=tmp_path / "out")
    assert tarball == (tmp_path / "out" / "package.tgz").resolve()
    assert names_in(tarball) == {"scaleout.yaml", "train.py", "lib", "lib/util.py"}
    with tarfile.open(tarball) as tar:
        assert tar.extractfile("train.py").read() == b"print('train')\n"


def test_tarball_is_gzip(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"})
    tarball = create_package(package, name="p.tar.gz", output_dir=tmp_path)
    assert tarball.read_bytes()[:2] == b"\x1f\x8b"
    assert tarball.name == "p.tar.gz"


def test_ignore_file_patterns_match_relative_path_and_basename(tmp_path):
    package = make_package(
        tmp_path,
        {"train": "python train.py"},
        {
            "train.py": "",
            "data/clients/1/mnist.npz": "",
            "notes.txt": "",
            "docs/notes.txt": "",
            "docs/keep.md": "",
            "models/a.npz": "",
            "secret.key": "",
            ".scaleoutignore": "# comments and blank lines are skipped\n\ndata\n*.txt\nmodels/*.npz\n",
            ".ignore": "secret.key\n",
        },
    )
    names = names_in(create_package(package, output_dir=tmp_path))
    assert "data" not in names and not any(n.startswith("data/") for n in names)
    assert not any(n.endswith(".txt") for n in names), "basename match reaches into sub-folders"
    assert "models/a.npz" not in names and "models" in names
    assert "secret.key" not in names, ".ignore is read too"
    assert {"train.py", "docs/keep.md", ".scaleoutignore", ".ignore"} <= names


def test_directory_only_pattern_spares_files_of_that_name(tmp_path):
    assert is_ignored("out", True, ["out/"])
    assert not is_ignored("out", False, ["out/"])
    assert not is_ignored("# data", False, [])


def test_tarball_written_inside_the_package_does_not_include_itself(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": ""})
    create_package(package, output_dir=package)
    tarball = create_package(package, output_dir=package)  # a second run sees the first tarball
    assert names_in(tarball) == {"scaleout.yaml", "train.py"}
    assert [p.name for p in package.iterdir() if p.name.endswith(".tmp")] == []


def test_excluded_env_dir_inside_the_package_is_left_out(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": "", "envcache/x/y.py": ""})
    names = names_in(create_package(package, output_dir=tmp_path, exclude=[package / "envcache"]))
    assert names == {"scaleout.yaml", "train.py"}


def test_symlink_leaving_the_package_is_refused_at_creation(tmp_path):
    package = make_package(tmp_path / "p", {"train": "python train.py"}, {"lib/inside.py": ""})
    (tmp_path / "data.csv").write_text("1,2\n")
    (package / "lib" / "alias.py").symlink_to("inside.py")
    (package / "data.csv").symlink_to(tmp_path / "data.csv")
    with pytest.raises(PackageError, match=r"data\.csv in .* is a symlink to .*, outside the package"):
        create_package(package, output_dir=tmp_path)
    (package / ".ignore").write_text("./data.csv\n")
    names = names_in(create_package(package, output_dir=tmp_path))
    assert "lib/alias.py" in names and "data.csv" not in names


def test_folder_without_project_file_is_rejected(tmp_path):
    with pytest.raises(PackageError, match=r"has no scaleout\.yaml; is it the compute package folder"):
        create_package(tmp_path, output_dir=tmp_path)


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_extract_round_trips_a_created_package(tmp_path):
    package = package_with_clutter(tmp_path / "src")
    dest = extract_package(create_package(package, output_dir=tmp_path), tmp_path / "dest")
    assert (dest / "lib" / "util.py").read_text() == "X = 1\n"
    assert (dest / "scaleout.yaml").is_file()


# --- hostile tarballs --------------------------------------------------------------------------------


def hostile_tarball(path: Path, *members: tarfile.TarInfo) -> Path:
    """A tarball with a harmless first file, then the given members (regular ones get content)."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("good.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        for member in members:
            if member.isreg():
                member.size = 4
                tar.addfile(member, io.BytesIO(b"evil"))
            else:
                tar.addfile(member)
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (tarfile.TarInfo("../evil.txt"), "has an absolute path or a '..' component"),
        (tarfile.TarInfo("sub/../../evil.txt"), "has an absolute path or a '..' component"),
        (tarfile.TarInfo("/tmp/evil.txt"), "has an absolute path or a '..' component"),
        (link("escape", "../../outside"), "is a symlink to '../../outside', outside the package"),
        (link("abs", "/etc/passwd"), "is a symlink to '/etc/passwd', outside the package"),
        (link("hard", "../outside", tarfile.LNKTYPE), "is a hard link to '../outside'"),
        (device("dev"), "is a device, fifo or other special file"),
    ],
)
def test_extract_rejects_unsafe_members_and_writes_nothing(tmp_path, member, reason):
    tarball = hostile_tarball(tmp_path / "evil.tgz", member)
    dest = tmp_path / "box" / "dest"
    with pytest.raises(PackageError) as excinfo:
        extract_package(tarball, dest)
    assert f"package member '{member.name}' {reason}" in str(excinfo.value)
    assert not dest.exists(), "nothing is written when any member is unsafe, not even the good ones"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tgz"]


def test_extract_rejects_writing_through_a_symlink_chain(tmp_path):
    # Each link looks harmless alone; together they point at dest's parent.
    tarball = hostile_tarball(
        tmp_path / "evil.tgz",
        link("a", "."),
        link("b", "a/.."),
        tarfile.TarInfo("b/evil.txt"),
    )
    dest = tmp_path / "dest"
    with pytest.raises(PackageError) as refused:
        extract_package(tarball, dest)
    assert str(refused.value).startswith("unsafe package member 'b' is a symlink to 'a/..', outside")
    assert not (tmp_path / "evil.txt").exists()


def test_extract_allows_links_that_stay_inside(tmp_path):
    data = tarfile.TarInfo("data/real.txt")
    tarball = hostile_tarball(tmp_path / "ok.tgz", data, link("data/alias.txt", "real.txt"))
    dest = extract_package(tarball, tmp_path / "dest")
    assert (dest / "data" / "alias.txt").read_text() == "evil"


def test_corrupt_tarball_is_a_package_error(tmp_path):
    path = tmp_path / "broken.tgz"
    path.write_bytes(b"not a tarball at all")
    with pytest.raises(PackageError, match="the package is not a gzip tarball"):
        extract_package(path, tmp_path / "dest")
