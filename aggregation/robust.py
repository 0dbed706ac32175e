"""What the robust aggregators share: a round's updates kept on disk and combined block by block.

A robust rule needs every update at once, so the combiner keeps each checked update's spooled file
(moved, not copied) and, when the round ends, reads all K of them in lockstep a block at a time:
memory is about K blocks plus the block being combined, never K models. Robust rules are unweighted
(a Byzantine client could claim any num_examples); ``total`` still sums num_examples, which weighs
this combiner's result against other combiners' at the controller (robust per combiner).
"""

import contextlib
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import cast, lockstep
from scaleout.aggregation.npzfile import ArraySpec, NpzReader, write_npz_slices


class RobustAggregator(ABC):
    """Keeps the round's updates in a directory of its own; ``combine`` reduces a (K, block) stack."""

    name: str

    def __init__(self, specs: list[ArraySpec], work_dir: Path | None = None) -> None:
        self.specs = specs
        self.total = 0
        self.count = 0
        self._dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=work_dir))
        self._paths: list[Path] = []

    def fold(self, path: Path, num_examples: int) -> None:
        kept = self._dir / f"{self.count}.npz"
        shutil.move(path, kept)  # a rename on the combiner's work dir: no copy
        self._paths.append(kept)
        self.total += num_examples
        self.count += 1

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def min_updates(self) -> int:
        return 1

    def write(self, path: Path) -> None:
        if self.count < self.min_updates():
            raise ValueError(
                f"{self.name} needs at least {self.min_updates()} updates at a combiner, it has {self.count}"
            )
        with contextlib.ExitStack() as stack:
            readers = [stack.enter_context(NpzReader(p)) for p in self._paths]
            self.prepare(readers)
            write_npz_slices(
                path, ((spec, self._combined(readers, i, spec)) for i, spec in enumerate(self.specs))
            )

    def prepare(self, readers: list[NpzReader]) -> None:
        """A first pass over the updates before combining (Krum's distances); none by default."""
        return None

    def stacks(self, readers: list[NpzReader], index: int, size: int) -> Iterator[np.ndarray]:
        """Array ``index`` of every update, as (K, block) float64 stacks."""
        for blocks in lockstep([r.slices(str(index)) for r in readers], size):
            yield np.stack([b.astype(np.float64, copy=False) for b in blocks])

    @abstractmethod
    def combine(self, stack: np.ndarray) -> np.ndarray:
        """The aggregate of a (K, block) stack of the updates' elements."""

    def _combined(self, readers: list[NpzReader], index: int, spec: ArraySpec) -> Iterator[np.ndarray]:
        for stack in self.stacks(readers, index, spec.size):
            yield cast(self.combine(stack), spec.dtype)
