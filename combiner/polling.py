"""Polling clients: the official Scaleout Edge client's PollAndReportAsync and Announce.

The official client (scaleout==1.1.0) never opens a TaskStream: every few seconds it sends a
ClientReport (the state of its running tasks) and takes the tasks of the CombinerDirective it gets
back. A poller is served by the same round machinery as a streaming client: its first poll opens a
task queue in the client registry exactly as a TaskStream does, rounds publish to that queue, and the
next poll hands the queued tasks out. A poller counts as online for ``online_seconds`` after its last
poll, or for MISSED_POLLS of the poll intervals it reports if that is longer (an asyncio timer, not a
sweep); when the timer fires, or the client announces Disconnect, its queue closes like a stream that
ended, so a round it was selected for drops it at once.
"""

import asyncio
import json
import logging
from dataclasses import dataclass

from scaleout import __version__
from scaleout.combiner.clients import ClientRegistry, TaskQueue
from scaleout.combiner.rounds import RoundHandler
from scaleout.combiner.tasks import TRAIN
from scaleout.proto import scaleout_pb2 as pb

log = logging.getLogger(__name__)

# ClientAnnounceRequest.type values of the official client (scaleoututil.grpc.clientrequest).
CONNECT = "Connect"
DISCONNECT = "Disconnect"
VERSION_CHECK = "VersionCheck"
# ActivityReport.status values (scaleoututil.grpc.statustype) this module acts on.
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"
MAX_ERROR_CHARS = 2000  # of a failed task's error kept in the round record
MISSED_POLLS = 3  # a client polling less often than online_seconds is offline after this many misses
MAX_ONLINE_SECONDS = 86_400.0  # bound on what a reported poll interval can stretch the window to


@dataclass(eq=False)
class _Poller:
    queue: TaskQueue
    expiry: asyncio.TimerHandle | None = None


class Pollers:
    """The polling clients of one combiner; every method runs on the event loop."""

    def __init__(
        self,
        registry: ClientRegistry,
        rounds: RoundHandler,
        online_seconds: float,
    ) -> None:
        self._registry = registry
        self._rounds = rounds
        self._online_seconds = online_seconds
        self._pollers: dict[str, _Poller] = {}

    async def poll(self, report: pb.ClientReport, name: str) -> pb.CombinerDirective:
        """Take the client's reports, keep it online, and hand out its queued tasks."""
        interval = report.poll_interval_ms / 1000 if report.HasField("poll_interval_ms") else 0.0
        poller = self._keep_online(report.client_id, name, interval)
        directive = pb.CombinerDirective()
        for activity in report.reports:
            if interrupt := await self._take_report(report.client_id, activity):
                directive.tasks.append(interrupt)
        if report.skip_polling_tasks:  # the client is shutting down: it takes no new task
            return directive
        while not poller.queue.empty():
            task = poller.queue.get_nowait()
            if task is None:  # the registry ended the queue: revoked, a newer stream, or stopping
                self._end(report.client_id, poller)
                break
            if self._rounds.is_active(task.correlation_id):
                self._note_delivery(report.client_id, task)
                directive.tasks.append(task)
        return directive

    async def announce(self, request: pb.ClientAnnounceRequest, name: str) -> pb.Response:
        """Answer the version check; Connect makes the client online, Disconnect offline at once (the registry
        records both as events)."""
        client_id = request.client_id
        if request.type == VERSION_CHECK:
            parameters = {"success": True, "version": __version__}
            return pb.Response(response="version accepted", parameters=json.dumps(parameters))
        if request.type == CONNECT:
            self._keep_online(client_id, name)
            return pb.Response(response="connected")
        if request.type == DISCONNECT:
            poller = self._pollers.get(client_id)
            if poller is not None:
                self._end(client_id, poller)
            return pb.Response(response="disconnected")
        raise ValueError(
            f"ClientAnnounceRequest.type {request.type[:100]!r} is not one of "
            f"{CONNECT}, {DISCONNECT}, {VERSION_CHECK}"
        )

    def close(self) -> None:
        for poller in self._pollers.values():
            if poller.expiry is not None:
                poller.expiry.cancel()
        self._pollers.clear()

    # -- internals ------------------------------------------------------------------------------

    def _keep_online(self, client_id: str, name: str, poll_interval: float = 0.0) -> _Poller:
        poller = self._pollers.get(client_id)
        if poller is None:
            poller = self._pollers[client_id] = _Poller(self._registry.connect(client_id, name))
        elif poller.expiry is not None:
            poller.expiry.cancel()
        self._registry.heartbeat(client_id)  # last_seen, written at most every write interval
        loop = asyncio.get_running_loop()
        window = min(max(self._online_seconds, MISSED_POLLS * poll_interval), MAX_ONLINE_SECONDS)
        poller.expiry = loop.call_later(window, self._expire, client_id, poller)
        return poller

    def _expire(self, client_id: str, poller: _Poller) -> None:
        log.info("client %s offline: it stopped polling", client_id)
        poller.expiry = None
        self._end(client_id, poller)

    def _end(self, client_id: str, poller: _Poller) -> None:
        """The poller is gone: its queue closes as a task stream that ended would."""
        self._forget(client_id, poller)
        self._registry.disconnect(client_id, poller.queue)

    def _forget(self, client_id: str, poller: _Poller) -> None:
        if poller.expiry is not None:
            poller.expiry.cancel()
            poller.expiry = None
        if self._pollers.get(client_id) is poller:
            del self._pollers[client_id]

    def _note_delivery(self, client_id: str, task: pb.TaskRequest) -> None:
        training = self._rounds.current_round
        if task.type == TRAIN and training is not None and training.is_task(task.correlation_id):
            training.polled.add(client_id)
        self._rounds.fedbuff.note_polled(task.correlation_id)

    async def _take_report(self, client_id: str, activity: pb.ActivityReport) -> pb.TaskRequest | None:
        """A failed task is its client's report to the round; a task no round runs any more is
        interrupted (answered with its correlation id and status INTERRUPTED)."""
        if activity.HasField("command_type"):  # a task the client started itself: nothing of ours
            return None
        correlation_id = activity.correlation_id
        if activity.done:
            if activity.status == FAILED:
                error = _error_of(activity.response)
                status = pb.Status(
                    client_id=client_id,
                    status=json.dumps({"correlation_id": correlation_id, "error": error}),
                    log_level=pb.ERROR,
                )
                await self._rounds.receive_status(status)
            return None
        if self._rounds.is_active(correlation_id):
            return None
        return pb.TaskRequest(correlation_id=correlation_id, client_id=client_id, status=INTERRUPTED)


def _error_of(response: str) -> str:
    """The error of a failed task's response JSON ({"error": ...}), or the response itself."""
    try:
        value = json.loads(response) if response else {}
    except ValueError:
        value = None
    error = value.get("error") if isinstance(value, dict) else None
    text = str(error) if error else (response or "the task failed without an error message")
    return text[:MAX_ERROR_CHARS]
