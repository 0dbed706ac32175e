"""Run a blocking call (an entry point, a venv build) without blocking the client's event loop.

``asyncio.to_thread`` would do, except that its executor is joined when the loop shuts down: a
client stopped by SIGTERM would then wait for a training run to finish. A daemon thread lets the
client exit at once, after stopping the entry point's process itself (``Dispatcher.stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any, name: str = "scaleout-blocking") -> T:
    """Await ``fn(*args)`` run in a daemon thread; its exception, if any, is raised here.

    Cancelling the await does not stop ``fn``: the thread runs to its end and its result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():  # the awaiting task may have been cancelled meanwhile
            setter(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed while fn ran: nobody waits any more
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
