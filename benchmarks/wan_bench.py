"""Model transfers over a shaped WAN link: a 100 MB round at 50 ms RTT (ARCHITECTURE §5: one transfer
reaches >= 80 % of the link).

Needs root (network namespaces). `scaleout api` and one `scaleout combiner` run here; a swarm client
(benchmarks/swarm.py) runs in a network namespace behind a veth pair capped by `tc tbf` at --rate-mbit
each way (tests/wan/netns.py), and reaches the API and the combiner through delaying TCP relays that add
--rtt-ms (tests/wan/relay.py; this kernel has no netem). Prints:

- link: raw TCP through the same relay and link, 100 MiB one way (what one transfer could reach);
- upload: one 100 MB Upload with the client's own transfer code (client/model_transfer.py), from the
  namespace to the combiner;
- round: a 1-round session with that client on a 100 MB model (download + in-process train + upload),
  and its transfer rate: 2 x model bytes over the client's train_seconds as the round record has it.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.swarm import check_model, start_swarm, write_package
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import Federation, federation, free_port, wait_until
from tests.wan.netns import WanLink, wan_link

MIB = 1024 * 1024
RELAY = str(Path(__file__).resolve().parents[1] / "tests" / "wan" / "relay.py")
TPUT = str(Path(__file__).resolve().parents[1] / "tests" / "wan" / "throughput.py")


def relay(fed: Federation, name: str, link: WanLink, port: int, delay: float) -> None:
    """Relay link.host_ip:port to 127.0.0.1:port, adding ``delay`` each way; wait until it listens."""
    fed.spawn_python(name, [RELAY, f"{link.host_ip}:{port}", f"127.0.0.1:{port}", str(delay)])
    wait_until(lambda: socket.create_connection((link.host_ip, port), timeout=1).close() or True, 30, name)


def sink_server() -> int:
    """A TCP server on loopback that reads and drops everything, answering one byte at the end."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            while conn.recv(MIB):
                pass
            conn.sendall(b".")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def inside(fed: Federation, link: WanLink, name: str, args: list[str]) -> str:
    """Run a python script in the namespace to its end; return its last output line."""
    process = fed.spawn_python(name, args, link.prefix())
    process.popen.wait(600)
    del fed.processes[name]  # done: not a process of the federation that must stay alive
    if process.popen.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{process.log()[-2000:]}")
    return process.log().strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mbit", type=int, default=400)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--upload-window", help="the combiner's --upload-window (default: its default)")
    args = parser.parse_args()
    delay = args.rtt_ms / 2000
    size = args.size_mb * 1_000_000
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-wan-")))
        link = stack.enter_context(wan_link(args.rate_mbit))
        fed = stack.enter_context(
            federation(root, f"sqlite:///{root}/statestore.db", f"file://{root}/models")
        )
        relay(fed, "relay-api", link, fed.api_port, delay)
        port = free_port()
        relay(fed, "relay-combiner", link, port, delay)
        env = {"SCALEOUT_COMBINER_ADVERTISE_HOST": link.host_ip}
        if args.upload_window is not None:
            env["SCALEOUT_COMBINER_UPLOAD_WINDOW"] = args.upload_window
        fed.start_combiner("combiner", port, env)
        sink = sink_server()
        relay(fed, "relay-sink", link, sink, delay)

        raw = inside(fed, link, "tcp", [TPUT, "tcp", f"{link.host_ip}:{sink}", str(size)])
        upload = inside(fed, link, "upload", [TPUT, "upload", f"{link.host_ip}:{port}", str(size)])

        seed = [np.zeros(size // 4, dtype=np.float32)]
        fed.api.set_active_model(get_helper("numpyhelper").save(seed, str(root / "seed.npz")))
        api_url = f"http://{link.host_ip}:{fed.api_port}"
        start_swarm(
            fed, 1, 1, package=write_package(root / "swarm-package"), api_url=api_url, prefix=link.prefix()
        )
        fed.wait_for_clients(1, timeout=120)
        started = time.monotonic()
        session_id = fed.api.start_session(rounds=1, min_clients=1, round_timeout=600, validate=False)
        session = fed.api.wait_for_session(session_id, timeout=900)
        wall = time.monotonic() - started
        if session["status"] != "Finished":
            raise RuntimeError(f"session ended {session['status']}: {session.get('error')}")
        (record,) = fed.api.get_rounds(session_id=session_id)["result"]
        check_model(fed, record["model_id"], seed, 1)
        round_s = (
            datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
        ).total_seconds()
        train_s = record["clients"][0]["train_seconds"]
        link_mb = args.rate_mbit / 8
        window = args.upload_window or "default"
        print(f"combiner --upload-window {window}")
        print(f"link: {args.rate_mbit} Mbit/s = {link_mb:.0f} MB/s each way, RTT +{args.rtt_ms:g} ms (relay)")
        print(f"raw TCP, one way:     {raw}")
        print(f"gRPC Upload:          {upload}")
        rate = 2 * size / train_s / 1e6
        print(
            f"round ({args.size_mb} MB): {round_s:.2f} s (session {wall:.1f} s); client download+train+upload"
            f" {train_s:.2f} s = {rate:.1f} MB/s ({rate / link_mb:.0%} of the link)"
        )


if __name__ == "__main__":
    main()
