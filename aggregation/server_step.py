"""Applying a ServerOptimizer to a whole model, in one pass over npz files.

Reads the global model x_t, the round's mean (x_t + Delta_t) and the optimizer's previous state, and
writes the next model and the new state. Each array is computed block by block (so the arithmetic's
temporaries are a few blocks) into the next model's array and its new state arrays, which are then
written: memory is (states + 1) arrays of the largest array, never the whole model. The inputs are
read without zipfile's CRC (TrustedArrays): the controller wrote them or checked them at upload.
The state file holds, for each state name in order, one array per model array ("0".."S*n-1"), in
float32 for a float32 model (float64 for float64 and integer models); its members are written array
by array (keys 0, n, 2n, ..., then 1, n+1, ...), which readers, finding arrays by key, do not see.
"""

import zipfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import BLOCK, cast
from scaleout.aggregation.fedavg import accumulator_dtype
from scaleout.aggregation.npzfile import ArraySpec, TrustedArrays, read_specs, write_member
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
    with ExitStack() as stack:
        x = stack.enter_context(TrustedArrays(global_model))
        avg = stack.enter_context(TrustedArrays(mean))
        old = stack.enter_context(TrustedArrays(old_state)) if old_state is not None else None
        if [(s.shape, s.dtype) for s in avg.specs] != [(s.shape, s.dtype) for s in x.specs]:
            raise ValueError(f"the round's mean {mean} does not have the global model's arrays")
        model = stack.enter_context(zipfile.ZipFile(model_out, "w", zipfile.ZIP_STORED, allowZip64=True))
        state = stack.enter_context(zipfile.ZipFile(state_out, "w", zipfile.ZIP_STORED, allowZip64=True))
        for i in range(len(x.specs)):
            _write_array(optimizer, x, avg, old, i, model, state)


def _write_array(
    optimizer: ServerOptimizer,
    x: TrustedArrays,
    avg: TrustedArrays,
    old: TrustedArrays | None,
    index: int,
    model: zipfile.ZipFile,
    state: zipfile.ZipFile,
) -> None:
    """Compute and write array ``index`` of the next model and of each new state.

    A function of its own so that its arrays are freed before the next array's are allocated.
    """
    n = len(x.specs)
    next_array, new_states = _step_array(optimizer, x, avg, old, index, n, x.specs[index])
    write_member(model, index, next_array)
    for s, array in enumerate(new_states):
        write_member(state, s * n + index, array)


def _step_array(
    optimizer: ServerOptimizer,
    x: TrustedArrays,
    avg: TrustedArrays,
    old: TrustedArrays | None,
    index: int,
    n: int,
    spec: ArraySpec,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Array ``index`` of the next model and of each new state, computed a block at a time."""
    # The state's dtype (float32 for a float32 model): half the memory traffic of float64, and the
    # state is stored in it anyway.
    work = accumulator_dtype(spec.dtype)
    next_array = np.empty(spec.shape, spec.dtype)
    new_states = [np.empty(spec.shape, work) for _ in optimizer.states]
    flat_next, flat_states = next_array.reshape(-1), [a.reshape(-1) for a in new_states]
    for start in range(0, spec.size, BLOCK):
        block = slice(start, min(start + BLOCK, spec.size))
        x_block = x.read(index, start, block.stop - start)
        delta = np.subtract(avg.read(index, start, block.stop - start), x_block, dtype=work)
        new = {}
        for s, name in enumerate(optimizer.states):
            new[name] = flat_states[s][block]  # updated in place: no temporary, no copy
            if old is not None:
                new[name][...] = old.read(s * n + index, start, delta.size)
            else:
                new[name].fill(optimizer.initial(name))
            optimizer.update(name, new[name], delta)
        step = optimizer.step(new)
        step += x_block  # x + step, in the state's dtype
        flat_next[block] = cast(step, spec.dtype)
    return next_array, new_states
