"""The chaos test's deterministic compute package and the model values it must produce.

train adds the client's constant CHAOS_K to every parameter of the model it was given and reports
CHAOS_N examples, after CHAOS_TRAIN_SECONDS of "training" so that faults can land inside a round. A round
whose accepted clients are C therefore commits exactly parent + sum(K_c * N_c) / sum(N_c) over C; an
update computed from an older model (a stale round) is lower by at least one round's shift and shows.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import make_package

TRAIN_SECONDS = 1.0

TRAIN = """
import os, sys, time
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
in_path, out_path = sys.argv[1], sys.argv[2]
time.sleep(float(os.environ["CHAOS_TRAIN_SECONDS"]))
weights = helper.load(in_path)
save_metadata({"num_examples": int(os.environ["CHAOS_N"])}, out_path)
helper.save([w + float(os.environ["CHAOS_K"]) for w in weights], out_path)
"""

# float64 so that ten or a hundred rounds of additions stay exact to far below the 1e-6 tolerance.
SEED = [np.zeros((3, 4), dtype=np.float64), np.linspace(-1.0, 1.0, 7, dtype=np.float64)]

helper = get_helper("numpyhelper")


@dataclass(frozen=True)
class ClientSpec:
    """One client's constant and example count; its environment is the same across restarts."""

    name: str
    k: float
    n: int

    @property
    def env(self) -> dict[str, str]:
        return {"CHAOS_K": repr(self.k), "CHAOS_N": str(self.n), "CHAOS_TRAIN_SECONDS": str(TRAIN_SECONDS)}


def client_specs(count: int) -> list[ClientSpec]:
    """Distinct constants and weights, so any wrong weighting or missing client changes the value."""
    return [ClientSpec(f"client-{i}", k=1.0 + i * 0.75, n=10 + 7 * i) for i in range(count)]


def write_package(root: Path) -> Path:
    return make_package(root, TRAIN)


def write_seed(path: Path) -> Path:
    helper.save(SEED, str(path))
    return path


def round_shift(accepted: dict[str, int], specs: dict[str, ClientSpec]) -> float:
    """The exact shift a round adds: the examples-weighted mean of its accepted clients' constants."""
    total = sum(accepted.values())
    return sum(specs[client].k * n for client, n in accepted.items()) / total


def load(path: Path) -> list[np.ndarray]:
    return helper.load(str(path))
