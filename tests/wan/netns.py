"""A shaped WAN link: a network namespace joined to this one by a veth pair, capped by ``tc tbf``.

The namespace is where remote clients run (``ip netns exec``); this side of the link has ``host_ip``,
the far side ``peer_ip``. Each direction is capped at ``rate_mbit`` by a token bucket on its sending end.
Latency comes from the delaying relay (relay.py), since this kernel has no netem. Everything is
removed on exit, whatever happened (deleting one end of a veth pair deletes both).
"""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, or no CAP_NET_ADMIN)."""


@dataclass(frozen=True)
class WanLink:
    namespace: str
    host_if: str
    host_ip: str
    peer_ip: str
    rate_mbit: int

    def prefix(self) -> list[str]:
        """A command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def set_up(self, up: bool) -> None:
        """Cut (False) or restore (True) the link, as a cable pulled and plugged back."""
        _ip("link", "set", self.host_if, "up" if up else "down")


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")


def _ip(*args: str) -> None:
    _run("ip", *args)


def check_netns() -> None:
    """Raise NetnsUnavailable, naming why, when ``ip netns add`` is not permitted here."""
    name = f"so-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", name)
    except (RuntimeError, FileNotFoundError) as exc:
        raise NetnsUnavailable(
            f"`ip netns add` is not permitted here (needs root and iproute2): {exc}"
        ) from exc
    _ip("netns", "del", name)


def _tbf(prefix: list[str], interface: str, rate_mbit: int) -> None:
    # The bucket holds at least a few ms of traffic (tbf needs burst >= rate / HZ) and the queue 100 ms.
    burst = max(64 * 1024, rate_mbit * 1_000_000 // 8 // 100)
    _run(*prefix, "tc", "qdisc", "add", "dev", interface, "root", "tbf", "rate", f"{rate_mbit}mbit",
         "burst", str(burst), "latency", "100ms")  # fmt: skip


@contextmanager
def wan_link(rate_mbit: int) -> Iterator[WanLink]:
    """A namespace behind a veth pair shaped to ``rate_mbit`` each way; removed on exit."""
    tag = uuid.uuid4().hex[:6]
    namespace, host_if, peer_if = f"so-wan-{tag}", f"sow{tag}h", f"sow{tag}p"
    subnet = f"10.{random.randint(64, 250)}.{random.randint(0, 250)}"
    link = WanLink(namespace, host_if, f"{subnet}.1", f"{subnet}.2", rate_mbit)
    inside = link.prefix()
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", namespace)
        _ip("addr", "add", f"{link.host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _run(*inside, "ip", "addr", "add", f"{link.peer_ip}/30", "dev", peer_if)
        _run(*inside, "ip", "link", "set", peer_if, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _tbf([], host_if, rate_mbit)  # this side's egress: downloads to the namespace
        _tbf(inside, peer_if, rate_mbit)  # the namespace's egress: its uploads
        yield link
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
