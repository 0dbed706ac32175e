"""The async server step's arithmetic: x + server_lr * delta in the model's dtypes, checked shapes."""

import numpy as np
import pytest

from scaleout.controller.async_step import add_scaled
from scaleoututil.helpers.helpers import get_helper

helper = get_helper("numpyhelper")


def test_the_next_version_is_the_model_plus_the_scaled_delta_in_the_models_dtypes(tmp_path):
    model = [np.array([1.0, 2.0], np.float32), np.array([[10, 20]], np.int64), np.arange(3.0)]
    delta = [np.array([0.5, -1.0]), np.array([[0.7, -0.7]]), np.full(3, 1e-9)]
    helper.save(model, str(tmp_path / "model.npz"))
    helper.save(delta, str(tmp_path / "delta.npz"))

    add_scaled(tmp_path / "model.npz", tmp_path / "delta.npz", 2.0, tmp_path / "next.npz")

    arrays = helper.load(str(tmp_path / "next.npz"))
    assert [a.dtype for a in arrays] == [np.float32, np.int64, np.float64]
    np.testing.assert_array_equal(arrays[0], np.array([2.0, 0.0], np.float32))
    np.testing.assert_array_equal(arrays[1], np.array([[11, 19]]))  # integers round to nearest
    np.testing.assert_array_equal(arrays[2], np.arange(3.0) + 2e-9)  # computed in float64


def test_a_delta_of_other_shapes_is_refused_naming_both(tmp_path):
    helper.save([np.zeros((2, 2))], str(tmp_path / "model.npz"))
    helper.save([np.zeros(4)], str(tmp_path / "delta.npz"))

    with pytest.raises(ValueError) as error:
        add_scaled(tmp_path / "model.npz", tmp_path / "delta.npz", 1.0, tmp_path / "next.npz")

    assert str(error.value) == ("the buffer's delta has arrays of shapes [(4,)], the latest version [(2, 2)]")
