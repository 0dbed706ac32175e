"""The state of one validation at a combiner: validate tasks out, metrics stored as they come back."""

import asyncio
import time
from dataclasses import dataclass, field

from scaleout.proto import scaleout_pb2 as pb


@dataclass(eq=False)
class ValidationRun:
    config: pb.ValidationConfig
    started: float = field(default_factory=time.monotonic)
    client_of: dict[str, str] = field(default_factory=dict)  # correlation id -> client id
    reporting: set[str] = field(default_factory=set)  # clients whose answer arrived
    reported: set[str] = field(default_factory=set)  # clients whose answer is settled
    stored: int = 0
    rejected: list[pb.RejectedUpdate] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Queue[pb.RoundEvent] = field(default_factory=asyncio.Queue)

    def settle(self, client_id: str, error: str = "") -> None:
        """A client's validation was stored, or (with error) failed or was rejected."""
        if error:
            self.rejected.append(pb.RejectedUpdate(client_id=client_id, reason=error))
        else:
            self.stored += 1
        self.reported.add(client_id)
        self.progress("rejected" if error else "validation", client_id, error)
        if self.reported >= set(self.client_of.values()):
            self.done.set()

    def progress(self, stage: str, client_id: str = "", message: str = "") -> None:
        self.events.put_nowait(
            pb.RoundEvent(
                progress=pb.RoundProgress(
                    round_id=self.config.round_id,
                    stage=stage,
                    clients_selected=len(self.client_of),
                    updates_received=self.stored,
                    updates_rejected=len(self.rejected),
                    client_id=client_id,
                    message=message,
                    elapsed=time.monotonic() - self.started,
                )
            )
        )

    def result(self, ok: bool = True, error: str = "") -> pb.RoundResult:
        return pb.RoundResult(
            round_id=self.config.round_id,
            ok=ok,
            error=error,
            model_id=self.config.model_id,
            rejected=self.rejected,
            validations=self.stored,
            seconds=time.monotonic() - self.started,
        )
