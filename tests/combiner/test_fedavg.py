"""FedAvg folds in place: exact weighted average, memory independent of the number of updates."""

import tracemalloc

import numpy as np

from scaleout.combiner.fedavg import FedAvg
from scaleout.combiner.npzfile import read_specs, write_npz


def test_memory_of_folding_does_not_grow_with_the_number_of_updates(tmp_path):
    model = [np.zeros(1 << 20, dtype=np.float32)]  # 4 MiB; the float64 accumulator is 8 MiB
    seed = tmp_path / "seed.npz"
    write_npz(seed, model)
    paths = []
    for k in range(20):  # 20 updates: 80 MiB if each were kept
        path = tmp_path / f"update{k}.npz"
        write_npz(path, [np.full(1 << 20, k, dtype=np.float32)])
        paths.append(path)

    tracemalloc.start()
    try:
        fedavg = FedAvg(read_specs(seed))
        for k, path in enumerate(paths):
            fedavg.fold(path, k + 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert fedavg.count == 20 and fedavg.total == sum(range(1, 21))
    # accumulator (8 MiB) + one update array (4 MiB) + one slice temporary (8 MiB) + slack
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB grows with the number of updates"
    (average,) = fedavg.result()
    expected = sum(k * (k + 1) for k in range(20)) / fedavg.total
    assert average.dtype == np.float32
    np.testing.assert_allclose(average, expected, rtol=1e-6)


def test_average_is_written_as_numpyhelper_reads_it(tmp_path):
    from scaleoututil.helpers.helpers import get_helper

    specs_source = tmp_path / "seed.npz"
    write_npz(specs_source, [np.zeros((2, 2), np.float32), np.zeros(3, np.int64)])
    fedavg = FedAvg(read_specs(specs_source))
    update = tmp_path / "u.npz"
    write_npz(update, [np.full((2, 2), 1.5, np.float32), np.array([1, 2, 3])])
    fedavg.fold(update, 2)
    out = tmp_path / "avg.npz"
    fedavg.write(out)
    weights = get_helper("numpyhelper").load(str(out))
    np.testing.assert_array_equal(weights[0], np.full((2, 2), 1.5, np.float32))
    assert weights[1].dtype == np.int64 and weights[1].tolist() == [1, 2, 3]
