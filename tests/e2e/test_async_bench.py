"""The async benchmarks' own parts: the paced mnist-numpy package trains exactly as the example does, and
the SVG chart draws what it is given."""

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.async_bench import bench, parse_args
from benchmarks.async_mnist import EXAMPLE, PACE_VARIABLE, paced_package
from benchmarks.svg_plot import line_chart, nice_ticks
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import SCALEOUT

pytestmark = pytest.mark.timeout(180)


def test_the_paced_package_is_the_example_plus_a_train_wrapper(tmp_path: Path) -> None:
    package = paced_package(tmp_path)

    compared = filecmp.dircmp(EXAMPLE, package, ignore=["data", "__pycache__", "seed.npz"])
    assert compared.diff_files == ["scaleout.yaml"]
    assert compared.right_only == ["slow_train.py"]
    assert [n for n in compared.left_only if not n.endswith(".npz")] == []
    assert "command: python slow_train.py" in (package / "scaleout.yaml").read_text()


def test_the_wrapped_train_makes_the_same_update_as_the_example(tmp_path: Path) -> None:
    """Its sleep aside, the paced entry point is the example's train: same model in, same bytes out."""
    package = paced_package(tmp_path / "paced")
    example = Path(shutil.copytree(EXAMPLE, tmp_path / "example", ignore=shutil.ignore_patterns("data")))
    subprocess.run([SCALEOUT, "run", "build", "--path", str(example), "--output", str(tmp_path)], check=True)
    seed = str(tmp_path / "seed.npz")
    env = {**os.environ, PACE_VARIABLE: "0.1", "SCALEOUT_DATA_PARTITION": "1", "SCALEOUT_NUM_PARTITIONS": "3"}
    helper = get_helper("numpyhelper")
    outputs = []
    for folder, script in ((package, "slow_train.py"), (example, "train.py")):
        out = str(tmp_path / f"{folder.name}.npz")
        subprocess.run([sys.executable, script, seed, out], cwd=folder, env=env, check=True)
        outputs.append(helper.load(out))
    paced, original = outputs
    assert all(np.array_equal(a, b) for a, b in zip(paced, original, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(paced, helper.load(seed), strict=True))


def test_the_chart_has_a_line_per_series_on_round_ticks(tmp_path: Path) -> None:
    assert nice_ticks(0, 0.89) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(0, 34.4) == [0, 10, 20, 30, 40]
    path = tmp_path / "chart.svg"
    line_chart(
        path, {"sync": [(0, 0.1), (30, 0.8)], "async <fast>": [(0, 0.1), (5, 0.5), (10, 0.85)]}, "t", "x", "y"
    )
    svg = path.read_text()
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 5
    assert "async &lt;fast&gt;" in svg


def test_the_benchmark_runs_both_modes_on_a_small_swarm() -> None:
    """A smoke run of benchmarks/async_bench.py: both sessions commit every step, each of at least K
    updates, and end at the model their records imply; the times it prints are not asserted."""
    small = {"clients": 12, "processes": 1, "train-seconds": 0.2, "slow-factor": 5, "buffer": 4}
    small |= {"concurrency": 8, "rounds": 2, "versions": 4}
    args = parse_args([part for name, value in small.items() for part in (f"--{name}", str(value))])
    sync, asynchronous = bench(args)

    assert (sync.mode, sync.steps, sync.updates, sync.status) == ("sync", 2, [4, 4], "Finished")
    # 1 slow client of 12 (swarm-9): 4 picked at random include it with odds 1 - C(11, 4) / C(12, 4)
    assert re.fullmatch(
        r"seed \+ 2 exact; [012] of 2 rounds selected a slow client \(expected 33\.3%\)", sync.check
    )
    assert set(sync.staleness) == {0}
    assert (asynchronous.mode, asynchronous.steps, asynchronous.status) == ("async", 4, "Finished")
    # a version folds at least K updates (those arriving while the buffer is flushed join it)
    assert len(asynchronous.updates) == 4 and min(asynchronous.updates) >= 4
    assert len(asynchronous.staleness) == sum(asynchronous.updates)
    assert "within" in asynchronous.check and "NOT" not in asynchronous.check
