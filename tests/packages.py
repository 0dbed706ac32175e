"""Small self-made compute packages for the dispatcher, package and CLI tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import yaml

NUM_EXAMPLES = 7

# train: the model plus one, with a known num_examples; validate: metrics computed from the model.
TRAIN_PLUS_ONE = f"""
import sys
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
weights = helper.load(sys.argv[1])
save_metadata({{"num_examples": {NUM_EXAMPLES}, "note": "plus one"}}, sys.argv[2])
helper.save([w + 1 for w in weights], sys.argv[2])
"""

VALIDATE_MEAN = """
import sys
import numpy as np
from scaleoututil.helpers.helpers import get_helper, save_metrics

weights = get_helper("numpyhelper").load(sys.argv[1])
save_metrics({"mean": float(np.mean(weights[0])), "arrays": len(weights)}, sys.argv[2])
"""

BUILD_SEED = """
import os
import numpy as np
from scaleoututil.helpers.helpers import get_helper

out_dir = os.environ.get("SCALEOUT_BUILD_OUTPUT_DIR", "..")
get_helper("numpyhelper").save([np.zeros(3), np.ones((2, 2))], os.path.join(out_dir, "seed.npz"))
"""

# What the spec's model.py does: write ../seed.npz whatever SCALEOUT_BUILD_OUTPUT_DIR says.
BUILD_SEED_BESIDE_PACKAGE = """
import numpy as np
from scaleoututil.helpers.helpers import get_helper

get_helper("numpyhelper").save([np.zeros(3), np.ones((2, 2))], "../seed.npz")
"""


def make_package(
    root: Path,
    entry_points: Mapping[str, str],
    files: Mapping[str, str] = (),
    python_env: Mapping[str, object] | None = None,
) -> Path:
    """Write a compute package under ``root/client``: scaleout.yaml, the given files, python_env.yaml."""
    package = root / "client"
    package.mkdir(parents=True, exist_ok=True)
    project: dict[str, object] = {"entry_points": {name: {"command": c} for name, c in entry_points.items()}}
    if python_env is not None:
        project = {"python_env": "python_env.yaml", **project}
        (package / "python_env.yaml").write_text(yaml.safe_dump(dict(python_env)))
    (package / "scaleout.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    for name, content in dict(files).items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip())
    return package


def model_package(root: Path, build_script: str = BUILD_SEED) -> Path:
    """A package whose train adds one to every weight and reports NUM_EXAMPLES."""
    return make_package(
        root,
        {
            "build": "python build.py",
            "train": "python train.py",
            "validate": "python validate.py",
        },
        {"build.py": build_script, "train.py": TRAIN_PLUS_ONE, "validate.py": VALIDATE_MEAN},
    )
