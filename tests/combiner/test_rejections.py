"""Every reason an update is rejected; the round goes on and averages only the good update."""

import asyncio

import numpy as np
import pytest

from tests.combiner.driver import WAIT, clients, controller, load_model, npz_bytes, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SEED = [np.zeros((2, 3), dtype=np.float32), np.ones(4, dtype=np.float64)]
GOOD = [np.full((2, 3), 2.0, dtype=np.float32), np.full(4, 3.0)]

BAD_ARRAYS = {
    "wrong shape": (
        [np.zeros((3, 2), dtype=np.float32), np.ones(4)],
        "array 0 has shape (3, 2), the global model's has (2, 3)",
    ),
    "wrong dtype": (
        [np.zeros((2, 3), dtype=np.float64), np.ones(4)],
        "array 0 has dtype float64, the global model's has float32",
    ),
    "NaN": (
        [np.zeros((2, 3), dtype=np.float32), np.array([1, np.nan, 1, 1.0])],
        "array 1 contains NaN or inf",
    ),
    "inf": ([np.full((2, 3), np.inf, dtype=np.float32), np.ones(4)], "array 0 contains NaN or inf"),
    "missing array": (
        [np.zeros((2, 3), dtype=np.float32)],
        "update has 1 array(s), the global model has 2",
    ),
}

BAD_META = {
    "missing num_examples": ({"loss": 0.1}, "meta has no num_examples"),
    "zero num_examples": ({"num_examples": 0}, "num_examples must be > 0, got 0"),
    "negative num_examples": ({"num_examples": -5}, "num_examples must be > 0, got -5"),
    "float num_examples": ({"num_examples": 3.0}, "num_examples must be an integer, got 3.0 (float)"),
    "bool num_examples": ({"num_examples": True}, "num_examples must be an integer, got True (bool)"),
    "meta not JSON": ("{num_examples: 3", "meta is not JSON"),
    "meta not an object": ("[3]", "meta is not a JSON object"),
}


async def _round_with_one_bad_update(tmp_path, send_bad) -> tuple[str, object, list[np.ndarray]]:
    """Clients a (bad) and b (good) in one round; returns a's answer, the result, and the average."""
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        task_a, task_b = await a.next_task(), await b.next_task()
        answer = await send_bad(a, task_a)
        assert await b.train(task_b, GOOD, 4) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)  # a's rejection counted as its report
        assert result.ok, result.error
        return answer, result, load_model(combiner, result.model_id, tmp_path)


def _assert_only_good_averaged(answer, result, average, reason) -> None:
    assert answer.startswith("rejected: ") and reason in answer, answer
    assert [(r.client_id, reason in r.reason) for r in result.rejected] == [("a", True)]
    assert [c.client_id for c in result.clients] == ["b"] and result.num_examples == 4
    for got, good in zip(average, GOOD, strict=True):
        np.testing.assert_array_equal(got, good)


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
async def test_update_with_bad_arrays_is_rejected(tmp_path, case):
    arrays, reason = BAD_ARRAYS[case]

    async def send_bad(client, task):
        return await client.train(task, arrays, 10)

    _assert_only_good_averaged(*await _round_with_one_bad_update(tmp_path, send_bad), reason)


@pytest.mark.parametrize("case", list(BAD_META))
async def test_update_with_bad_num_examples_is_rejected(tmp_path, case):
    meta, reason = BAD_META[case]

    async def send_bad(client, task):
        update_id = await client.upload(npz_bytes(GOOD))
        return await client.send_update(task, update_id, meta)

    _assert_only_good_averaged(*await _round_with_one_bad_update(tmp_path, send_bad), reason)


async def test_update_with_unknown_update_id_is_rejected(tmp_path):
    async def send_bad(client, task):
        return await client.send_update(task, "never-uploaded", {"num_examples": 3})

    reason = "model_update_id 'never-uploaded' is unknown: no upload with that id"
    _assert_only_good_averaged(*await _round_with_one_bad_update(tmp_path, send_bad), reason)


async def test_update_that_is_not_an_npz_file_is_rejected(tmp_path):
    async def send_bad(client, task):
        update_id = await client.upload(b"definitely not a zip archive")
        return await client.send_update(task, update_id, {"num_examples": 3})

    _assert_only_good_averaged(
        *await _round_with_one_bad_update(tmp_path, send_bad), "update is not a readable npz file"
    )


async def test_update_trained_from_another_model_is_rejected(tmp_path):
    async def send_bad(client, task):
        update_id = await client.upload(npz_bytes(GOOD))
        return await client.send_update(task, update_id, {"num_examples": 3}, model_id="some-older-model")

    reason = "update was trained from model 'some-older-model'"
    _assert_only_good_averaged(*await _round_with_one_bad_update(tmp_path, send_bad), reason)
