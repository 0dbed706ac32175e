"""Asynchronous (FedBuff) training over real gRPC: Control.RunAsync driven as the controller does, with
clients speaking the real proto to a real combiner."""

import numpy as np
import pytest

from tests.combiner.async_driver import async_controller
from tests.combiner.driver import clients, load_model, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

RNG = np.random.default_rng(16)
SEED = [RNG.standard_normal((3, 4)).astype(np.float32), RNG.standard_normal(5)]


def moved(model: list[np.ndarray], scale: float) -> list[np.ndarray]:
    """The model plus a random step of about ``scale``, in its dtypes: a client's 'trained' model."""
    return [(a + scale * RNG.standard_normal(a.shape)).astype(a.dtype) for a in model]


def as_float64(model: list[np.ndarray]) -> list[np.ndarray]:
    return [a.astype(np.float64) for a in model]


@pytest.mark.parametrize(
    ("staleness", "exponent"), [("constant", 0.0), ("polynomial", 0.5), ("polynomial", 2.0)]
)
async def test_partial_is_the_staleness_weighted_sum_of_deltas_over_examples(tmp_path, staleness, exponent):
    def s(tau: int) -> float:
        return 1.0 if staleness == "constant" else (1 + tau) ** -exponent

    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as (a, b, c),
        async_controller(combiner) as ctl,
    ):
        versions = {0: SEED, 1: moved(SEED, 0.5), 2: moved(SEED, 0.5)}
        ids = {v: put_seed(combiner, model) for v, model in versions.items()}
        await ctl.start(ids[0], staleness=staleness, staleness_exponent=exponent)
        first = {client.client_id: await client.next_task() for client in (a, b, c)}
        assert {t.model_id for t in first.values()} == {ids[0]}
        expected = [np.zeros(x.shape) for x in SEED]
        total = 0

        async def answer(client, task, base: int, tau: int, n: int) -> None:
            nonlocal total
            update = moved(versions[base], 1.0)
            assert await client.train(task, update, n) == "accepted"
            for acc, u, x in zip(expected, as_float64(update), as_float64(versions[base]), strict=True):
                acc += n * s(tau) * (u - x)
            total += n

        await answer(a, first["a"], base=0, tau=0, n=1)
        second_a = await a.next_task()  # a's slot went to a again, still on version 0
        await ctl.new_version(1, ids[1])
        await answer(b, first["b"], base=0, tau=1, n=3)
        second_b = await b.next_task()
        assert second_b.model_id == ids[1]
        await ctl.new_version(2, ids[2])
        await answer(c, first["c"], base=0, tau=2, n=2)
        await answer(b, second_b, base=1, tau=1, n=4)
        await answer(a, second_a, base=0, tau=2, n=5)
        flushed = await ctl.flush(3)

        assert flushed.version == 3 and flushed.num_examples == total == 15
        assert [(u.client.client_id, u.base_version, u.staleness) for u in flushed.updates] == [
            ("a", 0, 0),
            ("b", 0, 1),
            ("c", 0, 2),
            ("b", 1, 1),
            ("a", 0, 2),
        ]
        assert [u.staleness_weight for u in flushed.updates] == pytest.approx(
            [s(u.staleness) for u in flushed.updates]
        )
        assert list(ctl.folded) == list(flushed.updates)
        partial = load_model(combiner, flushed.model_id, tmp_path)
        for got, acc, x in zip(partial, expected, SEED, strict=True):
            assert got.dtype == x.dtype and got.shape == x.shape
            np.testing.assert_allclose(got, acc / total, rtol=0, atol=1e-6)
        assert await ctl.end() is None
