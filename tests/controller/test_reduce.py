"""The reduce across combiners: exact FedAvg weighted by each combiner's num_examples."""

import asyncio
import tracemalloc

import numpy as np
import pytest

from scaleout.controller.reduce import PartialModel, reduce_models
from scaleout.store.entities import RoundStatus, SessionStatus
from tests.controller.control_double import ControlDouble
from tests.controller.harness import rounds_of, run_session


def test_two_combiners_reduce_to_the_weighted_average_of_their_models(stores, seed_id, seed_weights):
    c1 = ControlDouble("c1", stores.repository, clients={"a": 3}, increment=1.0)
    c2 = ControlDouble("c2", stores.repository, clients={"b": 4, "c": 9}, increment=5.0)
    session = asyncio.run(run_session(stores, [c1, c2], seed_id, min_clients=3))

    assert session.status == SessionStatus.FINISHED, session.error
    (record,) = rounds_of(stores, session.id)
    got = stores.load_model(record.model_id)
    for g, seed in zip(got, seed_weights, strict=True):
        x1 = seed.astype(np.float64) + np.asarray(1.0, seed.dtype)
        x2 = seed.astype(np.float64) + np.asarray(5.0, seed.dtype)
        expected = ((3 * x1 + 13 * x2) / 16).astype(seed.dtype)
        assert g.dtype == seed.dtype and g.shape == seed.shape
        np.testing.assert_allclose(g, expected, rtol=0, atol=1e-6)
    assert record.model_id not in (c1.model_ids[0], c2.model_ids[0])
    assert not stores.repository.model_exists(c1.model_ids[0])
    assert not stores.repository.model_exists(c2.model_ids[0])
    assert {(c.client_id, c.combiner_id) for c in record.clients} == {("a", "c1"), ("b", "c2"), ("c", "c2")}
    assert {c.combiner_id: c.num_examples for c in record.combiners} == {"c1": 3, "c2": 13}


def test_one_combiner_model_is_committed_as_is(stores, seed_id):
    double = ControlDouble("combiner", stores.repository)
    session = asyncio.run(run_session(stores, [double], seed_id))

    (record,) = rounds_of(stores, session.id)
    assert record.status == RoundStatus.FINISHED
    assert record.model_id == double.model_ids[0]
    assert stores.repository.model_exists(record.model_id)
    assert stores.repository.model_size(record.model_id) == stores.statestore.models.get(record.model_id).size


def test_reduce_of_models_with_different_shapes_names_the_model(stores, seed_weights):
    stores.put_model(seed_weights, "m1")
    stores.put_model([seed_weights[0], np.zeros(2)], "m2")
    parts = [PartialModel("c1", "m1", 1), PartialModel("c2", "m2", 1)]

    with pytest.raises(ValueError, match=r"model m2 of combiner c2: array 1 has shape \(2,\)"):
        reduce_models(stores.repository, parts)


def test_reduce_rounds_integer_parameters(stores):
    stores.put_model([np.array([0, 10], dtype=np.int64)], "i1")
    stores.put_model([np.array([1, 11], dtype=np.int64)], "i2")

    model_id = reduce_models(stores.repository, [PartialModel("c1", "i1", 1), PartialModel("c2", "i2", 3)])

    (got,) = stores.load_model(model_id)
    assert got.dtype == np.int64 and got.tolist() == [1, 11]


def test_reduce_holds_one_accumulator_not_whole_models(stores):
    """Two 48 MB float32 models: the old whole-model float64 fold peaked at ~5x the model size."""
    size = 48 * 1024 * 1024
    model = np.ones(size // 4, dtype=np.float32)
    stores.put_model([model], "big1")
    stores.put_model([model + 2], "big2")
    del model
    tracemalloc.start()
    try:
        model_id = reduce_models(
            stores.repository, [PartialModel("c1", "big1", 1), PartialModel("c2", "big2", 3)]
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 1.25 * size, f"reduce peaked at {peak / size:.2f}x the model size"
    (got,) = stores.load_model(model_id)
    assert got.dtype == np.float32 and np.all(got == 2.5)
