"""The controller's settings: built once by the app factory or CLI and passed down."""

from dataclasses import dataclass, field

from scaleout.tls import ClientTLS


@dataclass(frozen=True)
class ControllerSettings:
    """Bounds of every wait the controller makes; each field says what happens at the bound."""

    # A combiner heartbeats its Combiner record every 5 s (contract); three missed beats mean offline.
    combiner_online_window: float = 15.0
    # Seconds an Info call may take; a combiner that does not answer is left out of the round.
    info_deadline: float = 5.0
    # Seconds beyond round_timeout a StartRound call may take (staging the model, the last uploads,
    # writing the aggregate); past it the call is cancelled and counts as that combiner's failure.
    round_margin: float = 60.0
    # Seconds combiners wait for validations; None means the session's round_timeout.
    validation_timeout: float | None = None
    # Largest gRPC message on Control channels: a RoundResult carries one entry per client.
    grpc_max_message_size: int = 64 * 1024 * 1024
    # Seconds stop_session and close wait for a cancelled session to record its end.
    stop_timeout: float = 30.0
    # Seconds before the first retry of a failed round, doubled per retry up to retry_delay_max: a
    # restarting combiner and its reconnecting clients need a moment, an immediate retry would fail too.
    retry_delay: float = 1.0
    retry_delay_max: float = 30.0
    # Where the reduce spools models; None means the system's temp directory.
    work_dir: str | None = None
    # The federation's shared token (the API's), sent on every Control call; None for open combiners.
    token: str | None = None
    # How combiners that serve TLS are verified (their record says so), and the certificate presented
    # to those that require mutual TLS. Combiners without TLS are dialled in plaintext.
    tls: ClientTLS = field(default_factory=ClientTLS)
    # This controller's id in session leases; None makes a unique one. A stable id (the API's
    # host:port) lets a restarted API resume its sessions at once instead of after their lease lapses.
    owner_id: str | None = None
    # Seconds a session's lease lasts unrenewed (renewed every third of it): after a crash, another
    # controller resumes the session within lease_seconds + lease_check_interval.
    lease_seconds: float = 15.0
    # Seconds between looks for Started sessions whose lease lapsed (their controller is gone).
    lease_check_interval: float = 5.0
    # The repository sweep deletes objects no record names once they are older than sweep_grace
    # seconds (longer than any round, so a round's files in flight are never taken); it runs at start
    # and every sweep_interval seconds.
    sweep_grace: float = 3600.0
    sweep_interval: float = 3600.0

    def retry_backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` + 1 of a failed round."""
        return min(self.retry_delay * 2**attempt, self.retry_delay_max)

    def validation_deadline(self, round_timeout: float) -> float:
        """The timeout sent in ValidationConfig: the setting, or the round's own timeout."""
        return self.validation_timeout if self.validation_timeout is not None else round_timeout
