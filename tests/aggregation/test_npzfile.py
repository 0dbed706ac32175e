"""Updates are read a slice at a time: checking or folding a large update allocates a few MiB."""

import itertools
import tracemalloc
import zipfile

import numpy as np
import pytest

from scaleout.aggregation.npzfile import (
    SLICE_BYTES,
    ArraySpec,
    TrustedArrays,
    read_specs,
    write_npz,
    write_npz_slices,
)
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


def _ranges_equal(path, arrays):
    """Every array read back from TrustedArrays in three uneven ranges, out of order."""
    with TrustedArrays(path) as trusted:
        assert [(s.shape, s.dtype) for s in trusted.specs] == [(a.shape, a.dtype) for a in arrays]
        for index in reversed(range(len(arrays))):
            flat = np.ascontiguousarray(arrays[index]).reshape(-1)
            cut = [0, 1, flat.size // 2, flat.size]
            for start, stop in reversed(list(itertools.pairwise(cut))):
                np.testing.assert_array_equal(trusted.read(index, start, stop - start), flat[start:stop])


def test_trusted_arrays_read_any_range_of_a_stored_model(tmp_path):
    arrays = [np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(5, dtype=np.int64), np.ones(7)]
    write_npz(tmp_path / "m.npz", arrays)
    _ranges_equal(tmp_path / "m.npz", arrays)


def test_trusted_arrays_read_compressed_and_fortran_order_members_through_zipfile(tmp_path):
    transposed = np.arange(12, dtype=np.float32).reshape(3, 4).T  # stored in Fortran order
    arrays = [transposed, np.arange(6, dtype=np.float64)]
    np.savez(tmp_path / "fortran.npz", **{str(i): a for i, a in enumerate(arrays)})
    np.savez_compressed(tmp_path / "compressed.npz", **{str(i): a for i, a in enumerate(arrays)})
    _ranges_equal(tmp_path / "fortran.npz", arrays)
    _ranges_equal(tmp_path / "compressed.npz", arrays)


def test_trusted_arrays_refuse_a_range_past_the_array(tmp_path):
    write_npz(tmp_path / "m.npz", [np.ones(100, dtype=np.float32)])
    with TrustedArrays(tmp_path / "m.npz") as trusted, pytest.raises(ValueError) as raised:
        trusted.read(0, 90, 20)
    assert str(raised.value) == "array 0 has 100 elements, not 90..110"
