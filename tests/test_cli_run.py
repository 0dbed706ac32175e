"""`scaleout run` and `scaleout package`, through click's runner and the installed `scaleout` script."""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from scaleout.cli.main import cli
from tests.packages import BUILD_SEED_BESIDE_PACKAGE, NUM_EXAMPLES, make_package, model_package


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def ok(*args: str, env: dict[str, str] | None = None):
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str) -> str:
    """Run a command that must fail cleanly: exit code 1, and no traceback of ours."""
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "a user error must not escape as an exception"
    return result.output


def write_model(path: Path, *arrays: np.ndarray) -> Path:
    np.savez(path, **{str(i): a for i, a in enumerate(arrays)})
    return path


def load_model(path: Path) -> list[np.ndarray]:
    with np.load(path) as npz:
        return [npz[str(i)] for i in range(len(npz.files))]


@pytest.fixture
def package(tmp_path) -> Path:
    return model_package(tmp_path / "project")


@pytest.fixture
def seed(tmp_path) -> Path:
    return write_model(tmp_path / "seed.npz", np.zeros(3), np.ones((2, 2)))


# --- build -------------------------------------------------------------------------------------------


def test_build_writes_the_seed_to_the_output_dir(package, tmp_path):
    out = tmp_path / "out"
    result = ok("run", "build", "--path", str(package), "--output", str(out))
    assert f"Seed model: {out / 'seed.npz'}" in result.output
    assert [a.shape for a in load_model(out / "seed.npz")] == [(3,), (2, 2)]
    assert not (package.parent / "seed.npz").exists()


def test_build_that_writes_beside_the_package_is_copied_to_the_output_dir(tmp_path):
    package = model_package(tmp_path / "project", build_script=BUILD_SEED_BESIDE_PACKAGE)
    out = tmp_path / "out"
    result = ok("run", "build", "--path", str(package), "--output", str(out))
    beside = package.parent.resolve() / "seed.npz"
    assert f"build wrote {beside} (beside the package); copied it" in result.output
    assert f"Seed model: {out / 'seed.npz'}" in result.output
    assert (out / "seed.npz").read_bytes() == beside.read_bytes()


def test_build_that_writes_no_seed_says_so(tmp_path):
    package = make_package(tmp_path, {"build": "python -c pass"})
    result = ok("run", "build", "--path", str(package), "--output", str(tmp_path / "out"))
    assert "build wrote no seed.npz" in result.output


# --- train -------------------------------------------------------------------------------------------


def test_train_runs_like_a_client_and_prints_num_examples(package, seed, tmp_path):
    out = tmp_path / "updates" / "update.npz"
    result = ok("run", "train", "--path", str(package), "--input", str(seed), "--output", str(out))
    updated = load_model(out)
    np.testing.assert_array_equal(updated[0], np.ones(3))
    np.testing.assert_array_equal(updated[1], np.full((2, 2), 2.0))
    assert f"num_examples: {NUM_EXAMPLES}" in result.output
    assert "plus one" in result.output, "the rest of the metadata is printed too"


def test_train_output_without_npz_suffix_is_found_and_explained(package, seed, tmp_path):
    out = tmp_path / "update"
    result = ok("run", "train", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert f"numpy appended .npz, so the model is at {out}.npz" in result.output
    assert f"Model update: {out}.npz" in result.output


def test_train_with_missing_input_is_a_usage_error(package, tmp_path):
    result = invoke("run", "train", "--path", str(package), "--input", "nope.npz", "--output", "o.npz")
    assert result.exit_code == 2
    assert "'nope.npz' does not exist" in result.output


TRAIN_VARIANTS = {
    "no_metadata": "import sys, shutil\nshutil.copy(sys.argv[1], sys.argv[2])\n",
    "zero_examples": (
        "import sys, shutil, json\nshutil.copy(sys.argv[1], sys.argv[2])\n"
        "json.dump({'num_examples': 0}, open(sys.argv[2] + '-metadata', 'w'))\n"
    ),
    "string_examples": (
        "import sys, shutil, json\nshutil.copy(sys.argv[1], sys.argv[2])\n"
        "json.dump({'num_examples': '7'}, open(sys.argv[2] + '-metadata', 'w'))\n"
    ),
    "bad_json": (
        "import sys, shutil\nshutil.copy(sys.argv[1], sys.argv[2])\n"
        "open(sys.argv[2] + '-metadata', 'w').write('{num_examples: 3')\n"
    ),
    "no_model": "import sys, json\njson.dump({'num_examples': 3}, open(sys.argv[2] + '-metadata', 'w'))\n",
    "crash": "import sys\nprint('loading data', file=sys.stderr)\nraise SystemExit('out of memory')\n",
}


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("no_metadata", "train did not write {out}-metadata; it must call save_metadata("),
        ("zero_examples", "has num_examples=0; it must be a positive integer"),
        ("string_examples", "has num_examples='7'; it must be a positive integer"),
        ("bad_json", "train metadata {out}-metadata is not valid JSON"),
        ("no_model", "train did not write the model to {out}"),
        ("crash", "entry point 'train' (python train.py {seed} {out}) exited with code 1"),
    ],
)
def test_train_that_breaks_the_contract_fails_with_a_clear_message(tmp_path, seed, variant, expected):
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": TRAIN_VARIANTS[variant]})
    out = tmp_path / "update.npz"
    output = fails("run", "train", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert expected.format(out=out, seed=seed) in output


def test_crash_message_carries_the_stderr_tail(tmp_path, seed):
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": TRAIN_VARIANTS["crash"]})
    output = fails("run", "train", "--path", str(package), "--input", str(seed), "--output", "u.npz")
    message = output[output.index("Error:") :]
    assert "loading data" in message and "out of memory" in message


def test_train_that_leaves_an_old_output_untouched_is_not_taken_for_a_result(tmp_path, seed):
    package = make_package(tmp_path, {"train": "python train.py"}, {"train.py": TRAIN_VARIANTS["no_model"]})
    out = write_model(tmp_path / "update.npz", np.zeros(1))  # from an earlier run
    output = fails("run", "train", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert f"train did not write the model to {out}" in output


# --- validate, predict, startup ----------------------------------------------------------------------


def test_validate_prints_the_metrics_as_a_table(package, seed, tmp_path):
    out = tmp_path / "validation.json"
    result = ok("run", "validate", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert json.loads(out.read_text()) == {"mean": 0.0, "arrays": 2}
    rows = [line for line in result.output.splitlines() if "mean" in line or "arrays" in line]
    assert len(rows) == 2 and "0" in rows[0] and "2" in rows[1]


def test_validate_output_must_be_a_json_object(tmp_path, seed):
    script = "import sys, json\njson.dump([1, 2], open(sys.argv[2], 'w'))\n"
    package = make_package(tmp_path, {"validate": "python v.py"}, {"v.py": script})
    out = tmp_path / "v.json"
    output = fails("run", "validate", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert f"validate output {out} must be a JSON object of metrics, not a list" in output


def test_validate_that_writes_nothing_fails(tmp_path, seed):
    package = make_package(tmp_path, {"validate": "python -c pass"})
    out = tmp_path / "v.json"
    output = fails("run", "validate", "--path", str(package), "--input", str(seed), "--output", str(out))
    assert f"validate did not write {out}; it must call save_metrics" in output


def test_missing_entry_point_is_named_with_the_fix(package, seed, tmp_path):
    output = fails("run", "predict", "--path", str(package), "--input", str(seed), "--output", "p.json")
    assert "scaleout.yaml has no entry point 'predict'; add one under entry_points" in output


def test_startup_runs_in_the_package_dir(tmp_path):
    script = "open('started', 'w').write('yes')\n"
    package = make_package(tmp_path, {"startup": "python s.py"}, {"s.py": script})
    ok("run", "startup", "--path", str(package))
    assert (package / "started").read_text() == "yes"


def test_folder_without_project_file_fails_naming_it(tmp_path):
    output = fails("run", "startup", "--path", str(tmp_path))
    assert f"no scaleout.yaml at {tmp_path.resolve() / 'scaleout.yaml'}" in output


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["run", "build"],
        ["run", "startup"],
        ["run", "train"],
        ["run", "validate"],
        ["run", "predict"],
        ["package"],
        ["package", "create"],
    ],
)
def test_every_command_has_help(command):
    result = ok(*command, "--help")
    assert result.output.startswith("Usage: ")


# --- package create ----------------------------------------------------------------------------------


def test_package_create_writes_the_tarball_and_its_checksum(tmp_path):
    package = make_package(
        tmp_path,
        {"train": "python train.py"},
        {"train.py": "", "big.bin": "x", ".scaleoutignore": "*.bin\n", "envs/e/bin/python": ""},
    )
    out = tmp_path / "dist"
    result = ok(
        "package",
        "create",
        "--path",
        str(package),
        "--name",
        "mine.tgz",
        "--output",
        str(out),
        env={"SCALEOUT_ENV_DIR": str(package / "envs")},
    )
    tarball = out / "mine.tgz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert names == {"scaleout.yaml", "train.py", ".scaleoutignore"}
    assert f"Created {tarball}: 3 files" in result.output
    assert "sha256 " in result.output


def test_package_create_rejects_a_name_with_a_folder(tmp_path):
    package = make_package(tmp_path, {"train": "python train.py"})
    result = invoke("package", "create", "--path", str(package), "--name", "sub/p.tgz")
    assert result.exit_code == 2 and "give a file name, and the folder with --output" in result.output


# --- the installed script, as a user runs it ---------------------------------------------------------


def scaleout_script() -> str:
    found = Path(sys.executable).parent / "scaleout"
    return str(found) if found.exists() else shutil.which("scaleout")


def test_installed_scaleout_runs_build_train_validate(package, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([scaleout_script(), *args], capture_output=True, text=True, timeout=120)

    out = tmp_path / "out"
    assert run("run", "build", "--path", str(package), "--output", str(out)).returncode == 0
    update = out / "update.npz"
    trained = run(
        "run", "train", "--path", str(package), "--input", str(out / "seed.npz"), "--output", str(update)
    )
    assert trained.returncode == 0, trained.stderr
    assert f"num_examples: {NUM_EXAMPLES}" in trained.stdout
    validated = run(
        "run", "validate", "--path", str(package), "--input", str(update), "--output", str(out / "v.json")
    )
    assert validated.returncode == 0, validated.stderr
    assert json.loads((out / "v.json").read_text()) == {"mean": 1.0, "arrays": 2}

    failed = run("run", "predict", "--path", str(package), "--input", str(update), "--output", str(out / "p"))
    assert failed.returncode == 1
    assert "has no entry point 'predict'" in failed.stderr
    assert "Traceback" not in failed.stderr
