"""Applying a ServerOptimizer to a whole model, block by block over npz files.

Reads the global model x_t, the round's mean (x_t + Delta_t) and the optimizer's previous state, and
writes the next model and the new state, in two streaming passes (the state first, since the step
reads the new state): memory is a few blocks, never a model. The state file holds, for each state
name in order, one array per model array ("0".."S*n-1"), in float32 for a float32 model (float64 for
float64 and integer models), so a session's state costs S models of disk and nothing in memory.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import cast, lockstep
from scaleout.aggregation.fedavg import accumulator_dtype
from scaleout.aggregation.npzfile import ArraySpec, NpzReader, read_specs, write_npz_slices
from scaleout.aggregation.strategy import ServerOptimizer


def state_specs(optimizer: ServerOptimizer, specs: list[ArraySpec]) -> list[ArraySpec]:
    """The arrays of the optimizer's state file for a model of ``specs``."""
    return [
        ArraySpec(shape=spec.shape, dtype=accumulator_dtype(spec.dtype))
        for _ in optimizer.states
        for spec in specs
    ]


def fits(optimizer: ServerOptimizer, specs: list[ArraySpec], state: Path) -> bool:
    """Whether ``state`` is this optimizer's state for a model of ``specs`` (else it starts afresh)."""
    try:
        got = read_specs(state)
    except ValueError:
        return False
    want = state_specs(optimizer, specs)
    return [(s.shape, s.dtype) for s in got] == [(s.shape, s.dtype) for s in want]


def apply_server_step(
    optimizer: ServerOptimizer,
    global_model: Path,
    mean: Path,
    old_state: Path | None,
    model_out: Path,
    state_out: Path,
) -> None:
    """Write x_{t+1} to ``model_out`` and the state after round t to ``state_out``.

    ``old_state`` None (the first round, or a state that does not fit) starts from ``initial``.
    """
    specs = read_specs(global_model)
    n = len(specs)
    new_specs = state_specs(optimizer, specs)
    with NpzReader(global_model) as x, NpzReader(mean) as avg:
        old = NpzReader(old_state) if old_state is not None else None
        try:
            write_npz_slices(
                state_out,
                (
                    (
                        new_specs[s * n + i],
                        _new_state(optimizer, name, x, avg, old, s * n + i, i, new_specs[s * n + i]),
                    )
                    for s, name in enumerate(optimizer.states)
                    for i in range(n)
                ),
            )
        finally:
            if old is not None:
                old.__exit__()
    with NpzReader(global_model) as x, NpzReader(state_out) as state:
        write_npz_slices(
            model_out, ((spec, _next_model(optimizer, x, state, i, n, spec)) for i, spec in enumerate(specs))
        )


def _new_state(
    optimizer: ServerOptimizer,
    name: str,
    x: NpzReader,
    avg: NpzReader,
    old: NpzReader | None,
    key: int,
    index: int,
    spec: ArraySpec,
) -> Iterator[np.ndarray]:
    streams = [x.slices(str(index)), avg.slices(str(index))]
    if old is not None:
        streams.append(old.slices(str(key)))
    # Computed in the state's dtype (float32 for a float32 model): half the memory traffic of float64,
    # and the state is stored in it anyway.
    for blocks in lockstep(streams, spec.size):
        delta = np.subtract(blocks[1], blocks[0], dtype=spec.dtype)
        if old is not None:
            previous = blocks[2].astype(spec.dtype, copy=False)
        else:
            previous = np.full(delta.size, optimizer.initial(name), dtype=spec.dtype)
        yield cast(optimizer.update(name, previous, delta), spec.dtype)


def _next_model(
    optimizer: ServerOptimizer, x: NpzReader, state: NpzReader, index: int, n: int, spec: ArraySpec
) -> Iterator[np.ndarray]:
    streams = [x.slices(str(index))] + [
        state.slices(str(s * n + index)) for s in range(len(optimizer.states))
    ]
    work = accumulator_dtype(spec.dtype)  # the state's dtype, as in _new_state
    for blocks in lockstep(streams, spec.size):
        new = {name: b.astype(work, copy=False) for name, b in zip(optimizer.states, blocks[1:], strict=True)}
        yield cast(blocks[0].astype(work, copy=False) + optimizer.step(new), spec.dtype)
