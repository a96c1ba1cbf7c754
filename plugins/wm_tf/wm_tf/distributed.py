"""Training on several machines: reading ``TF_CONFIG`` and not hanging on a missing peer.

TensorFlow's ``tf.distribute.MultiWorkerMirroredStrategy`` reads the cluster
from the ``TF_CONFIG`` environment variable::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}'

and its constructor waits for every peer without a timeout, deaf to
``SIGTERM`` (``docs/multi_machine.md``).  :func:`wait_for_tf_config_peers`
is the guard to call before creating the strategy, in every task: it
listens on this task's own port (so that the peers' guards see it) and
connects to every peer's port until all answer or ``timeout_s`` passes, then
raises :class:`~wm_core.peers.PeerUnreachableError` naming the unreachable
addresses.  The listener is closed before the strategy opens the same port,
so no guard waits for another guard.  :func:`multi_worker_strategy` runs the
guard and creates the strategy (the only function here that imports
TensorFlow, and only when called); ``import wm_tf.distributed`` in a gin
config makes it available as ``@wm.multi_worker_strategy()``.

A port that answers is not proof of a working TensorFlow peer, and a peer
that dies after the check is TensorFlow's to detect.  Only the chief writes
checkpoints (:func:`is_chief`: the ``chief`` task, else ``worker`` 0;
:class:`wm_tf.checkpoints.TrainingCheckpoints` does it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any, Mapping

import gin

from wm_core.peers import (  # the TensorFlow-free half, re-exported for wm_core.distributed's users
    DEFAULT_PEER_TIMEOUT_S,
    PeerUnreachableError,
    free_local_ports,
    parse_address,
    unreachable,
    wait_until_reachable,
)

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
