"""Bounds on what clients send: num_examples, values that would overflow the fold, update norms.

One client's hostile update must neither fail the round nor take over its average: it is rejected
with its reason (or clipped, when the session says so) and the round commits the others' average.
"""

import asyncio
import io

import numpy as np
import pytest

from tests.combiner.driver import WAIT, clients, controller, load_model, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SEED = [np.zeros(4, dtype=np.float64), np.zeros((2, 3), dtype=np.float32)]
B = [np.full(4, 2.0), np.full((2, 3), 4.0, dtype=np.float32)]
C = [np.full(4, 5.0), np.full((2, 3), 1.0, dtype=np.float32)]


async def _round(tmp_path, bad_arrays, bad_examples, settings=None, **config):
    """Clients a (hostile), b (1 example) and c (2 examples); a reports first. Returns a's answer,
    the result and the average."""
    async with (
        running_combiner(tmp_path, **(settings or {})) as combiner,
        clients(combiner, "a", "b", "c") as (a, b, c),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), **config)
        tasks = [await client.next_task() for client in (a, b, c)]
        answer = await a.train(tasks[0], bad_arrays, bad_examples)
        assert await b.train(tasks[1], B, 1) == "accepted"
        assert await c.train(tasks[2], C, 2) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok, result.error
        return answer, result, load_model(combiner, result.model_id, tmp_path)


def _assert_average_of_b_and_c(answer: str, result, average, reason: str) -> None:
    assert answer == f"rejected: {reason}"
    assert [(r.client_id, r.reason) for r in result.rejected] == [("a", reason)]
    assert sorted(c.client_id for c in result.clients) == ["b", "c"] and result.num_examples == 3
    np.testing.assert_array_equal(average[0], np.full(4, 4.0))  # (2 * 1 + 5 * 2) / 3
    np.testing.assert_array_equal(average[1], np.full((2, 3), 2.0, dtype=np.float32))  # (4 + 2) / 3


@pytest.mark.parametrize("count", [2**70, 2**63 - 1, 10**9 + 1])
async def test_num_examples_above_the_maximum_is_rejected_and_the_round_commits(tmp_path, count):
    reason = (
        f"num_examples {count!r} is above the combiner's maximum of 1000000000 per update "
        "(--max-num-examples)"
    )
    _assert_average_of_b_and_c(*await _round(tmp_path, B, count), reason)


async def test_the_num_examples_maximum_is_a_combiner_setting(tmp_path):
    reason = "num_examples 11 is above the combiner's maximum of 10 per update (--max-num-examples)"
    _assert_average_of_b_and_c(*await _round(tmp_path, B, 11, {"max_num_examples": 10}), reason)


async def test_values_that_could_overflow_the_float64_fold_are_rejected(tmp_path):
    """Without a norm bound: 1.7e308 is finite, but averaged with -1.7e308 it made the model inf."""
    huge = [np.full(4, 1.7e308), np.zeros((2, 3), dtype=np.float32)]
    reason = "array 0 holds a value of magnitude 1.7e+308; above 8.99e+307 averaging it could overflow to inf"
    _assert_average_of_b_and_c(*await _round(tmp_path, huge, 5), reason)


async def test_an_update_over_the_norm_bound_is_rejected_and_the_others_are_averaged_exactly(tmp_path):
    poison = [np.full(4, 1e30), np.full((2, 3), 1e30, dtype=np.float32)]
    norm = float(np.sqrt(10.0)) * 1e30
    reason = (
        f"the update's distance from the global model (L2 norm {norm:.6g}) is above the session's "
        "max_update_norm of 100; not averaged"
    )
    answer, result, average = await _round(tmp_path, poison, 10**9, max_update_norm=100.0)
    _assert_average_of_b_and_c(answer, result, average, reason)


async def test_an_update_over_the_norm_bound_is_clipped_to_it_when_the_session_says_so(tmp_path):
    # a's delta has norm 10 * sqrt(10) (ten elements of 10); clipped to norm sqrt(10): elements of 1.
    far = [np.full(4, 10.0), np.full((2, 3), 10.0, dtype=np.float32)]
    bound = float(np.sqrt(10.0))
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(
            model_id=put_seed(combiner, SEED), max_update_norm=bound, clip_updates=True
        )
        assert await a.train(await a.next_task(), far, 3) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok, result.error
        average = load_model(combiner, result.model_id, tmp_path)
    np.testing.assert_allclose(average[0], np.ones(4), rtol=1e-15)
    np.testing.assert_allclose(average[1], np.ones((2, 3)), rtol=1e-7)
    assert average[1].dtype == np.float32


async def test_updates_saved_with_positional_keys_are_averaged(tmp_path):
    """np.savez(path, a, b) writes arr_0, arr_1: the same parameters in the same order."""
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        task = await a.next_task()
        buffer = io.BytesIO()
        np.savez(buffer, *B)
        update_id = await a.upload(buffer.getvalue())
        assert await a.send_update(task, update_id, {"num_examples": 1}) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok, result.error
        average = load_model(combiner, result.model_id, tmp_path)
    for got, want in zip(average, B, strict=True):
        np.testing.assert_array_equal(got, want)
