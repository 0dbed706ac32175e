"""scaleoututil: the helpers compute packages import (serialization, arithmetic, metadata files)."""

import ast
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scaleoututil.helpers.helpers import (
    get_helper,
    known_helpers,
    load_metadata,
    save_metadata,
    save_metrics,
)
from scaleoututil.helpers.plugins import binaryhelper, numpyhelper


@pytest.fixture
def helper() -> numpyhelper.Helper:
    return get_helper("numpyhelper")


def test_get_helper_returns_the_plugins_helper():
    assert isinstance(get_helper("numpyhelper"), numpyhelper.Helper)
    assert isinstance(get_helper("binaryhelper"), binaryhelper.Helper)
    assert get_helper("binaryhelper").name == "binaryhelper"


def test_unknown_helper_error_lists_the_known_helpers():
    with pytest.raises(ValueError, match="unknown helper 'torchhelper'") as excinfo:
        get_helper("torchhelper")
    assert "binaryhelper" in str(excinfo.value) and "numpyhelper" in str(excinfo.value)
    assert known_helpers() == ["binaryhelper", "numpyhelper"]


def test_increment_average_is_the_running_weighted_mean(helper):
    m1 = [np.array([1.0, 2.0, 3.0]), np.array([[0.0]])]
    m2 = [np.array([4.0, 5.0, 6.0]), np.array([[10.0]])]
    result = helper.increment_average(m1, m2, 10, 20)
    np.testing.assert_array_equal(result[0], [2.5, 3.5, 4.5])
    np.testing.assert_array_equal(result[1], [[5.0]])


def test_increment_average_over_updates_equals_the_weighted_average(helper):
    updates = [([np.array([1.0, -1.0])], 3), ([np.array([5.0, 3.0])], 1), ([np.array([2.0, 0.0])], 4)]
    average, total = updates[0][0], updates[0][1]
    for weights, n in updates[1:]:
        total += n
        average = helper.increment_average(average, weights, n, total)
    expected = sum(w[0] * n for w, n in updates) / 8
    np.testing.assert_allclose(average[0], expected)


def test_arithmetic_is_element_wise_per_array(helper):
    m1 = [np.array([1.0, 4.0]), np.array([9.0])]
    m2 = [np.array([2.0, 2.0]), np.array([3.0])]
    np.testing.assert_array_equal(helper.add(m1, m2)[0], [3.0, 6.0])
    np.testing.assert_array_equal(helper.add(m1, m2, 2.0, 0.5)[1], [19.5])
    np.testing.assert_array_equal(helper.subtract(m1, m2)[0], [-1.0, 2.0])
    np.testing.assert_array_equal(helper.subtract(m1, m2, 1.0, 2.0)[1], [3.0])
    np.testing.assert_array_equal(helper.divide(m1, m2)[0], [0.5, 2.0])
    np.testing.assert_array_equal(helper.multiply(m1, m2)[1], [27.0])
    np.testing.assert_array_equal(helper.sqrt(m1)[0], [1.0, 2.0])
    np.testing.assert_array_equal(helper.power(m1, 2)[1], [81.0])
    np.testing.assert_array_equal(helper.sign([np.array([-3.0, 0.0, 2.0])])[0], [-1.0, 0.0, 1.0])
    assert helper.norm([np.array([-1.0, 2.0]), np.array([[3.0, -4.0]])]) == 10.0
    ones = helper.ones([np.zeros((2, 3)), np.zeros(4)], 7.0)
    assert [o.shape for o in ones] == [(2, 3), (4,)]
    assert np.all(ones[0] == 7.0)


def test_mismatched_model_lengths_are_an_error_not_a_silent_truncation(helper):
    with pytest.raises(ValueError):
        helper.add([np.zeros(2), np.zeros(2)], [np.zeros(2)])


def test_save_load_round_trip_keeps_order_beyond_ten_arrays(helper, tmp_path):
    # With 12 arrays a lexical key sort would load "10" and "11" before "2".
    weights = [np.full((i + 1,), i, dtype=np.float32) for i in range(12)]
    path = helper.save(weights, str(tmp_path / "model.npz"))
    assert path == str(tmp_path / "model.npz")
    loaded = helper.load(path)
    assert len(loaded) == 12
    for original, restored in zip(weights, loaded, strict=True):
        assert restored.dtype == np.float32
        np.testing.assert_array_equal(original, restored)


def test_save_writes_uncompressed_npz_with_index_keys(helper, tmp_path):
    path = helper.save([np.zeros(1000), np.ones((3, 3))], str(tmp_path / "model.npz"))
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    assert sorted(info.filename for info in infos) == ["0.npy", "1.npy"]
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)


def test_load_reads_compressed_npz(helper, tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **{str(i): np.arange(i + 1) for i in range(11)})
    loaded = helper.load(str(path))
    assert [len(a) for a in loaded] == list(range(1, 12))


def test_save_without_path_uses_a_temporary_npz_file(helper):
    path = helper.save([np.arange(3)])
    try:
        assert path.endswith(".npz")
        np.testing.assert_array_equal(helper.load(path)[0], [0, 1, 2])
    finally:
        Path(path).unlink()


def test_save_to_a_path_without_suffix_returns_the_path_numpy_wrote(helper, tmp_path):
    path = helper.save([np.arange(3)], str(tmp_path / "model"))
    assert path == str(tmp_path / "model.npz")
    assert Path(path).is_file()


def test_get_tmp_path_honours_the_suffix(helper):
    path = helper.get_tmp_path(suffix=".bin")
    try:
        assert path.endswith(".bin") and Path(path).exists()
    finally:
        Path(path).unlink()


def test_unsupported_file_type_is_rejected_naming_the_supported_ones(helper, tmp_path):
    with pytest.raises(ValueError, match="npz, raw_binary"):
        helper.save([np.zeros(1)], str(tmp_path / "x"), file_type="pickle")


def test_binaryhelper_round_trips_a_flat_float64_array(tmp_path):
    helper = get_helper("binaryhelper")
    path = helper.save([np.array([1.0, 2.0]), np.array([[3.0], [4.0]])], str(tmp_path / "model.bin"))
    assert Path(path).stat().st_size == 4 * 8
    (loaded,) = helper.load(path)
    np.testing.assert_array_equal(loaded, [1.0, 2.0, 3.0, 4.0])


def test_metadata_goes_next_to_the_model_and_metrics_to_the_path_itself(tmp_path):
    model = str(tmp_path / "update.npz")
    save_metadata({"num_examples": 42, "lr": 0.1}, model)
    assert json.loads((tmp_path / "update.npz-metadata").read_text()) == {"num_examples": 42, "lr": 0.1}
    assert load_metadata(model) == {"num_examples": 42, "lr": 0.1}

    metrics = str(tmp_path / "validation.json")
    save_metrics({"accuracy": 0.5}, metrics)
    assert json.loads(Path(metrics).read_text()) == {"accuracy": 0.5}
    assert not (tmp_path / "validation.json-metadata").exists()


def test_scaleoututil_imports_nothing_but_numpy_and_the_standard_library():
    # It is copied into compute-package venvs, which have numpy and nothing else of ours.
    import scaleoututil

    allowed = set(sys.stdlib_module_names) | {"numpy", "scaleoututil", "__future__"}
    for source in Path(scaleoututil.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in allowed, f"{source} imports {module}"
