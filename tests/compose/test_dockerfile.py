"""The Dockerfile without a Docker engine: it copies every folder the distribution is built from, runs
as the unprivileged user, and bakes no credentials in. (A non-editable `pip install ".[examples]"` of
exactly the copied folders is what the builder stage runs; the image build itself needs a Docker host.)"""

import re
import tomllib

from tests.compose.compose import DOCKERFILE, REPO


def _stages() -> list[str]:
    return re.split(r"^FROM\s", DOCKERFILE.read_text(), flags=re.MULTILINE)[1:]


def test_the_builder_copies_every_folder_the_distribution_is_built_from() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    builder = _stages()[0]
    copied = {m.group(1) for m in re.finditer(r"^COPY\s+(\S+)\s+\./\1\s*$", builder, re.MULTILINE)}
    assert folders <= copied, f"not copied into the builder: {sorted(folders - copied)}"
    assert re.search(r'pip install -c constraints.txt "\.\[examples\]"', builder)  # non-editable, pinned


def test_the_image_installs_the_pins_of_its_python() -> None:
    builder = _stages()[0]
    python = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-slim$", DOCKERFILE.read_text(), re.MULTILINE)
    assert python, "the Dockerfile names its Python image"
    pins = f"constraints/py{python.group(1)}.txt"
    assert f"COPY {pins} ./constraints.txt" in builder
    assert (REPO / pins).is_file(), f"{pins} is missing: run `make lock`"


def test_the_runtime_stage_runs_scaleout_as_uid_10001() -> None:
    runtime = _stages()[-1]
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER 10001(:10001)?\s*$", runtime, re.MULTILINE)
    assert 'ENTRYPOINT ["scaleout"]' in runtime


def test_no_credentials_are_baked_into_the_image() -> None:
    settings = re.findall(r"^(?:ENV|ARG)\s+(.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert not [s for s in settings if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", s, re.IGNORECASE)]
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".env", ".git", ".scaleout"} <= set(ignored)
