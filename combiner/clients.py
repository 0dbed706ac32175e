"""The client registry: who is connected to this combiner, and the task queue of each.

An open TaskStream (kept alive by HTTP/2 keepalive) means online; closing it means offline at once,
as the contract says, and the listeners of ``on_stream_closed`` hear of it (a round drops the client).
A client without a stream that sends heartbeats is online until ``heartbeat_timeout`` passes without
another one: an asyncio timer per client, not a polling loop.

Statestore calls block, so one writer task makes them in a worker thread, a batch per hop: it coalesces
changes (the latest state of each client is written, in order) and heartbeats cost at most one write per
client per ``write_interval`` (five minutes by default: connects and disconnects are written at once, and
a connected client's liveness is its open stream, not its record), which keeps thousands of clients cheap.
The same writer stores the clients' events (connected, disconnected, a failed task), each with its client
id, for the dashboard's log.
"""

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from scaleout.errors import NotFound
from scaleout.proto.scaleout_pb2 import TaskRequest
from scaleout.store.entities import Client, Event, EventLevel, NodeStatus
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

TaskQueue = asyncio.Queue[TaskRequest | None]  # None ends the stream that reads the queue
CLOSE_TIMEOUT = 10.0  # seconds the final statestore writes may take at shutdown
HEARTBEATS_MISSED = 3  # declared heartbeat intervals without one after which a stream-less client is offline


@dataclass(eq=False)
class ClientState:
    client_id: str
    name: str = ""
    queue: TaskQueue | None = None  # the open task stream's queue; None while no stream is open
    online: bool = False
    last_seen: float = 0.0  # unix seconds
    expiry: asyncio.TimerHandle | None = None
    written_at: float = -math.inf  # monotonic time of the last statestore write


def client_name(data: str) -> str:
    """The name in ClientAvailableMessage.data ({"name": ...}); empty when absent or not JSON."""
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        return ""
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else ""


class ClientRegistry:
    """Clients of one combiner; every method runs on the event loop."""

    def __init__(
        self,
        statestore: Statestore,
        combiner_id: str,
        heartbeat_timeout: float,
        write_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (monotonic seconds) paces the heartbeat writes; a test passes a fake one."""
        self._statestore = statestore
        self._clock = clock
        self._combiner_id = combiner_id
        self._heartbeat_timeout = heartbeat_timeout
        self._write_interval = write_interval
        self._clients: dict[str, ClientState] = {}
        self._change = asyncio.Event()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing dirty and no write in progress
        self._idle.set()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._closed_listeners: list[Callable[[str], None]] = []
        self._opened_listeners: list[Callable[[str], None]] = []
        self._events: list[Event] = []

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="client-registry-writer")

    async def close(self) -> None:
        """End every task stream, mark every client offline, and write that to the statestore."""
        self._closing = True
        for state in self._clients.values():
            self._cancel_expiry(state)
            if state.queue is not None:
                state.queue.put_nowait(None)
                state.queue = None
            self._set_online(state, False)
        self._wake.set()
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._writer, CLOSE_TIMEOUT)
            except TimeoutError:
                log.error("gave up writing client records after %.0f s at shutdown", CLOSE_TIMEOUT)

    # -- stream and heartbeat events ------------------------------------------------------------

    def connect(self, client_id: str, name: str) -> TaskQueue:
        """A task stream opened: the client is online; returns the queue the stream reads."""
        state = self._state(client_id)
        queue: TaskQueue = asyncio.Queue()
        if state.queue is not None:  # a reconnect before the old stream was noticed closed
            while not state.queue.empty():
                task = state.queue.get_nowait()
                if task is not None:
                    queue.put_nowait(task)
            state.queue.put_nowait(None)
        state.queue = queue
        state.name = name or state.name
        state.last_seen = time.time()
        self._cancel_expiry(state)
        self._set_online(state, True)
        self._mark_dirty(state)
        self._notify()  # a client online by its heartbeats is now reachable by tasks too
        for listener in self._opened_listeners:
            listener(client_id)
        return queue

    def disconnect(self, client_id: str, queue: TaskQueue) -> None:
        """A task stream ended; a superseded stream ending changes nothing."""
        state = self._clients.get(client_id)
        if state is None or state.queue is not queue:
            return
        state.queue = None
        self._set_online(state, False)
        self._notify()
        for listener in self._closed_listeners:
            listener(client_id)

    def on_stream_closed(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(client_id)`` on the loop whenever a client's task stream closes.

        A stream replaced by a newer one of the same client (a reconnect) does not count: the client is
        still there. Nor does the combiner ending every stream as it stops.
        """
        self._closed_listeners.append(listener)

    def on_stream_opened(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(client_id)`` on the loop whenever a client's task stream (or poll queue) opens,
        a reconnect's included."""
        self._opened_listeners.append(listener)

    def end_stream(self, client_id: str) -> bool:
        """End the client's open task stream (its credential was revoked); False when none is open."""
        state = self._clients.get(client_id)
        if state is None or state.queue is None:
            return False
        state.queue.put_nowait(None)  # the stream's own exit marks the client offline
        return True

    def heartbeat(self, client_id: str, interval: float = 0.0) -> None:
        """Refresh last_seen; without a stream the heartbeat alone keeps the client online for a while:
        ``heartbeat_timeout``, or three of the client's declared heartbeat ``interval`` if longer, so that
        a client with infrequent heartbeats does not flap offline between them."""
        state = self._state(client_id)
        state.last_seen = time.time()
        if state.queue is None:
            self._cancel_expiry(state)
            loop = asyncio.get_running_loop()
            timeout = max(self._heartbeat_timeout, HEARTBEATS_MISSED * interval)
            state.expiry = loop.call_later(timeout, self._expire, state)
            self._set_online(state, True)
        if self._clock() - state.written_at >= self._write_interval:
            self._mark_dirty(state)

    def _expire(self, state: ClientState) -> None:
        state.expiry = None
        if state.queue is None:
            log.info("client %s offline: no task stream and no heartbeat in time", state.client_id)
            self._set_online(state, False)

    # -- queries and tasks ----------------------------------------------------------------------

    def is_online(self, client_id: str) -> bool:
        state = self._clients.get(client_id)
        return state is not None and state.online

    def online(self) -> list[ClientState]:
        return [state for state in self._clients.values() if state.online]

    def streaming(self) -> list[str]:
        """Ids of clients with an open task stream: the only ones a task can reach."""
        return [state.client_id for state in self._clients.values() if state.queue is not None]

    def publish(self, client_id: str, task: TaskRequest) -> bool:
        """Queue a task on the client's stream; False when the client has no open stream."""
        state = self._clients.get(client_id)
        if state is None or state.queue is None:
            return False
        state.queue.put_nowait(task)
        return True

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once predicate() holds, checked at each change (online, offline, stream opened or
        closed); TimeoutError at the bound."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._change.wait()

    # -- internals ------------------------------------------------------------------------------

    def _state(self, client_id: str) -> ClientState:
        state = self._clients.get(client_id)
        if state is None:
            state = self._clients[client_id] = ClientState(client_id)
        return state

    def _cancel_expiry(self, state: ClientState) -> None:
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None

    def _set_online(self, state: ClientState, online: bool) -> None:
        if state.online == online:
            return
        state.online = online
        who = f"client {state.name or state.client_id}"
        if online:
            self.record_event(state.client_id, "client_connected", f"{who} connected to {self._combiner_id}")
        else:
            message = f"{who} disconnected from {self._combiner_id}"
            self.record_event(state.client_id, "client_disconnected", message, EventLevel.WARNING)
        self._mark_dirty(state)
        self._notify()

    def record_event(
        self,
        client_id: str,
        type: str,
        message: str,
        level: EventLevel = EventLevel.INFO,
        **ids: str,
    ) -> None:
        """Store an event about a client (with its id, and session_id/round_id when given), in order,
        from the writer task."""
        self._events.append(
            Event(
                level=level,
                type=type,
                message=message,
                client_id=client_id,
                combiner_id=self._combiner_id,
                **ids,
            )
        )
        self._idle.clear()
        self._wake.set()

    def _notify(self) -> None:
        """Wake every wait_for: swap in a fresh event and set the old one."""
        change, self._change = self._change, asyncio.Event()
        change.set()

    def _mark_dirty(self, state: ClientState) -> None:
        state.written_at = self._clock()
        self._dirty.add(state.client_id)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Return once every change made so far is written (or its write failed, logged)."""
        await self._idle.wait()

    async def _write_loop(self) -> None:
        """Write dirty client records a batch at a time, off the loop; exits once closing and drained."""
        while True:
            await self._wake.wait()  # idle until a change; cancelled or drained at close
            self._wake.clear()
            batch, self._dirty = self._dirty, set()
            records = [
                (i, self._clients[i].name, self._clients[i].online, self._clients[i].last_seen) for i in batch
            ]
            events, self._events = self._events, []
            if records or events:
                await asyncio.to_thread(self._write_batch, records, events)
            if not self._dirty and not self._events:
                self._idle.set()
                if self._closing:
                    return

    def _write_batch(self, records: Sequence[tuple[str, str, bool, float]], events: Sequence[Event]) -> None:
        for record in records:
            try:
                self._write(*record)
            except Exception:
                log.exception("writing the record of client %s to the statestore failed", record[0])
        for event in events:
            try:
                self._statestore.events.add(event)
            except Exception:  # an event reports on the client; losing one must not stop the writer
                log.exception("storing event %s of client %s failed", event.type, event.client_id)

    def _write(self, client_id: str, name: str, online: bool, last_seen: float) -> None:
        status = NodeStatus.ONLINE if online else NodeStatus.OFFLINE
        seen = datetime.fromtimestamp(last_seen, UTC)
        changes = {"status": status, "last_seen": seen, "combiner_id": self._combiner_id}
        if name:
            changes["name"] = name
        try:
            self._statestore.clients.update(client_id, changes)
        except NotFound:
            self._statestore.clients.upsert(
                Client(id=client_id, name=name, combiner_id=self._combiner_id, status=status, last_seen=seen)
            )
