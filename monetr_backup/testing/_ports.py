"""Free TCP ports on 127.0.0.1 for the servers to listen on."""

from __future__ import annotations

import random
import socket

# Below Linux's default ephemeral range (32768-60999) even after adding SeaweedFS's
# gRPC offset, so outgoing connections cannot grab a port between check and bind.
PORT_RANGE = (15000, 22700)


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, *, gap: int | None = None) -> list[int]:
    """Pick ``count`` distinct free ports; with ``gap``, ``port + gap`` must be free too."""
    rng = random.SystemRandom()
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(2000):
        port = rng.randint(*PORT_RANGE)
        wanted = [port] if gap is None else [port, port + gap]
        if any(p in taken for p in wanted) or not all(port_is_free(p) for p in wanted):
            continue
        chosen.append(port)
        taken.update(wanted)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"could not find {count} free TCP ports on 127.0.0.1")
