"""Command-line options of the chaos test (registered from tests/conftest.py so that `pytest` from the
repository root knows them too).

    --chaos-seed N       replay a schedule: run with this seed (repeatable; or SCALEOUT_CHAOS_SEED=N[,M])
    --chaos-long         run the long chaos sessions too (`make chaos`)
    --chaos-seeds N      the long run uses N fresh random seeds when no --chaos-seed is given
    --chaos-kinds K,...  inject only these kinds of fault (or SCALEOUT_CHAOS_KINDS), to isolate one
    --chaos-max-pause S  longest SIGSTOP of a client in seconds (default 20 bounded, 90 long)
"""

import os
import random

import pytest

from tests.chaos.schedule import FaultKind

BOUNDED_SEED = 9  # the bounded run in `make test` replays one schedule, so the default run is repeatable


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "chaos test (tests/chaos, issue 9)")
    group.addoption(
        "--chaos-seed",
        action="append",
        type=int,
        default=[],
        help="seed of the fault schedule, to replay a run (repeatable; or SCALEOUT_CHAOS_SEED=N[,M])",
    )
    group.addoption("--chaos-long", action="store_true", help="also run the long chaos sessions")
    group.addoption(
        "--chaos-kinds",
        default=None,
        help=f"comma-separated fault kinds to inject (default all: {','.join(FaultKind)}; "
        "or SCALEOUT_CHAOS_KINDS)",
    )
    group.addoption(
        "--chaos-max-pause",
        type=float,
        default=None,
        help="longest SIGSTOP of a client, seconds (default 20 in the bounded run, 90 in the long one)",
    )
    group.addoption(
        "--chaos-seeds", type=int, default=3, help="fresh random seeds for the long run (default 3)"
    )


def fault_kinds(config: pytest.Config) -> list[FaultKind]:
    """The kinds of fault to inject: --chaos-kinds, else SCALEOUT_CHAOS_KINDS, else all of them."""
    value = config.getoption("--chaos-kinds") or os.environ.get("SCALEOUT_CHAOS_KINDS", "")
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(names) - set(FaultKind))
    if unknown:
        raise pytest.UsageError(f"unknown chaos fault kinds {unknown}: choose from {', '.join(FaultKind)}")
    return [FaultKind(name) for name in names] or list(FaultKind)


def given_seeds(config: pytest.Config) -> list[int]:
    """Seeds from --chaos-seed, else from SCALEOUT_CHAOS_SEED, else none."""
    seeds: list[int] = list(config.getoption("--chaos-seed"))
    if not seeds and (env := os.environ.get("SCALEOUT_CHAOS_SEED", "").strip()):
        seeds = [int(part) for part in env.split(",") if part.strip()]
    return seeds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`bounded_seed`: the given seed(s) or BOUNDED_SEED; `long_seed`: the given seeds or fresh ones."""
    config = metafunc.config
    if "bounded_seed" in metafunc.fixturenames:
        seeds = given_seeds(config) or [BOUNDED_SEED]
        metafunc.parametrize("bounded_seed", seeds, ids=[f"seed{s}" for s in seeds])
    if "long_seed" in metafunc.fixturenames:
        fresh = config.getoption("--chaos-seeds") if config.getoption("--chaos-long") else 1
        seeds = given_seeds(config) or [random.SystemRandom().randrange(1, 1_000_000) for _ in range(fresh)]
        metafunc.parametrize("long_seed", seeds, ids=[f"seed{s}" for s in seeds])
