"""wm_tf.distributed: TF_CONFIG parsing and the guard against waiting forever for a peer (no TensorFlow)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import pytest

from wm_core.peers import PeerUnreachableError, free_local_ports
from wm_tf import distributed


def environ(ports: list[int], index: int, job: str = "worker", chief: int | None = None) -> dict:
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    if chief is not None:
        cluster["chief"] = [f"localhost:{chief}"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})}


def test_tf_config_is_read_and_its_mistakes_named():
    assert distributed.read_tf_config({}) is None
    assert distributed.read_tf_config({"TF_CONFIG": " "}) is None
    config = distributed.read_tf_config(environ([1001, 1002, 1003], 1))
    assert config.address == "localhost:1002"
    assert config.peers == ["localhost:1001", "localhost:1003"]
    assert not config.is_chief
    for text, message in (
        ("{not json", "not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster"'),
        ('{"cluster": {"worker": ["a:1"]}}', '"task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "not in its cluster"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "not host:port"),
    ):
        with pytest.raises(ValueError, match=message):
            distributed.read_tf_config({"TF_CONFIG": text})


def test_the_chief_is_the_chief_task_else_worker_zero():
    assert distributed.is_chief({})
    assert distributed.is_chief(environ([1001, 1002], 0))
    assert not distributed.is_chief(environ([1001, 1002], 1))
    assert distributed.is_chief(environ([1001, 1002], 0, job="chief", chief=1000))
    assert not distributed.is_chief(environ([1001, 1002], 0, chief=1000))
    config = distributed.read_tf_config(environ([1001, 1002], 0, job="chief", chief=1000))
    assert config.address == "localhost:1000"
    assert sorted(config.peers) == ["localhost:1001", "localhost:1002"]


def test_without_tf_config_or_peers_there_is_nothing_to_wait_for():
    assert distributed.wait_for_tf_config_peers(timeout_s=0.1, environ={}) is None
    (port,) = free_local_ports(1)
    assert distributed.wait_for_tf_config_peers(timeout_s=0.1, environ=environ([port], 0)).peers == []


def test_an_unreachable_peer_is_a_clear_error_after_the_timeout():
    ports = free_local_ports(2)
    start = time.monotonic()
    with pytest.raises(PeerUnreachableError) as error:
        distributed.wait_for_tf_config_peers(timeout_s=1.0, environ=environ(ports, 0))
    assert 1.0 <= time.monotonic() - start < 10
    message = str(error.value)
    assert f"localhost:{ports[1]}" in message and "within 1 s" in message
    assert f"worker 0 (localhost:{ports[0]})" in message and "wait for them forever" in message
    # the guard's listener is gone: TensorFlow's server can take the port
    with socket.socket() as sock:
        sock.bind(("", ports[0]))


def test_two_guards_started_apart_both_pass_and_free_their_ports():
    """Each listens on its own port while it waits, so neither waits for the
    other's strategy; one that starts 1 s later is still found.  A task whose
    guard passed opens its TensorFlow server on the port (here: a plain
    listener), where a peer still checking finds it."""
    ports = free_local_ports(2)
    results: dict[int, object] = {}
    servers = []

    def task(index: int) -> None:
        try:
            results[index] = distributed.wait_for_tf_config_peers(10, environ(ports, index)).task_index
        except Exception as error:  # reported below
            results[index] = error
            return
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("", ports[index]))  # the guard's listener is gone
        server.listen()
        servers.append(server)

    first = threading.Thread(target=task, args=(0,))
    first.start()
    time.sleep(1.0)
    task(1)
    first.join(timeout=20)
    for server in servers:
        server.close()
    assert results == {0: 0, 1: 1}


def test_a_port_held_by_another_process_is_named():
    ports = free_local_ports(2)
    with socket.socket() as holder:
        holder.bind(("", ports[0]))
        holder.listen()
        with pytest.raises(PeerUnreachableError, match=f"port {ports[0]}"):
            distributed.wait_for_tf_config_peers(timeout_s=0.5, environ=environ(ports, 0))


def test_the_module_does_not_import_tensorflow():
    import subprocess

    code = "import sys, wm_tf.distributed; print('tensorflow' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False", completed.stderr
