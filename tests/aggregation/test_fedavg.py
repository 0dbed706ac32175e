"""FedAvg folds in place: exact weighted average, memory independent of the number of updates."""

import tracemalloc

import numpy as np

from scaleout.aggregation.fedavg import FedAvg
from scaleout.aggregation.npzfile import read_specs, write_npz
from scaleout.combiner.updates import load_checked


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
    # the float32 accumulator (4 MiB, as large as the model) + a slice or two of the update (1 MiB
    # each) + a 512 KiB block: less than the float64 sum of old (8 MiB) alone
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB: not O(model) + O(slice)"
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


def test_running_mean_in_float32_matches_the_float64_weighted_average(tmp_path):
    rng = np.random.default_rng(7)
    shape = (300, 70)
    write_npz(tmp_path / "seed.npz", [np.zeros(shape, np.float32), np.zeros(5, np.float64)])
    fedavg = FedAvg(read_specs(tmp_path / "seed.npz"))
    updates, weights = [], rng.integers(1, 60_000, size=32)
    for k, weight in enumerate(weights):
        update = [rng.normal(3.0, 2.0, shape).astype(np.float32), rng.normal(size=5)]
        write_npz(tmp_path / f"u{k}.npz", update)
        fedavg.fold(tmp_path / f"u{k}.npz", int(weight))
        updates.append(update)

    average = list(fedavg.result())
    for index, got in enumerate(average):
        exact = sum(w * u[index].astype(np.float64) for w, u in zip(weights, updates, strict=True))
        exact /= weights.sum()
        assert got.dtype == updates[0][index].dtype
        np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-12)
        # the documented bound: within (K + 1) / 4 ulp of the model's dtype (the float64 array is far within)
        ulp = np.spacing(np.abs(exact).astype(got.dtype)).astype(np.float64)
        assert (np.abs(got - exact) <= (len(weights) + 1) / 4 * ulp).all()


def test_identical_updates_average_to_themselves_bit_for_bit(tmp_path):
    model = [np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32)]
    write_npz(tmp_path / "u.npz", model)
    fedavg = FedAvg(read_specs(tmp_path / "u.npz"))
    for weight in (3, 10, 7, 1000):
        fedavg.fold(tmp_path / "u.npz", weight)
    np.testing.assert_array_equal(next(fedavg.result()), model[0])


def test_fortran_ordered_and_big_endian_updates_fold_by_their_values(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_npz(tmp_path / "seed.npz", [values, values.astype(">f8")])
    write_npz(tmp_path / "f.npz", [np.asfortranarray(values + 2), (values + 2).astype(">f8")])
    fedavg = FedAvg(read_specs(tmp_path / "seed.npz"))
    fedavg.fold(tmp_path / "seed.npz", 1)
    fedavg.fold(tmp_path / "f.npz", 1)
    fedavg.write(tmp_path / "avg.npz")
    with np.load(tmp_path / "avg.npz") as npz:
        np.testing.assert_array_equal(npz["0"], values + 1)
        assert npz["1"].dtype == np.dtype(">f8")
        np.testing.assert_array_equal(npz["1"], values + 1)


def test_folding_checked_slices_gives_the_average_of_folding_the_files_bit_for_bit(tmp_path):
    rng = np.random.default_rng(11)
    write_npz(tmp_path / "seed.npz", [np.zeros((40, 30), np.float32), np.zeros(7, np.float64)])
    specs = read_specs(tmp_path / "seed.npz")
    from_files, from_slices = FedAvg(specs), FedAvg(specs)
    for k, weight in enumerate([3, 1, 7]):
        write_npz(tmp_path / f"u{k}.npz", [rng.normal(size=(40, 30)).astype(np.float32), rng.normal(size=7)])
        from_files.fold(tmp_path / f"u{k}.npz", weight)
        from_slices.fold_slices(load_checked(tmp_path / f"u{k}.npz", specs), weight)
    for got, want in zip(from_slices.result(), from_files.result(), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert from_slices.total == from_files.total == 11
