"""The seed model: the initiator runs the compute package's build entry point, which writes seed.npz.

Shared by `scaleout run build`, `scaleout local` and `scaleout init`, so all three find the seed the
same way: in SCALEOUT_BUILD_OUTPUT_DIR, or beside the package folder, where the spec's model.py writes
``../seed.npz`` whatever the variable says (it is then copied into the output folder).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from scaleout.client.dispatcher import Dispatcher
from scaleout.client.outputs import stamp, written
from scaleout.errors import PackageError

SEED_NAME = "seed.npz"
OUTPUT_DIR_VARIABLE = "SCALEOUT_BUILD_OUTPUT_DIR"

RunBuild = Callable[[Mapping[str, str]], object]


@dataclass(frozen=True)
class SeedBuild:
    """What one run of build left: the seed in the output folder (None if it wrote none)."""

    seed: Path | None
    output_dir: Path
    beside_package: Path
    copied: bool = False  # build wrote it beside the package and it was copied into output_dir

    def require(self) -> Path:
        """The seed, or a PackageError saying where it was looked for and the fix."""
        if self.seed is None:
            raise PackageError(
                f"the build entry point wrote no {SEED_NAME} (looked in {self.output_dir} and "
                f"{self.beside_package.parent}); write it to ${OUTPUT_DIR_VARIABLE} or pass --seed"
            )
        return self.seed


def build_seed(package_dir: Path, output_dir: Path, run_build: RunBuild | None = None) -> SeedBuild:
    """Run build with SCALEOUT_BUILD_OUTPUT_DIR=output_dir and locate the seed it wrote.

    `run_build(extra_env)` runs the entry point (the CLI passes one that echoes its output); by default
    a Dispatcher runs it. Files are compared with their state before the run, so an old seed.npz is
    never taken for this build's.
    """
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    seed = output_dir / SEED_NAME
    beside_package = package_dir.resolve().parent / SEED_NAME
    before = {path: stamp(path) for path in (seed, beside_package)}
    run = run_build or (lambda env: Dispatcher(package_dir).run("build", extra_env=env))
    run({OUTPUT_DIR_VARIABLE: str(output_dir)})
    if written(seed, before[seed]):
        return SeedBuild(seed, output_dir, beside_package)
    if written(beside_package, before[beside_package]):
        shutil.copyfile(beside_package, seed)
        return SeedBuild(seed, output_dir, beside_package, copied=True)
    return SeedBuild(None, output_dir, beside_package)
