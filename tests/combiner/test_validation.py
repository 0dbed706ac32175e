"""Validation tasks: each client's metrics JSON is stored as a Validation record."""

import asyncio

import numpy as np
import pytest

from tests.combiner.driver import WAIT, clients, controller, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SEED = [np.ones((2, 2), dtype=np.float32)]


async def test_validation_results_are_stored_per_client(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        model_id = put_seed(combiner, SEED)
        validation = ctl.start_validation(model_id=model_id, session_id="s1", round_id="r1")
        task_a, task_b = await a.next_task(), await b.next_task()
        assert task_a.type == task_b.type == "Scaleout_Validation"
        assert task_a.model_id == model_id
        assert await a.download(model_id)  # the model to validate is staged for download
        assert await a.validate(task_a, {"test_accuracy": 0.75, "test_loss": 0.5}) == "accepted"
        assert await b.validate(task_b, {"test_accuracy": 0.5}) == "accepted"
        result = await asyncio.wait_for(validation, WAIT)  # hour-long timeout: ended by the last report

        assert result.ok and result.validations == 2
        stored = combiner.statestore.validations.list(sort_key="client_id").items
        assert [(v.client_id, v.model_id, v.session_id, v.round_id) for v in stored] == [
            ("a", model_id, "s1", "r1"),
            ("b", model_id, "s1", "r1"),
        ]
        assert stored[0].metrics == {"test_accuracy": 0.75, "test_loss": 0.5}


async def test_validation_not_json_object_is_rejected_and_a_failure_counts(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        validation = ctl.start_validation(model_id=put_seed(combiner, SEED))
        task_a, task_b = await a.next_task(), await b.next_task()
        answer = await a.validate(task_a, "[0.5]")
        assert (
            answer == "rejected: validation data is not a JSON object; send the validate entry point's output"
        )
        assert await b.fail(task_b, "validate exited with code 2") == "failure recorded"
        result = await asyncio.wait_for(validation, WAIT)
        assert result.validations == 0 and len(result.rejected) == 2
        assert combiner.statestore.validations.count() == 0


async def test_validation_at_timeout_names_the_silent_clients(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        validation = ctl.start_validation(model_id=put_seed(combiner, SEED), timeout=0.3)
        task_a = await a.next_task()
        await b.next_task()
        assert await a.validate(task_a, {"acc": 1}) == "accepted"
        result = await asyncio.wait_for(validation, WAIT)
        assert result.ok and result.validations == 1
        assert [(r.client_id, r.reason) for r in result.rejected] == [
            ("b", "no validation by the timeout of 0.3 s")
        ]
        late = await a.validate(task_a, {"acc": 1})
        assert late.startswith("rejected: validation answers unknown or finished task")
