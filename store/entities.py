"""The statestore's entities, shared by the REST API and every backend.

Ids are time-ordered (a millisecond timestamp then randomness, as hex), so sorting by id sorts by
creation: round ids never string-sort "10" before "9".
"""

import json
import os
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from scaleout import round_rules as rules

_last_id = 0
_id_lock = threading.Lock()


def new_id() -> str:
    """A 32-hex-digit id whose order is the order of creation (UUIDv7-like).

    A millisecond timestamp then 80 random bits; ids made in the same millisecond by one process
    count up from the previous one (as monotonic ULIDs do), so they too sort in creation order.
    """
    global _last_id
    with _id_lock:
        candidate = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
        _last_id = max(candidate, _last_id + 1)
        return f"{_last_id:032x}"


def utcnow() -> datetime:
    """Timezone-aware now; backends store and return UTC."""
    return datetime.now(UTC)


class Entity(BaseModel):
    """Base of every stored record: a unique, time-ordered id."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    id: str = Field(default_factory=new_id)


class SessionStatus(StrEnum):
    CREATED = "Created"
    STARTED = "Started"
    FINISHED = "Finished"
    FAILED = "Failed"
    TERMINATED = "Terminated"


class RoundStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"


class NodeStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class SessionConfig(BaseModel):
    """How a session runs its rounds; validated at the API, stored with the session.

    Strict types (``rounds: true`` or ``"5"`` is no count) and the bounds of ``scaleout.round_rules``,
    the rules the combiner applies to each RoundConfig, so a session created is a session that runs.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    rounds: int = Field(5, ge=1, le=rules.MAX_ROUNDS)
    round_timeout: float = Field(
        180.0,
        gt=0,
        le=rules.MAX_ROUND_TIMEOUT,
        allow_inf_nan=False,
        description="seconds a round waits for updates",
    )
    min_clients: int = Field(1, ge=1, le=rules.MAX_CLIENTS)
    requested_clients: int | None = Field(
        None, ge=1, le=rules.MAX_CLIENTS, description="clients to select; None selects all"
    )
    buffer_size: int | None = Field(
        None, ge=1, le=rules.MAX_CLIENTS, description="end a round after this many updates"
    )
    aggregator: str = Field(
        "fedavg", max_length=rules.MAX_NAME_CHARS, description=f"one of {rules.AGGREGATORS}"
    )
    aggregator_kwargs: dict[Annotated[str, Field(max_length=rules.MAX_NAME_CHARS)], float] = Field(
        default_factory=dict, max_length=rules.MAX_AGGREGATOR_KWARGS
    )
    validate_models: bool = Field(True, alias="validate")
    helper: str = Field(
        "numpyhelper", max_length=rules.MAX_NAME_CHARS, description=f"one of {', '.join(rules.HELPERS)}"
    )
    client_settings: dict[str, Any] = Field(
        default_factory=dict, description="handed to the train entry point in IN-metadata"
    )
    round_retries: int = Field(
        10,
        ge=0,
        le=rules.MAX_ROUND_RETRIES,
        description="times a failed round is retried (with backoff) before the session fails; "
        "a lost combiner or too few clients is a retry, not a failure",
    )
    retry_timeout: float = Field(
        600.0,
        ge=0,
        le=rules.MAX_ROUND_TIMEOUT,
        allow_inf_nan=False,
        description="seconds a failed round keeps being retried after its first failure; past it, "
        "or after round_retries retries, the session fails",
    )
    max_update_norm: float | None = Field(
        None,
        gt=0,
        le=rules.MAX_UPDATE_NORM,
        allow_inf_nan=False,
        description="bound on the L2 norm of an update minus the global model; None: no bound",
    )
    clip_updates: bool = Field(
        False, description="scale an update over max_update_norm down to it instead of rejecting it"
    )
    # Asynchronous sessions (FedBuff, Nguyen et al. AISTATS 2022); ignored in sync mode except mode.
    mode: str = Field(
        "sync",
        description='"sync": rounds wait for their clients; "async": clients train on the latest '
        "version all the time and every buffer_size updates make a new version",
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=rules.MAX_CLIENTS, description="async: clients training at once; None: every client"
    )
    staleness: str = Field(
        "polynomial",
        description='async: weight of an update tau versions stale: "constant" 1, '
        '"polynomial" (1 + tau) ** -staleness_exponent',
    )
    staleness_exponent: float = Field(
        0.5, ge=0, le=rules.MAX_STALENESS_EXPONENT, allow_inf_nan=False, description="async: see staleness"
    )
    max_staleness: int | None = Field(
        None, ge=0, le=rules.MAX_ROUNDS, description="async: reject updates staler than this; None: no bound"
    )
    max_versions: int | None = Field(
        None, ge=1, le=rules.MAX_ROUNDS, description="async: stop after this many server steps"
    )
    max_duration: float | None = Field(
        None,
        gt=0,
        le=rules.MAX_ROUND_TIMEOUT,
        allow_inf_nan=False,
        description="async: stop after this many seconds of training",
    )
    server_lr: float = Field(
        1.0,
        gt=0,
        le=rules.MAX_SERVER_LR,
        allow_inf_nan=False,
        description="async with fedavg: the new version is x + server_lr * the buffer's mean delta",
    )
    validate_every: int = Field(
        1, ge=1, le=rules.MAX_ROUNDS, description="async: validate every this many versions"
    )

    @field_validator("aggregator")
    @classmethod
    def _known_aggregator(cls, value: str) -> str:
        if error := rules.name_error(value, rules.AGGREGATORS, "aggregator"):
            raise ValueError(error)
        return value

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if error := rules.name_error(value, rules.MODES, "mode"):
            raise ValueError(error)
        return value

    @field_validator("staleness")
    @classmethod
    def _known_staleness(cls, value: str) -> str:
        if error := rules.name_error(value, rules.STALENESS, "staleness function"):
            raise ValueError(error)
        return value

    @field_validator("helper")
    @classmethod
    def _known_helper(cls, value: str) -> str:
        if error := rules.name_error(value, rules.HELPERS, "helper"):
            raise ValueError(error)
        return value

    @field_validator("client_settings")
    @classmethod
    def _small_client_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError) as error:
            raise ValueError(f"must be a JSON object ({error})") from None
        if size > rules.MAX_CLIENT_SETTINGS_BYTES:
            raise ValueError(
                f"is {size} bytes of JSON, more than {rules.MAX_CLIENT_SETTINGS_BYTES}; it goes with "
                "every train task: pass data by reference"
            )
        return value

    @field_validator("aggregator_kwargs")
    @classmethod
    def _kwargs_in_range(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        # aggregator and min_clients come first in the class, so they are validated already (or absent).
        aggregator, min_clients = info.data.get("aggregator"), info.data.get("min_clients", 0)
        if aggregator and (error := rules.aggregator_kwargs_error(aggregator, value, min_clients)):
            raise ValueError(error)
        return value

    @model_validator(mode="after")
    def _reachable(self) -> "SessionConfig":
        if self.requested_clients is not None and self.requested_clients < self.min_clients:
            raise ValueError(
                f"requested_clients ({self.requested_clients}) is below min_clients ({self.min_clients}): "
                "no round could succeed"
            )
        if self.mode == "async" and self.max_versions is None and self.max_duration is None:
            raise ValueError("an async session needs max_versions or max_duration (or both) to end")
        if self.mode == "async" and (
            error := rules.async_error(self.aggregator, self.aggregator_kwargs, self.server_lr)
        ):
            raise ValueError(error)
        return self


class Session(Entity):
    name: str = ""
    status: SessionStatus = SessionStatus.CREATED
    config: SessionConfig = Field(default_factory=SessionConfig)
    seed_model_id: str | None = None
    rounds_done: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The controller running a Started session holds its lease until lease_expires and renews it;
    # another controller takes the session over once it lapses (ARCHITECTURE §8).
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    resumed: int = Field(0, ge=0, description="times a controller resumed the session after losing it")

    @computed_field(description="the id again, as FEDn's and Scaleout's API clients read it")  # type: ignore[prop-decorator]
    @property
    def session_id(self) -> str:
        return self.id


class ClientRoundResult(BaseModel):
    client_id: str
    combiner_id: str = ""
    num_examples: int
    train_seconds: float = 0.0
    fold_seconds: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime | None = Field(None, description="when the update arrived at its combiner")
    delivery: str = Field(
        "", description='how its train task reached it: "stream" (TaskStream) or "poll" (PollAndReportAsync)'
    )
    base_version: int | None = Field(
        None, description="async: the version the client trained from (0 is the session's start model)"
    )
    staleness: int | None = Field(
        None, description="async: versions committed between its base version and its fold"
    )
    staleness_weight: float | None = Field(None, description="async: s(staleness), the delta's weight factor")


class CombinerRoundResult(BaseModel):
    combiner_id: str
    model_id: str | None = None
    num_examples: int = 0
    seconds: float = 0.0
    error: str | None = None


class RejectedUpdate(BaseModel):
    client_id: str
    reason: str
    combiner_id: str = ""


class Round(Entity):
    session_id: str
    index: int = Field(ge=0, description="0-based position within the session")
    status: RoundStatus = RoundStatus.PENDING
    config: SessionConfig = Field(default_factory=SessionConfig)
    parent_model_id: str | None = None
    model_id: str | None = None
    combiners: list[CombinerRoundResult] = Field(default_factory=list)
    clients: list[ClientRoundResult] = Field(default_factory=list)
    rejected: list[RejectedUpdate] = Field(default_factory=list)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    optimizer_state_id: str | None = Field(
        None, description="the server optimizer's state after this round, in the model repository"
    )
    epsilon: float | None = Field(
        None, description="central DP: epsilon spent by the session up to this round, at dp_delta"
    )
    dp_sampling_rate: float | None = Field(
        None, description="central DP: selected / connected clients of this round (the accountant's q)"
    )


class Model(Entity):
    """A model in the trail. Its bytes are in the model repository under the same id."""

    parent_id: str | None = None
    ancestors: list[str] = Field(default_factory=list, description="parent first, root last")
    session_id: str | None = None
    round_id: str | None = None
    name: str = ""
    size: int = Field(0, ge=0)
    sha256: str = ""
    committed_at: datetime = Field(default_factory=utcnow)
    optimizer_state_id: str | None = Field(
        None, description="the server optimizer's state that produced this model; continued from it"
    )

    @computed_field(description="the id again, as FEDn's and Scaleout's API clients read it")  # type: ignore[prop-decorator]
    @property
    def model_id(self) -> str:
        return self.id


class Validation(Entity):
    model_id: str
    client_id: str
    session_id: str | None = None
    round_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class Client(Entity):
    name: str = ""
    combiner_id: str | None = None
    status: NodeStatus = NodeStatus.OFFLINE
    last_seen: datetime = Field(default_factory=utcnow)
    package_checksum: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Combiner(Entity):
    name: str = ""
    address: str = ""
    port: int = Field(0, ge=0, le=65535)
    status: NodeStatus = NodeStatus.ONLINE
    last_seen: datetime = Field(default_factory=utcnow)
    client_count: int = Field(0, ge=0)
    tls: bool = Field(False, description="serves gRPC over TLS: clients and the controller dial it with TLS")


class Package(Entity):
    """A compute package; its tarball is in the model repository under the same id."""

    name: str = ""
    file_name: str = "package.tgz"
    sha256: str = ""
    size: int = Field(0, ge=0)
    helper: str = "numpyhelper"
    description: str = ""
    active: bool = False
    committed_at: datetime = Field(default_factory=utcnow)


class EventLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Event(Entity):
    level: EventLevel = EventLevel.INFO
    type: str = ""
    message: str = ""
    session_id: str | None = None
    round_id: str | None = None
    client_id: str | None = None
    combiner_id: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)


class CredentialKind(StrEnum):
    CLIENT = "client"  # a client's bearer token, bound to one client id
    ENROLLMENT = "enrollment"  # a secret a client exchanges for its own client credential


class Credential(Entity):
    """An issued secret, stored only as its sha256: the secret itself is shown once, when issued."""

    kind: CredentialKind
    name: str = ""
    client_id: str | None = Field(None, description="the client a client credential acts as")
    token_hash: str = Field(description="sha256 hex of the whole token")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    uses_left: int | None = Field(None, ge=0, description="enrollment: clients it may still enroll")
    enrollment_id: str | None = Field(None, description="the enrollment secret a client credential came from")
