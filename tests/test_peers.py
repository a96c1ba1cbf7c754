"""wm_core.peers: addresses and waiting for a TCP peer with a timeout (no TensorFlow, no Ray)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from wm_core import peers
from wm_core.peers import PeerUnreachableError, free_local_ports


def test_addresses_are_host_and_port():
    assert peers.parse_address("localhost:2222") == ("localhost", 2222)
    assert peers.parse_address("[::1]:2222") == ("::1", 2222)
    for bad in ("localhost", ":2222", "host:port", "host:70000"):
        with pytest.raises(ValueError, match="not host:port"):
            peers.parse_address(bad)


def test_wait_until_reachable_returns_once_a_server_answers():
    (port,) = free_local_ports(1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def start_later():
        time.sleep(0.5)
        server.bind(("localhost", port))
        server.listen()

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        peers.wait_until_reachable([f"localhost:{port}"], timeout_s=10, what="server")
    finally:
        thread.join()
        server.close()


def test_a_silent_address_is_named_after_the_timeout():
    (port,) = free_local_ports(1)
    with pytest.raises(PeerUnreachableError, match=f"server localhost:{port} did not accept a "
                       "connection within 0.5 s: start it"):
        peers.wait_until_reachable([f"localhost:{port}"], timeout_s=0.5, what="server",
                                   hint="start it")


def test_free_local_ports_are_distinct_and_bindable():
    ports = free_local_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("localhost", port))
