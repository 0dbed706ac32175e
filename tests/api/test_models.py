"""Seed model upload (checked loadable by the active helper), download, and the model trail."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.store.entities import Model
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer, run_api


def seed_file(path: Path, arrays: list[np.ndarray] | None = None) -> Path:
    arrays = arrays if arrays is not None else [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4)]
    return Path(get_helper("numpyhelper").save(arrays, str(path)))


def assert_no_model_stored(server: ApiServer) -> None:
    assert server.statestore.models.count() == 0
    stored = server.models_dir / "models"
    assert not stored.exists() or not any(stored.iterdir())


def test_a_seed_model_is_stored_as_a_root_of_the_trail_and_downloads_identically(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    seed = seed_file(tmp_path / "seed.npz")

    model_id = api.set_active_model(seed)

    model = api.get_model(model_id)
    assert model["parent_id"] is None and model["ancestors"] == []
    assert model["size"] == seed.stat().st_size
    downloaded = api.download_model(model_id, tmp_path / "out" / "model.npz")
    assert downloaded.read_bytes() == seed.read_bytes()
    assert server.repository.model_exists(model_id)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not a model", "the model is not an npz (zip) file"),
        ([np.array([1.0, np.nan])], "array 0 contains NaN or inf values"),
        ([np.array([1.0, np.inf])], "array 0 contains NaN or inf values"),
        ([np.array(["a", "b"])], "array 0 has dtype <U1; parameters are real numbers (float, int, uint)"),
        ([], "the model holds no arrays"),
    ],
    ids=["not-npz", "nan", "inf", "strings", "empty"],
)
def test_a_seed_model_numpyhelper_cannot_use_is_422_with_the_reason_and_not_stored(
    server: ApiServer, api: APIClient, tmp_path: Path, content: bytes | list, reason: str
):
    path = tmp_path / "seed.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, *content)

    with pytest.raises(APIError) as error:
        api.set_active_model(path)

    assert error.value.status_code == 422
    assert reason in error.value.message
    assert_no_model_stored(server)


def test_a_pickled_object_array_is_refused(server: ApiServer, api: APIClient, tmp_path: Path):
    path = tmp_path / "seed.npz"
    np.savez(path, np.array([{"a": 1}], dtype=object))

    with pytest.raises(APIError) as error:
        api.set_active_model(path)

    assert error.value.status_code == 422
    assert_no_model_stored(server)


def test_ancestors_and_descendants_walk_the_trail(server: ApiServer, api: APIClient, tmp_path: Path):
    seed = api.set_active_model(seed_file(tmp_path / "seed.npz"))
    models = server.statestore.models
    m1 = models.add(Model(parent_id=seed, ancestors=[seed]))
    m2 = models.add(Model(parent_id=m1.id, ancestors=[m1.id, seed]))
    branch = models.add(Model(parent_id=seed, ancestors=[seed]))

    ancestors = server.http().get(f"/models/{m2.id}/ancestors").json()
    assert [m["id"] for m in ancestors["result"]] == [m1.id, seed]
    assert ancestors["count"] == 2
    descendants = api.get_model_descendants(seed)
    assert {m["id"] for m in descendants} == {m1.id, m2.id, branch.id}
    assert [m["id"] for m in api.get_model_trail(m2.id)] == [seed, m1.id, m2.id]
    assert api.get_model_descendants(m2.id) == []


def test_trail_routes_of_an_unknown_model_are_404(api: APIClient):
    for call in (api.get_model_trail, api.get_model_descendants):
        with pytest.raises(APIError) as error:
            call("missing")
        assert error.value.status_code == 404
        assert error.value.message == "Model 'missing' not found"


def test_download_of_an_unknown_model_is_404(api: APIClient, tmp_path: Path):
    with pytest.raises(APIError) as error:
        api.download_model("missing", tmp_path / "m.npz")

    assert error.value.status_code == 404
    assert not (tmp_path / "m.npz").exists()


def test_models_filter_by_session(server: ApiServer, api: APIClient):
    server.statestore.models.add(Model(session_id="s1"))
    server.statestore.models.add(Model(session_id="s2"))

    assert [m["session_id"] for m in api.get_models(session_id="s1")["result"]] == ["s1"]
    assert api.get_models()["count"] == 2


HOW = (
    "save the model with numpyhelper (helper.save(weights, path)) or np.savez(path, *arrays), "
    "uncompressed, one array of numbers per parameter"
)


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        (
            {"a": np.ones(3)},
            f"array 'a' is not keyed by its position ('0'..'n-1' or 'arr_0'..'arr_n-1'); {HOW}",
        ),
        (
            {"0": np.ones(3, dtype=np.complex64)},
            f"array 0 has dtype complex64; parameters are real numbers (float, int, uint) or bool; {HOW}",
        ),
        ({"0": np.float32(1.0)}, f"array 0 is 0-d (a scalar); save it as a 1-d array (np.atleast_1d); {HOW}"),
        (
            {"0": np.ones(2), "1": np.zeros((0, 10))},
            f"array 1 has shape (0, 10), no elements; leave empty arrays out of the model; {HOW}",
        ),
        (
            {"0": np.ones(2), "2": np.ones(2)},
            f"the model's keys are not exactly '0'..'1' (or 'arr_0'..'arr_1'); {HOW}",
        ),
    ],
    ids=["key-a", "complex", "0-d", "no-elements", "gap-in-keys"],
)
def test_a_seed_every_round_would_refuse_is_422_saying_how_to_save_and_not_stored(
    server: ApiServer, api: APIClient, tmp_path: Path, arrays: dict, reason: str
):
    path = tmp_path / "seed.npz"
    np.savez(path, **arrays)

    with pytest.raises(APIError) as error:
        api.set_active_model(path)

    assert error.value.status_code == 422
    assert error.value.message == f"the seed model cannot be used: {reason}"
    assert_no_model_stored(server)


def test_a_seed_saved_with_positional_keys_is_accepted(server: ApiServer, api: APIClient, tmp_path: Path):
    """np.savez(path, a, b) writes arr_0, arr_1; numpyhelper reads them back in that order."""
    path = tmp_path / "seed.npz"
    arrays = [np.ones(2, dtype=np.float32)] + [np.full(3, i, dtype=np.int64) for i in range(11)]
    np.savez(path, *arrays)

    model_id = api.set_active_model(path)

    loaded = get_helper("numpyhelper").load(str(api.download_model(model_id, tmp_path / "out.npz")))
    assert [a.tolist() for a in loaded] == [a.tolist() for a in arrays]


def inflating_npz(path: Path, nbytes: int, chunk: int = 16 << 20) -> None:
    """An npz whose one float64 array of ``nbytes`` zeros is deflated to ~nbytes / 1000 on disk.

    The deflate stream of a zero chunk after a full flush is the same bytes every time, so it is
    made once and repeated: building a 1.5 GiB bomb takes a moment, not a 1.5 GiB buffer.
    """
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (nbytes // 8,)})
    head = header.getvalue()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = first + piece * (nbytes // chunk) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    name, size = b"0.npy", len(head) + nbytes
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
    )
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), len(local) + len(name) + len(data), 0
    )
    path.write_bytes(local + name + data + central + name + end)


def test_a_small_seed_that_inflates_past_the_bound_is_refused_from_its_headers(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    """1.5 MB on the wire, 1.5 GiB inflated: refused on the zip directory's sizes, nothing inflated."""
    path = tmp_path / "bomb.npz"
    inflating_npz(path, 3 * 2**29)
    assert path.stat().st_size < 2 * 10**6

    with pytest.raises(APIError) as error:
        api.set_active_model(path)

    assert error.value.status_code == 422
    assert error.value.message == (
        "the seed model cannot be used: the model's arrays take 1610612864 bytes uncompressed, "
        "more than the limit of 1073741824 bytes"
    )
    assert_no_model_stored(server)


def test_the_seed_size_bound_is_a_setting(tmp_path: Path):
    path = seed_file(tmp_path / "seed.npz", [np.ones(100)])
    with (
        run_api(tmp_path / "api", max_model_bytes=500) as server,
        server.client() as api,
        pytest.raises(APIError) as error,
    ):
        api.set_active_model(path)
    assert (
        "the model's arrays take 928 bytes uncompressed, more than the limit of 500 bytes"
        in error.value.message
    )
