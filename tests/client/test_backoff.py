"""The client's retry delays: exponential, capped, jittered, and reset after a success."""

import random

import pytest

from scaleout.client.backoff import Backoff


def test_delays_double_up_to_the_maximum_and_stay_within_half_to_full_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    caps = []
    for _ in range(6):
        cap = backoff.cap()
        delay = backoff.next_delay()
        assert cap / 2 <= delay <= cap
        caps.append(cap)
    assert caps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_spreads_clients_that_fail_together() -> None:
    delays = {Backoff(initial=1.0, maximum=8.0, rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert len(delays) == 20


def test_reset_starts_over_from_the_initial_delay() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.cap() == 0.5


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, attempts=10_000)
    assert 15.0 <= backoff.next_delay() <= 30.0


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial <= maximum"):
        Backoff(initial=5.0, maximum=1.0)
