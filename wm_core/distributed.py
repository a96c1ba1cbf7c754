"""Training on several machines: reading ``TF_CONFIG`` and not hanging on a missing peer.

TensorFlow's ``tf.distribute.MultiWorkerMirroredStrategy`` reads the cluster
from the ``TF_CONFIG`` environment variable::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}'

Measured with TensorFlow 2.21: when a peer of that cluster is not running,
the strategy's constructor waits forever (it blocks in C++ while the
coordination service waits for every task to register; a worker left
for 12 minutes was still waiting), and it installs its own ``SIGTERM``
handler, so ``timeout`` cannot stop it either; only ``SIGKILL`` does.

:func:`wait_for_tf_config_peers` is the guard to call before creating the
strategy.  It listens on this task's own port (so that the peers' guards
see it) and connects to every peer's port until all answer or
``timeout_s`` passes, then raises :class:`PeerUnreachableError` naming
the unreachable addresses.  The listener is closed before the strategy
opens the same port, so no guard ever waits for another guard: a peer that
finished its check first is found on the port its TensorFlow server has
opened by then.  :func:`multi_worker_strategy` runs the guard and creates
the strategy (the only function here that imports TensorFlow, and only
when called); ``import wm_core.distributed`` in a gin config makes it
available as ``@wm.multi_worker_strategy()``.

A port that answers is not proof of a working TensorFlow peer (something
else may listen there), and a peer that dies after the check makes the
strategy wait as before; after start-up, TensorFlow's own health checks
turn a lost peer into an ``UnavailableError`` in the next collective.

Only the chief writes checkpoints to ``model_dir`` (:func:`is_chief`: the
``chief`` task, else ``worker`` 0; ``wm_core.tf_helpers.TrainingCheckpoints``
does it); see ``docs/multi_machine.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any, Iterable, Mapping

import gin

__all__ = [
    "PeerUnreachableError",
    "TFConfig",
    "free_local_ports",
    "is_chief",
    "multi_worker_strategy",
    "parse_address",
    "read_tf_config",
    "unreachable",
    "wait_for_tf_config_peers",
    "wait_until_reachable",
]

#: The jobs whose tasks take part in MultiWorkerMirroredStrategy's collectives.
COLLECTIVE_JOBS = ("chief", "worker")
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


class TFConfig:
    """A parsed ``TF_CONFIG``: ``cluster`` (job -> addresses), ``task_type``, ``task_index``."""

    def __init__(self, cluster: Mapping[str, list[str]], task_type: str, task_index: int):
        self.cluster = {job: list(addresses) for job, addresses in cluster.items()}
        self.task_type, self.task_index = task_type, task_index

    @property
    def address(self) -> str:
        """This task's own ``host:port``."""
        return self.cluster[self.task_type][self.task_index]

    @property
    def peers(self) -> list[str]:
        """The other collective tasks' addresses (chief and workers)."""
        return [
            address
            for job in COLLECTIVE_JOBS
            for index, address in enumerate(self.cluster.get(job, []))
            if (job, index) != (self.task_type, self.task_index)
        ]

    @property
    def is_chief(self) -> bool:
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def read_tf_config(environ: Mapping[str, str] | None = None) -> TFConfig | None:
    """The ``TF_CONFIG`` of ``environ`` (default ``os.environ``); ``None`` when unset or empty.

    Raises ``ValueError`` saying what is wrong with a malformed one.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {text!r}") from error
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not all(
        isinstance(addresses, list) and all(isinstance(a, str) for a in addresses)
        for addresses in cluster.values()
    ):
        raise ValueError(f'TF_CONFIG needs "cluster": {{job: ["host:port", ...]}}, got {text!r}')
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(f'TF_CONFIG needs "task": {{"type": ..., "index": ...}}, got {text!r}')
    task_type, task_index = task["type"], task.get("index", 0)
    if isinstance(task_index, bool) or not isinstance(task_index, int) or not (
        0 <= task_index < len(cluster.get(task_type, []))
    ):
        raise ValueError(
            f"TF_CONFIG task {task_type!r} {task_index!r} is not in its cluster {cluster}"
        )
    for addresses in cluster.values():
        for address in addresses:
            parse_address(address)
    return TFConfig(cluster, task_type, task_index)


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes checkpoints: no ``TF_CONFIG``, the ``chief``
    task, or ``worker`` 0 of a cluster without a chief."""
    config = read_tf_config(environ)
    return config is None or config.is_chief


def free_local_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on localhost right now, for a cluster
    of processes on one machine (tests, trying ``TF_CONFIG`` out)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def _listening(port: int):
    """A TCP listener on ``port`` (all interfaces) that never accepts:
    the kernel completes the peers' connects from its backlog."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("", port))
        except OSError as error:
            raise PeerUnreachableError(
                f"cannot listen on this task's TF_CONFIG port {port} ({error}): another process "
                f"holds it; TensorFlow's server needs it"
            ) from error
        listener.listen(64)
        yield
    finally:
        listener.close()


def wait_for_tf_config_peers(
    timeout_s: float = DEFAULT_PEER_TIMEOUT_S, environ: Mapping[str, str] | None = None
) -> TFConfig | None:
    """Wait until every chief/worker peer of ``TF_CONFIG`` accepts a connection
    (see module docs); the parsed config, ``None`` without one.

    Raises :class:`PeerUnreachableError` (naming the peers, this task and
    ``TF_CONFIG``) after ``timeout_s``, ``ValueError`` for a malformed
    ``TF_CONFIG``.  Call it before creating the strategy, in every task.
    """
    config = read_tf_config(environ)
    if config is None or not config.peers:
        return config
    _, port = parse_address(config.address)
    me = f"{config.task_type} {config.task_index} ({config.address})"
    with _listening(port):
        wait_until_reachable(
            config.peers, timeout_s, what="TF_CONFIG peer(s)",
            hint=(
                f"seen from {me}; start every task of the cluster (each with its own "
                f"TF_CONFIG task) and check the addresses and firewalls "
                f"(MultiWorkerMirroredStrategy would wait for them forever)"
            ),
        )
    return config


@gin.configurable(module="wm")
def multi_worker_strategy(
    peer_timeout_s: float = DEFAULT_PEER_TIMEOUT_S, communication: str = "AUTO"
) -> Any:
    """``tf.distribute.MultiWorkerMirroredStrategy`` over ``TF_CONFIG``'s cluster,
    after :func:`wait_for_tf_config_peers` (imports TensorFlow).

    :param communication: ``"AUTO"``, ``"RING"`` or ``"NCCL"`` collectives.
    Create it at the start of the program, before other TensorFlow work
    (TensorFlow configures collective ops only at start-up).
    """
    wait_for_tf_config_peers(peer_timeout_s)
    import tensorflow as tf

    implementation = getattr(tf.distribute.experimental.CommunicationImplementation, communication)
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
