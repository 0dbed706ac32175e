"""Run a controller against Control doubles on loopback: the shared steps of the controller tests."""

import asyncio
from collections.abc import Sequence

from scaleout.controller import Controller, ControllerSettings
from scaleout.store.entities import Event, Round, Session, SessionConfig
from tests.controller.conftest import Stores
from tests.controller.control_double import ControlDouble, serving

# Short bounds keep the failure tests fast; each test states the bound it relies on. Info is not one:
# a loaded CI machine took over 2 s to answer it and failed a round that was meant to succeed.
FAST = ControllerSettings(info_deadline=10.0, round_margin=5.0, stop_timeout=5.0, retry_delay=0.01)
SESSION_BOUND = 30.0


def create_session(stores: Stores, seed_id: str | None, **config) -> Session:
    config.setdefault("rounds", 1)
    config.setdefault("round_timeout", 5.0)
    config.setdefault("validate", False)
    config.setdefault("round_retries", 0)  # a failure fails the session at once unless a test retries
    session = Session(name="test", config=SessionConfig(**config), seed_model_id=seed_id)
    return stores.statestore.sessions.add(session)


async def run_session(
    stores: Stores,
    doubles: Sequence[ControlDouble],
    seed_id: str | None,
    settings: ControllerSettings = FAST,
    **config,
) -> Session:
    """Start a session, await its end (bounded), and return the stored session."""
    async with serving(stores.statestore, doubles):
        controller = Controller(stores.statestore, stores.repository, settings)
        await controller.start()
        try:
            session = await asyncio.to_thread(create_session, stores, seed_id, **config)
            await controller.start_session(session.id)
            return await controller.wait_for_session(session.id, timeout=SESSION_BOUND)
        finally:
            await controller.close()


def rounds_of(stores: Stores, session_id: str) -> list[Round]:
    return stores.statestore.rounds.list({"session_id": session_id}, sort_key="id").items


def event_types(stores: Stores, session_id: str) -> list[str]:
    events: list[Event] = stores.statestore.events.list({"session_id": session_id}, sort_key="id").items
    return [e.type for e in events]
