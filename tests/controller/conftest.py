"""Real stores for controller tests: SQLite statestore and a file model repository in tmp_path."""

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from scaleout.store.entities import Model
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore
from scaleout.store.uri import open_model_repository, open_statestore
from scaleoututil.helpers.helpers import get_helper

helper = get_helper("numpyhelper")


@dataclass
class Stores:
    statestore: Statestore
    repository: ModelRepository
    tmp: str

    def put_model(self, weights: list[np.ndarray], model_id: str) -> None:
        """Bytes first, then the record, as a seed upload does."""
        path = helper.save(weights, os.path.join(self.tmp, f"{model_id}.npz"))
        self.repository.put_model(model_id, path)
        with open(path, "rb") as f:
            data = f.read()
        self.statestore.models.add(
            Model(id=model_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        )

    def load_model(self, model_id: str) -> list[np.ndarray]:
        path = os.path.join(self.tmp, f"read-{model_id}.npz")
        self.repository.get_model_to_file(model_id, path)
        return helper.load(path)


@pytest.fixture
def stores(tmp_path) -> Iterator[Stores]:
    statestore = open_statestore(f"sqlite:///{tmp_path}/state.db")
    repository = open_model_repository(f"file://{tmp_path}/models")
    yield Stores(statestore, repository, str(tmp_path))
    statestore.close()


@pytest.fixture
def seed_weights() -> list[np.ndarray]:
    """Two arrays of different dtypes and shapes, so the reduce must keep each dtype."""
    rng = np.random.default_rng(7)
    return [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(5)]


@pytest.fixture
def seed_id(stores: Stores, seed_weights: list[np.ndarray]) -> str:
    stores.put_model(seed_weights, "seed-model")
    return "seed-model"
