"""Seed model upload (checked loadable by the active helper), download, and the model trail."""

from pathlib import Path

import numpy as np
import pytest

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.store.entities import Model
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer


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
        (b"this is not a model", "not an npz file numpyhelper can load"),
        ([np.array([1.0, np.nan])], "contains NaN or inf"),
        ([np.array([1.0, np.inf])], "contains NaN or inf"),
        ([np.array(["a", "b"])], "needs numbers"),
        ([], "holds no arrays"),
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
