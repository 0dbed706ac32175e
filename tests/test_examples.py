"""The example compute packages, driven end to end through the real `scaleout` CLI.

Each test copies a package to a temporary directory and runs its entry points as a data scientist
(and a client, during a round) would: build -> startup -> train -> validate. The pytorch example runs
in the virtualenv the dispatcher creates from its python_env.yaml; set SCALEOUT_ENV_DIR to choose the
cache, otherwise `.scaleout/envs` in the repository is used so that reruns reuse it.
"""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
N_DIGITS = 1797  # scikit-learn's bundled digits
METRIC_NAMES = {"training_loss", "training_accuracy", "test_loss", "test_accuracy"}


def scaleout_executable() -> str:
    """The `scaleout` script of the running installation (next to this interpreter), else on PATH."""
    beside = Path(sys.executable).parent / "scaleout"
    found = str(beside) if beside.exists() else shutil.which("scaleout")
    assert found, f"no `scaleout` executable next to {sys.executable} or on PATH; run `make install`"
    return found


def scaleout(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [scaleout_executable(), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, (
        f"`scaleout {' '.join(args)}` exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def run_script(package: Path, *args: str | Path, env: dict[str, str]) -> None:
    """Run ``python <args>`` in the package folder with this interpreter, as an entry point runs."""
    result = subprocess.run(
        [sys.executable, *map(str, args)], cwd=package, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"python {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}"
    )


def load_example_module(example: str, name: str):
    """Import examples/<example>/client/<name>.py under a unique name (both examples have a `data`)."""
    path = EXAMPLES / example / "client" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{example.replace('-', '_')}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_package(example: str, dest: Path) -> Path:
    """A clean copy of the example's compute package (no data or models from earlier runs)."""
    package = dest / example / "client"
    shutil.copytree(
        EXAMPLES / example / "client",
        package,
        ignore=shutil.ignore_patterns("data", "__pycache__", "*.npz", "*.npz-metadata"),
    )
    return package


def load_npz(path: Path) -> list[np.ndarray]:
    with np.load(path) as arrays:
        return [arrays[str(i)] for i in range(len(arrays.files))]


def assert_valid_metrics(metrics: dict) -> None:
    assert set(metrics) >= METRIC_NAMES, f"missing metrics: {METRIC_NAMES - set(metrics)}"
    for name, value in metrics.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{name}={value!r}"
        assert math.isfinite(value), f"{name}={value!r}"
    for name in ("training_accuracy", "test_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0, f"{name}={metrics[name]!r}"
    for name in ("training_loss", "test_loss"):
        assert metrics[name] >= 0.0, f"{name}={metrics[name]!r}"


def example_env(partition: int, num_partitions: int) -> dict[str, str]:
    return dict(
        os.environ,
        SCALEOUT_DATA_PARTITION=str(partition),
        SCALEOUT_NUM_PARTITIONS=str(num_partitions),
    )


# --- the data partitioning, shared by both examples ---------------------------------------------


@pytest.fixture(scope="module", params=["mnist-numpy", "mnist-pytorch"])
def data_module(request):
    # The pytorch example's data.py imports torch only to save and load, so this runs without it.
    return load_example_module(request.param, "data")


@pytest.mark.parametrize("num_partitions", [1, 2, 3, 5])
def test_partitions_are_disjoint_and_cover_the_data_set(data_module, num_partitions):
    parts = [data_module.partition_indices(N_DIGITS, num_partitions, p) for p in range(num_partitions)]
    every_index = np.concatenate([np.concatenate(part) for part in parts])
    assert len(every_index) == N_DIGITS, "an index is used twice or left out"
    assert np.array_equal(np.sort(every_index), np.arange(N_DIGITS))
    for train, test in parts:
        assert len(train) > 0 and len(test) > 0
        assert len(train) == round(0.8 * (len(train) + len(test)))


def test_partitions_are_deterministic_and_the_same_in_both_examples():
    numpy_data = load_example_module("mnist-numpy", "data")
    pytorch_data = load_example_module("mnist-pytorch", "data")
    for partition in range(3):
        first = numpy_data.partition_indices(N_DIGITS, 3, partition)
        again = numpy_data.partition_indices(N_DIGITS, 3, partition)
        other_example = pytorch_data.partition_indices(N_DIGITS, 3, partition)
        for a, b, c in zip(first, again, other_example, strict=True):
            assert np.array_equal(a, b)
            assert np.array_equal(a, c)


def test_partition_holds_28x28_images_in_unit_range_with_all_ten_classes(data_module):
    arrays = data_module.make_partition(1, 2)
    train, test = data_module.partition_indices(N_DIGITS, 2, 1)
    for split, indices in (("train", train), ("test", test)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        assert x.shape == (len(indices), 28, 28) and x.dtype == np.float32
        assert y.shape == (len(indices),) and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
        # MNIST's layout: the digit sits in the centre 20x20 box, the 4-pixel border is empty.
        assert not x[:, :4].any() and not x[:, -4:].any() and not x[:, :, :4].any() and not x[:, :, -4:].any()
    assert set(arrays["y_train"].tolist()) == set(range(10))


def test_partition_out_of_range_is_rejected_naming_the_variable(data_module):
    with pytest.raises(ValueError, match=r"SCALEOUT_DATA_PARTITION must be in 0\.\.1"):
        data_module.partition_indices(N_DIGITS, 2, 2)


# --- mnist-numpy ---------------------------------------------------------------------------------


def test_mnist_numpy_end_to_end_through_the_cli(tmp_path):
    partition, num_partitions = 1, 3
    expected_train, _ = load_example_module("mnist-numpy", "data").partition_indices(
        N_DIGITS, num_partitions, partition
    )
    package = copy_package("mnist-numpy", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = example_env(partition, num_partitions)

    scaleout("run", "build", "--path", str(package), "--output", str(work), env=env)
    seed = work / "seed.npz"
    assert [a.shape for a in load_npz(seed)] == [(784, 10), (10,)]

    scaleout("run", "startup", "--path", str(package), env=env)
    assert (package / "data" / "clients" / str(partition + 1) / "mnist.npz").is_file()

    seed_metrics_path = work / "seed_validation.json"
    scaleout(
        "run",
        "validate",
        "--path",
        str(package),
        "--input",
        str(seed),
        "--output",
        str(seed_metrics_path),
        env=env,
    )
    seed_metrics = json.loads(seed_metrics_path.read_text())
    assert_valid_metrics(seed_metrics)

    # A few local rounds, each starting from the previous update.
    model = seed
    for round_index in range(1, 4):
        update = work / f"model_update_{round_index}.npz"
        result = scaleout(
            "run", "train", "--path", str(package), "--input", str(model), "--output", str(update), env=env
        )
        metadata = json.loads(Path(f"{update}-metadata").read_text())
        assert metadata["num_examples"] == len(expected_train)
        assert str(len(expected_train)) in result.stdout, "the CLI should print num_examples"
        assert [a.shape for a in load_npz(update)] == [(784, 10), (10,)]
        model = update

    metrics_path = work / "validation.json"
    result = scaleout(
        "run",
        "validate",
        "--path",
        str(package),
        "--input",
        str(model),
        "--output",
        str(metrics_path),
        env=env,
    )
    metrics = json.loads(metrics_path.read_text())
    assert_valid_metrics(metrics)
    assert "test_accuracy" in result.stdout, "the CLI should print the metrics"
    assert seed_metrics["test_accuracy"] < 0.3
    assert metrics["test_accuracy"] > seed_metrics["test_accuracy"] + 0.4
    assert metrics["test_loss"] < seed_metrics["test_loss"]

    # The package leaves out the data partition that startup wrote, as .ignore says.
    scaleout("package", "create", "--path", str(package), "--output", str(work), env=env)
    (tarball,) = work.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        names = {Path(name).as_posix().removeprefix("./") for name in tar.getnames()}
    assert {"scaleout.yaml", "model.py", "data.py", "train.py", "validate.py"} <= names
    assert not [name for name in names if name == "data" or name.startswith("data/")], names


def test_mnist_numpy_train_takes_round_settings_from_input_metadata(tmp_path):
    package = copy_package("mnist-numpy", tmp_path)
    env = example_env(0, 2)
    run_script(package, "model.py", env=dict(env, SCALEOUT_BUILD_OUTPUT_DIR=str(tmp_path)))
    seed = tmp_path / "seed.npz"
    Path(f"{seed}-metadata").write_text(json.dumps({"epochs": 2, "lr": 0.05, "unrelated": "ignored"}))
    update = tmp_path / "update.npz"
    run_script(package, "train.py", seed, update, env=env)
    metadata = json.loads(Path(f"{update}-metadata").read_text())
    assert (metadata["epochs"], metadata["lr"], metadata["batch_size"]) == (2, 0.05, 32)


def test_mnist_numpy_federated_average_improves_over_rounds(tmp_path):
    """Three clients, five rounds of FedAvg weighted by num_examples: accuracy climbs from chance."""
    num_partitions = 3
    package = copy_package("mnist-numpy", tmp_path)
    model_module = load_example_module("mnist-numpy", "model")
    data_module = load_example_module("mnist-numpy", "data")
    test_sets = [data_module.make_partition(p, num_partitions) for p in range(num_partitions)]

    def mean_test_accuracy(model_path):
        parameters = model_module.load_parameters(str(model_path))
        return float(
            np.mean(
                [
                    model_module.loss_and_accuracy(parameters, part["x_test"], part["y_test"])[1]
                    for part in test_sets
                ]
            )
        )

    run_script(package, "model.py", env=dict(os.environ, SCALEOUT_BUILD_OUTPUT_DIR=str(tmp_path)))
    global_model = tmp_path / "seed.npz"
    history = [mean_test_accuracy(global_model)]
    for round_index in range(1, 6):
        total, weighted_sum = 0, None
        for partition in range(num_partitions):
            update = tmp_path / f"round{round_index}_client{partition}.npz"
            run_script(package, "train.py", global_model, update, env=example_env(partition, num_partitions))
            n = json.loads(Path(f"{update}-metadata").read_text())["num_examples"]
            weighted = [n * a.astype(np.float64) for a in load_npz(update)]
            weighted_sum = (
                weighted
                if weighted_sum is None
                else [s + w for s, w in zip(weighted_sum, weighted, strict=True)]
            )
            total += n
        global_model = tmp_path / f"global_{round_index}.npz"
        np.savez(global_model, **{str(i): (s / total).astype(np.float32) for i, s in enumerate(weighted_sum)})
        history.append(mean_test_accuracy(global_model))

    assert history[0] < 0.2, history
    assert history[-1] > 0.8, history
    assert history[-1] > history[1], history


# --- mnist-pytorch (the spec's code, in the venv built from python_env.yaml) ---------------------


@pytest.mark.torch
@pytest.mark.slow
def test_mnist_pytorch_end_to_end_through_the_cli(tmp_path):
    partition, num_partitions = 0, 2
    expected_train, _ = load_example_module("mnist-pytorch", "data").partition_indices(
        N_DIGITS, num_partitions, partition
    )
    package = copy_package("mnist-pytorch", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = example_env(partition, num_partitions)
    env.setdefault("SCALEOUT_ENV_DIR", str(REPO / ".scaleout" / "envs"))

    # The first command creates the venv (torch from the local wheel); allow for it.
    scaleout("run", "build", "--path", str(package), "--output", str(work), env=env, timeout=900)
    # The spec's model.py writes "../seed.npz" whatever the variable says; the CLI copies it to --output.
    seed = work / "seed.npz"
    seed_parameters = load_npz(seed)
    assert [a.shape for a in seed_parameters] == [(64, 784), (64,), (32, 64), (32,), (10, 32), (10,)]

    scaleout("run", "startup", "--path", str(package), env=env)
    assert (package / "data" / "clients" / str(partition + 1) / "mnist.pt").is_file()

    update = work / "model_update.npz"
    scaleout("run", "train", "--path", str(package), "--input", str(seed), "--output", str(update), env=env)
    metadata = json.loads(Path(f"{update}-metadata").read_text())
    assert metadata["num_examples"] == len(expected_train)
    update_parameters = load_npz(update)
    assert [a.shape for a in update_parameters] == [a.shape for a in seed_parameters]
    assert any(not np.array_equal(a, b) for a, b in zip(update_parameters, seed_parameters, strict=True))

    metrics_path = work / "validation.json"
    scaleout(
        "run",
        "validate",
        "--path",
        str(package),
        "--input",
        str(update),
        "--output",
        str(metrics_path),
        env=env,
    )
    assert_valid_metrics(json.loads(metrics_path.read_text()))
