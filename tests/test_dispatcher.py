"""The dispatcher: scaleout.yaml parsing, running entry points, and the cached python_env venvs."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from scaleout.client.dispatcher import Dispatcher, load_project
from scaleout.client.python_env import MARKER_NAME, PythonEnv, load_spec, requirement_name
from scaleout.errors import PackageError
from tests.packages import make_package

REPO = Path(__file__).resolve().parents[1]

# Records how it was run: argv, cwd, interpreter and the variables the dispatcher controls.
REPORT = """
import json, os, sys
report = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "prefix": sys.prefix,
    "virtual_env": os.environ.get("VIRTUAL_ENV"),
    "extra": os.environ.get("SCALEOUT_BUILD_OUTPUT_DIR"),
}
with open(sys.argv[-1], "w") as out:
    json.dump(report, out)
print("reported to", sys.argv[-1])
"""

FAIL_LOUDLY = """
import sys
for i in range(30):
    print(f"stderr line {i}", file=sys.stderr)
sys.exit(3)
"""


class Lines:
    """A line sink that remembers what the dispatcher streamed."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))


def test_command_runs_in_the_package_dir_with_arguments_appended(tmp_path):
    package = make_package(tmp_path, {"train": "python report.py --flag 'two words'"}, {"report.py": REPORT})
    out = tmp_path / "report.json"
    sink = Lines()
    result = Dispatcher(package, env_dir=tmp_path / "envs", sink=sink).run(
        "train", ["in.npz", out], extra_env={"SCALEOUT_BUILD_OUTPUT_DIR": "/somewhere"}
    )
    report = json.loads(out.read_text())
    assert report["argv"] == ["--flag", "two words", "in.npz", str(out)]
    assert Path(report["cwd"]) == package.resolve()
    assert report["extra"] == "/somewhere"
    assert result.command == ["python", "report.py", "--flag", "two words", "in.npz", str(out)]
    assert result.returncode == 0
    assert ("stdout", f"reported to {out}") in sink.lines


def test_without_python_env_python_is_the_current_interpreter(tmp_path):
    package = make_package(tmp_path, {"train": "python report.py"}, {"report.py": REPORT})
    out = tmp_path / "report.json"
    Dispatcher(package, env_dir=tmp_path / "envs").run("train", [out])
    assert json.loads(out.read_text())["prefix"] == sys.prefix
    assert not (tmp_path / "envs").exists(), "no venv is built without python_env"


def test_nonzero_exit_reports_code_and_the_last_stderr_lines(tmp_path):
    package = make_package(tmp_path, {"train": "python fail.py"}, {"fail.py": FAIL_LOUDLY})
    sink = Lines()
    with pytest.raises(PackageError) as excinfo:
        Dispatcher(package, sink=sink).run("train", ["a", "b"])
    message = str(excinfo.value)
    assert "entry point 'train' (python fail.py a b) exited with code 3" in message
    assert "stderr line 29" in message and "stderr line 10" in message
    assert "stderr line 9\n" not in message, "only the last 20 lines belong in the message"
    # Every line still reached the caller's log, not just the tail.
    assert sum(stream == "stderr" for stream, _ in sink.lines) == 30


def test_output_is_streamed_while_the_command_runs(tmp_path):
    # The child prints, then blocks until the sink (on seeing the line) writes into a fifo:
    # the run can only finish if the line reached the sink before the child exited.
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    script = f"""
    print("waiting", flush=True)
    with open({str(fifo)!r}) as go:
        print("got", go.read())
    """
    package = make_package(tmp_path, {"train": "python wait.py"}, {"wait.py": script})

    def sink(stream: str, line: str) -> None:
        if line == "waiting":
            fifo.write_text("go")

    Dispatcher(package, sink=sink).run("train", timeout=60)


def test_timeout_stops_the_command_and_says_so(tmp_path):
    script = "import time\ntime.sleep(120)\n"
    package = make_package(tmp_path, {"train": "python slow.py"}, {"slow.py": script})
    with pytest.raises(PackageError, match=r"'train' \(python slow.py\) did not finish within 0.5 s"):
        Dispatcher(package).run("train", timeout=0.5)


def test_stop_ends_a_running_entry_point_and_its_children(tmp_path):
    # train starts a child of its own, as a data loader would; both must go when the client stops.
    script = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"child {child.pid}", flush=True)
    time.sleep(600)
    """
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": script})
    started = threading.Event()
    children: list[int] = []

    def sink(stream: str, line: str) -> None:
        if line.startswith("child "):
            children.append(int(line.split()[1]))
            started.set()

    dispatcher = Dispatcher(package, sink=sink)
    outcome: list[BaseException] = []

    def train() -> None:
        try:
            dispatcher.run("train")
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=train)
    runner.start()
    assert started.wait(timeout=30), "train never started its child"
    child = psutil.Process(children[0])

    assert dispatcher.stop(grace=5) == 1
    runner.join(timeout=10)

    assert not runner.is_alive()
    assert isinstance(outcome[0], PackageError) and "killed by signal 15" in str(outcome[0])
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert dispatcher.stop() == 0


def test_missing_project_file_names_the_path(tmp_path):
    with pytest.raises(PackageError) as excinfo:
        Dispatcher(tmp_path)
    assert f"no scaleout.yaml at {tmp_path / 'scaleout.yaml'}" in str(excinfo.value)


def test_invalid_yaml_names_the_file_and_the_parse_error(tmp_path):
    (tmp_path / "scaleout.yaml").write_text("entry_points:\n  train: [unclosed\n")
    with pytest.raises(PackageError) as excinfo:
        load_project(tmp_path)
    assert str(excinfo.value) == (
        f"{tmp_path / 'scaleout.yaml'} is not valid YAML at line 3, column 1: "
        "expected ',' or ']', but got '<stream end>'; fix the syntax"
    )


NOT_A_COMMAND = "entry_points.train must be a mapping with a 'command'"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("python_env: python_env.yaml\n", "has no 'entry_points' mapping"),
        ("entry_points: [train]\n", "has no 'entry_points' mapping"),
        ("entry_points:\n  train: python train.py\n", NOT_A_COMMAND),
        ("entry_points:\n  train:\n    command: ''\n", NOT_A_COMMAND),
        ("entry_points:\n  train:\n    command: python 'x\n", "entry_points.train.command cannot be parsed"),
        ("- just\n- a list\n", "must be a mapping with an 'entry_points' key"),
    ],
)
def test_malformed_project_file_names_the_key(tmp_path, content, expected):
    (tmp_path / "scaleout.yaml").write_text(content)
    with pytest.raises(PackageError, match=expected):
        load_project(tmp_path)


def test_unknown_entry_point_says_where_to_add_it(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"})
    with pytest.raises(PackageError) as excinfo:
        Dispatcher(package).run("validate")
    assert "scaleout.yaml has no entry point 'validate'; add one under entry_points" in str(excinfo.value)
    assert "(declared: train)" in str(excinfo.value)


def test_command_not_found_is_a_package_error(tmp_path):
    package = make_package(tmp_path, {"train": "no-such-program-xyz --go"})
    with pytest.raises(PackageError, match="could not start 'no-such-program-xyz'"):
        Dispatcher(package).run("train")


def test_missing_python_env_file_is_named(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"})
    (package / "scaleout.yaml").write_text("python_env: env.yaml\nentry_points: {train: {command: x}}\n")
    with pytest.raises(PackageError) as excinfo:
        Dispatcher(package, env_dir=tmp_path / "envs").run("train")
    assert f"python_env file {package.resolve() / 'env.yaml'} does not exist" in str(excinfo.value)


# --- python_env.yaml parsing (no venv) ------------------------------------------------------------


def test_runtime_packages_are_dropped_whatever_their_specifier_and_numpy_added(tmp_path):
    spec_file = tmp_path / "python_env.yaml"
    spec_file.write_text(
        "name: demo\npython: '3.11'\nbuild_dependencies: [pip, 'scaleoututil>=1']\n"
        "dependencies: ['scaleout==0.33', 'Scaleout_Edge [extra] >= 2', scaleout-edge, 'requests<3']\n"
    )
    spec = load_spec(spec_file)
    assert spec.build_dependencies == ("pip",)
    assert spec.dependencies == ("requests<3", "numpy")
    assert spec.python == "3.11"


def test_numpy_is_not_added_twice(tmp_path):
    spec_file = tmp_path / "python_env.yaml"
    spec_file.write_text("dependencies: ['NumPy==2.*']\n")
    assert load_spec(spec_file).dependencies == ("NumPy==2.*",)
    assert requirement_name("NumPy==2.*") == "numpy"


def test_dependencies_must_be_a_list_of_strings(tmp_path):
    spec_file = tmp_path / "python_env.yaml"
    spec_file.write_text("dependencies: numpy\n")
    with pytest.raises(PackageError, match="'dependencies' must be a list of requirement strings"):
        load_spec(spec_file)


def test_the_venv_key_changes_with_the_spec_but_not_with_dropped_entries(tmp_path):
    def env_path(dependencies: str) -> Path:
        (tmp_path / "python_env.yaml").write_text(f"name: demo\ndependencies: {dependencies}\n")
        return PythonEnv(tmp_path / "python_env.yaml", tmp_path / "envs").path

    assert env_path("[numpy]") == env_path("[numpy, scaleout==1.0]") == env_path("[]")
    assert env_path("[numpy, requests]") != env_path("[numpy]")


# --- real venvs (a few seconds each: venv + pip install numpy from the local index) ---------------

IMPORT_CHECK = """
import json, sys
import scaleoututil
from scaleoututil.helpers.helpers import get_helper
get_helper("numpyhelper")
with open(sys.argv[1], "w") as out:
    json.dump({"prefix": sys.prefix, "scaleoututil": scaleoututil.__file__}, out)
"""

# The runtime entries name versions that do not exist: the build fails unless they are dropped.
SMALL_ENV = {
    "name": "small",
    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    "dependencies": ["scaleout==999.0", "scaleoututil>=999", "scaleout-edge==999"],
}


@pytest.mark.slow
def test_python_env_venv_is_created_once_reused_and_rebuilt_after_a_crash(tmp_path):
    package = make_package(
        tmp_path, {"train": "python check.py"}, {"check.py": IMPORT_CHECK}, python_env=SMALL_ENV
    )
    env_dir = tmp_path / "envs"
    out = tmp_path / "report.json"
    dispatcher = Dispatcher(package, env_dir=env_dir)
    dispatcher.run("train", [out])

    report = json.loads(out.read_text())
    venv = dispatcher.python_env()
    assert Path(report["prefix"]) == venv.path, "python in the command must be the venv's"
    assert Path(report["scaleoututil"]).is_relative_to(venv.path), "scaleoututil comes from the venv copy"
    marker = venv.path / MARKER_NAME
    built = marker.stat().st_mtime_ns

    # A second dispatcher (another client on this machine) reuses the venv as it is.
    Dispatcher(package, env_dir=env_dir).run("train", [out])
    assert marker.stat().st_mtime_ns == built
    assert [p.name for p in env_dir.iterdir() if p.is_dir()] == [venv.path.name]

    # A build that died before its marker is thrown away and redone.
    marker.unlink()
    (venv.path / "half-installed").write_text("")
    Dispatcher(package, env_dir=env_dir).run("train", [out])
    assert marker.is_file()
    assert not (venv.path / "half-installed").exists()


BUILD_ONCE = """
import json, sys
from pathlib import Path
from scaleout.client.python_env import PythonEnv

env = PythonEnv(Path(sys.argv[1]), Path(sys.argv[2]))
builds = []
build = env._build
env._build = lambda: (builds.append(1), build())
env.ensure()
print(json.dumps({"builds": len(builds), "path": str(env.path)}))
"""


@pytest.mark.slow
def test_two_processes_creating_the_same_venv_build_it_once(tmp_path):
    spec_file = tmp_path / "python_env.yaml"
    spec_file.write_text(json.dumps(SMALL_ENV))
    command = [sys.executable, "-c", BUILD_ONCE, str(spec_file), str(tmp_path / "envs")]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert sorted(r["builds"] for r in reports) == [0, 1]
    assert reports[0]["path"] == reports[1]["path"]
    assert (Path(reports[0]["path"]) / MARKER_NAME).is_file()


@pytest.mark.slow
def test_failed_install_names_the_spec_and_leaves_no_ready_venv(tmp_path):
    spec_file = tmp_path / "python_env.yaml"
    # A local path that does not exist: pip fails at once, without asking an index.
    spec_file.write_text("name: broken\nbuild_dependencies: ['./no-such-dir']\n")
    env = PythonEnv(spec_file, tmp_path / "envs")
    with pytest.raises(PackageError) as excinfo:
        env.ensure()
    message = str(excinfo.value)
    assert f"could not install build_dependencies in {env.path} for {spec_file}" in message
    assert "no-such-dir" in message
    assert not env.ready
