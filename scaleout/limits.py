"""Open files for servers with thousands of connections: every connected client holds a socket.

A process starts with the soft RLIMIT_NOFILE its shell or service manager gave it, often 1,024, while the
hard limit (what it may raise itself to) is usually far higher. Past the soft limit a server's accept()
fails with EMFILE: gRPC logs that deep in C-core and the clients see connections refused, with nothing
naming the cause. So the combiner and the API raise the soft limit to the hard one at start, and say so
plainly when even the hard limit holds fewer clients than a federation at scale has.
"""

import logging
import resource

log = logging.getLogger(__name__)

# Open files a process keeps besides its client sockets: its statestore, spooled and staged models,
# worker threads' files, the listening sockets.
RESERVED_FILES = 100
# Clients one combiner should be able to hold (5,000 connected idle clients are measured in
# benchmarks/swarm.py); a hard limit below this many files is reported at start.
EXPECTED_CLIENTS = 5_000


def raise_open_files_limit(role: str, expected: int = EXPECTED_CLIENTS) -> int:
    """Raise this process's soft open-files limit to its hard limit; return the soft limit now.

    Logs a warning naming ``role``, how many clients the limit holds and how to raise it when it holds
    fewer than ``expected`` (an unlimited hard limit is capped by the kernel's nr_open, far higher).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        target = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning(
                "could not raise the open-files limit of the %s from %d to %d: %s", role, soft, target, error
            )
    if soft != resource.RLIM_INFINITY and soft < expected + RESERVED_FILES:
        log.warning(
            "the %s may open only %d files (RLIMIT_NOFILE, hard limit %s), so it holds about %d connected "
            "clients: raise the hard limit to at least %d (ulimit -Hn in the shell that starts it, "
            "LimitNOFILE= in a systemd unit, --ulimit nofile=N:N for docker)",
            role,
            soft,
            "unlimited" if hard == resource.RLIM_INFINITY else hard,
            max(0, soft - RESERVED_FILES),
            expected + RESERVED_FILES,
        )
    return soft


def _nr_open() -> int:
    """The kernel's ceiling on a process's open files (Linux), else a generous fixed bound."""
    try:
        with open("/proc/sys/fs/nr_open") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 1 << 20
