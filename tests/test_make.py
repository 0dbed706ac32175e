"""`make test` on an ordinary machine: the test MongoDB server's interpreter is found or clearly asked for.

These run the real Makefile and tools/find-python with a PATH that has no Python 3.13 (Debian's own
/usr/bin only), so they show what a user without pyenv sees.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIND_PYTHON = REPO_ROOT / "tools" / "find-python"
# Debian's python3.11 and coreutils, make and bash; no pyenv, no python3.13, no uv.
SYSTEM_PATH = "/usr/bin:/bin"


def system_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "SCALEOUT_TEST_", "MAKE"))}
    env.update(PATH=SYSTEM_PATH, HOME="/nonexistent", **extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_find_python_names_the_interpreter_of_the_wanted_version():
    found = run([str(FIND_PYTHON), "--at-least", "3.11", sys.executable], dict(os.environ))
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == Path(sys.executable).resolve()


def test_find_python_refuses_an_interpreter_of_another_version():
    # The running interpreter is offered first, but it is not 3.99: nothing fits.
    found = run([str(FIND_PYTHON), "3.99", sys.executable], system_env())
    assert found.returncode == 2
    assert found.stdout == ""
    assert "no Python 3.99 found (tried:" in found.stderr


def test_make_stops_before_pip_with_the_options_when_no_python_313_is_found(tmp_path):
    mongo_venv = tmp_path / "venv-mongo"
    result = run(["make", f"MONGO_VENV={mongo_venv}", f"{mongo_venv}/.installed"], system_env())
    assert result.returncode == 2
    assert "the test server (mongoeco) needs Python 3.13 or newer, and none was found" in result.stderr
    assert "SCALEOUT_TEST_MONGO_URI=mongodb://localhost:27017 make test" in result.stderr
    assert "docker run -d -p 27017:27017 mongo:7" in result.stderr
    assert "pip" not in result.stdout  # stopped before making a venv or calling pip
    assert not mongo_venv.exists()


def test_make_test_with_a_mongodb_uri_builds_no_test_server_venv():
    plan = run(["make", "-n", "test"], system_env(SCALEOUT_TEST_MONGO_URI="mongodb://db.example:27017"))
    assert plan.returncode == 0, plan.stderr
    assert "pytest" in plan.stdout
    assert ".venv-mongo" not in plan.stdout


def test_make_builds_a_venv_of_its_own_for_another_python():
    plan = run(["make", "-n", "install", "PYTHON=python3.11"], system_env())
    assert plan.returncode == 0, plan.stderr
    assert "-m venv .venv-3.11" in plan.stdout


def test_make_refuses_an_unsupported_python_with_the_supported_list():
    plan = run(["make", "install", "PYTHON=python3.99"], system_env())
    assert plan.returncode == 2
    assert "no Python 3.99 found for PYTHON=python3.99; supported: 3.11 3.12 3.13" in plan.stderr
