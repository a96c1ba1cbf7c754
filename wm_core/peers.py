"""Waiting for network peers without hanging: TCP reachability checks (no TensorFlow, no Ray).

Used before connecting to something that would otherwise wait forever for
a missing peer: a Ray head (:mod:`wm_core.ray_collect`), the workers of a
TensorFlow cluster (``wm_tf.distributed``).  A port that answers proves only
that something listens there.
"""

from __future__ import annotations

import socket
import time
from typing import Iterable

__all__ = [
    "DEFAULT_PEER_TIMEOUT_S",
    "PeerUnreachableError",
    "free_local_ports",
    "parse_address",
    "unreachable",
    "wait_until_reachable",
]

DEFAULT_PEER_TIMEOUT_S = 120.0


class PeerUnreachableError(ConnectionError):
    """A cluster peer (or a Ray head) did not accept a TCP connection in time."""


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (``"[v6]:port"`` too) as ``(host, port)``; ``ValueError`` otherwise."""
    text = str(address).strip()
    host, separator, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not host:port")
    return host, int(port)


def unreachable(addresses: Iterable[str], connect_timeout_s: float = 2.0) -> list[str]:
    """The addresses among ``addresses`` that refuse or time out a TCP connection now."""
    missing = []
    for address in addresses:
        host, port = parse_address(address)
        try:
            with socket.create_connection((host, port), timeout=connect_timeout_s):
                pass
        except OSError:
            missing.append(address)
    return missing


def wait_until_reachable(
    addresses: Iterable[str],
    timeout_s: float = DEFAULT_PEER_TIMEOUT_S,
    what: str = "peer",
    hint: str = "",
    poll_s: float = 0.25,
) -> None:
    """Return once every address accepts a TCP connection; raise
    :class:`PeerUnreachableError` naming the others after ``timeout_s``."""
    pending = list(addresses)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = unreachable(pending, connect_timeout_s=max(0.1, min(2.0, timeout_s)))
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise PeerUnreachableError(
                f"{what} {', '.join(pending)} did not accept a connection within "
                f"{timeout_s:g} s{': ' + hint if hint else ''}"
            )
        time.sleep(poll_s)


def free_local_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on localhost right now, for a cluster
    of processes on one machine (tests, a cluster tried out locally)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
