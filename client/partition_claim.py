"""Which data partition a client trains on when several replicas share one configuration.

`docker compose` gives every replica of a service (``deploy.replicas``) the same environment, so a fixed
``SCALEOUT_DATA_PARTITION`` cannot tell them apart, and a hash of the hostname modulo the partition count
collides (half the time for two replicas). Instead each client claims the first free partition 0..N-1 by
taking an exclusive ``flock`` on ``DIR/partition-K.lock``, a folder the replicas share (a named volume),
and holds it for the life of its process. Two live clients never hold the same partition; the kernel
drops the lock when a client stops or crashes, so a restarted replica takes a partition back at once and
a stale claim cannot exist. Locks are per host: this is for replicas on one machine (one compose project).
"""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from scaleout.errors import ScaleoutError


class PartitionsExhausted(ScaleoutError):
    """Every data partition is held by a running client."""


@dataclass
class PartitionClaim:
    """A held partition; the lock lasts until ``release`` (or the process ends)."""

    partition: int
    num_partitions: int
    path: Path
    _fd: int

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> PartitionClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_partition(directory: Path, num_partitions: int) -> PartitionClaim:
    """Lock the lowest-numbered partition no running client holds; raise PartitionsExhausted if none."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
    directory.mkdir(parents=True, exist_ok=True)
    for partition in range(num_partitions):
        path = directory / f"partition-{partition}.lock"
        # os.open's descriptors are not inherited by the entry points the client runs, so only this
        # process holds the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        # Who holds it, for a person looking into the volume; the lock, not this text, is the claim.
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        return PartitionClaim(partition, num_partitions, path, fd)
    raise PartitionsExhausted(
        f"all {num_partitions} data partitions in {directory} are held by running clients; "
        "stop a client or raise SCALEOUT_NUM_PARTITIONS (--num-partitions) to match the number of clients"
    )
