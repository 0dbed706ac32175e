"""Updates are read a slice at a time: checking or folding a large update allocates a few MiB."""

import tracemalloc
import zipfile

import numpy as np
import pytest

from scaleout.aggregation.npzfile import SLICE_BYTES, ArraySpec, read_specs, write_npz, write_npz_slices
from scaleout.combiner.updates import UpdateRejected, check_arrays


def test_checking_a_large_update_allocates_a_few_slices_not_the_update(tmp_path):
    update = [np.ones(4 << 20, dtype=np.float32), np.ones((1024, 1024), dtype=np.float32)]  # 20 MiB
    write_npz(tmp_path / "u.npz", update)
    specs = read_specs(tmp_path / "u.npz")

    tracemalloc.start()
    try:
        check_arrays(tmp_path / "u.npz", specs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * SLICE_BYTES, f"checking a 20 MiB update allocated {peak / 2**20:.1f} MiB"


def test_nan_in_the_last_slice_is_found(tmp_path):
    array = np.zeros(3 * SLICE_BYTES // 4 + 5, dtype=np.float32)
    array[-1] = np.nan
    write_npz(tmp_path / "u.npz", [array])
    with pytest.raises(UpdateRejected, match="array 0 contains NaN or inf"):
        check_arrays(tmp_path / "u.npz", read_specs(tmp_path / "u.npz"))


def test_a_truncated_array_is_not_readable(tmp_path):
    write_npz(tmp_path / "full.npz", [np.ones(1000, dtype=np.float32)])
    with zipfile.ZipFile(tmp_path / "full.npz") as archive:
        data = archive.read("0.npy")
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as archive:
        archive.writestr("0.npy", data[:-400])
    with pytest.raises(UpdateRejected, match="truncated"):
        check_arrays(tmp_path / "short.npz", read_specs(tmp_path / "full.npz"))


def test_arrays_written_in_slices_are_byte_for_byte_what_np_savez_writes(tmp_path):
    arrays = [np.arange(10, dtype=np.int16).reshape(2, 5), np.linspace(0, 1, 3 * SLICE_BYTES // 8 + 1)]
    step = 1000
    write_npz_slices(
        tmp_path / "ours.npz",
        [
            (ArraySpec(a.shape, a.dtype), [a.reshape(-1)[s : s + step] for s in range(0, a.size, step)])
            for a in arrays
        ],
    )
    np.savez(tmp_path / "ref.npz", *arrays)
    with zipfile.ZipFile(tmp_path / "ours.npz") as ours, zipfile.ZipFile(tmp_path / "ref.npz") as ref:
        for i in range(len(arrays)):
            assert ours.read(f"{i}.npy") == ref.read(f"arr_{i}.npy")  # header included
