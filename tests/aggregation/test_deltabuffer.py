"""FedBuff's delta buffer: the partial sum(n s (u - x_b)) / sum(n) exact against a float64 reference,
in the model's dtypes, with memory of one accumulator whatever the number of updates."""

import tracemalloc

import numpy as np
import pytest

from scaleout.aggregation.deltabuffer import DeltaBuffer, staleness_weight
from scaleout.aggregation.npzfile import read_specs
from tests.aggregation.models import load, save


def test_staleness_weights_are_the_papers():
    assert staleness_weight("constant", 0.5, 7) == 1.0
    assert staleness_weight("polynomial", 0.5, 3) == 0.5  # 1 / sqrt(1 + 3)
    assert staleness_weight("polynomial", 2.0, 1) == 0.25
    assert staleness_weight("polynomial", 0.0, 99) == 1.0
    with pytest.raises(ValueError, match="unknown staleness function 'linear'"):
        staleness_weight("linear", 1.0, 1)


def test_partial_of_many_small_deltas_on_large_weights_matches_float64(tmp_path):
    # Parameters ~100 and deltas ~1e-3: a sum of n s u minus the bases would cancel away float32's
    # digits; folding the deltas themselves keeps the partial within float32's resolution of the delta.
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (700_001,)]  # one array larger than a fold block
    bases = [[100 + rng.standard_normal(shape).astype(np.float32) for shape in shapes] for _ in range(4)]
    paths = [save(tmp_path / f"v{v}.npz", model) for v, model in enumerate(bases)]
    buffer = DeltaBuffer(read_specs(paths[0]))
    expected = [np.zeros(shape) for shape in shapes]
    total = 0
    for k in range(40):
        version, n, tau = k % 4, int(rng.integers(1, 1000)), int(rng.integers(0, 6))
        update = [(x + 1e-3 * rng.standard_normal(x.shape)).astype(np.float32) for x in bases[version]]
        weight = staleness_weight("polynomial", 0.5, tau)
        buffer.fold(save(tmp_path / f"u{k}.npz", update), paths[version], n, weight)
        for acc, u, x in zip(expected, update, bases[version], strict=True):
            acc += n * weight * (u.astype(np.float64) - x)
        total += n
    buffer.write(tmp_path / "partial.npz")

    assert buffer.count == 40 and buffer.num_examples == total
    for got, acc in zip(load(tmp_path / "partial.npz"), expected, strict=True):
        assert got.dtype == np.float32
        reference = acc / total
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6 * np.abs(reference).max())


def test_integer_arrays_round_to_nearest(tmp_path):
    base = save(tmp_path / "base.npz", [np.array([10, 20, 30], dtype=np.int64)])
    buffer = DeltaBuffer(read_specs(base))
    buffer.fold(save(tmp_path / "u1.npz", [np.array([13, 20, 27], dtype=np.int64)]), base, 1, 1.0)
    buffer.fold(save(tmp_path / "u2.npz", [np.array([12, 21, 30], dtype=np.int64)]), base, 1, 1.0)
    buffer.write(tmp_path / "partial.npz")
    (partial,) = load(tmp_path / "partial.npz")
    assert partial.dtype == np.int64 and partial.tolist() == [2, 0, -2]  # (3+2)/2 rounds to even


def test_an_empty_buffer_has_no_partial(tmp_path):
    buffer = DeltaBuffer(read_specs(save(tmp_path / "base.npz", [np.zeros(3)])))
    with pytest.raises(ValueError, match="no update was folded in"):
        buffer.write(tmp_path / "partial.npz")


def test_memory_of_folding_does_not_grow_with_the_number_of_updates(tmp_path):
    base = save(tmp_path / "base.npz", [np.zeros(1 << 20, dtype=np.float32)])  # 4 MiB
    updates = [save(tmp_path / f"u{k}.npz", [np.full(1 << 20, k, dtype=np.float32)]) for k in range(20)]
    tracemalloc.start()
    try:
        buffer = DeltaBuffer(read_specs(base))
        for k, path in enumerate(updates):
            buffer.fold(path, base, k + 1, 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one float32 accumulator (4 MiB) + a 1 MiB slice of the update and of the base as they are read
    # (bytes, then array) + a 512 KiB block: 8.5 MiB measured; 20 updates kept would be 80 MiB
    assert peak < 10 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB: not O(model) + O(slice)"
