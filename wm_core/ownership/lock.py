"""One writer per directory: an exclusive ``flock`` on a lock file that names its holder.

``DirectoryLock(directory, role)`` locks ``<directory>/.wm-<role>.lock``
with ``fcntl.flock(LOCK_EX | LOCK_NB)`` and writes the holder into it as
JSON: ``pid``, ``host``, ``command`` (the command line), ``started`` (UTC,
ISO 8601) and ``role``.  Roles in use:

* :data:`RUN` (``"run"``) on a run directory: held by the process that
  collects into it (``train_eval_loop``, so ``wm-run``), for the whole run.
* :data:`CHECKPOINTS` (``"checkpoints"``) on a ``model_dir``: held by the one
  process that writes checkpoints there (the loop itself, or the learner
  under asynchronous training).

A second holder gets :class:`DirectoryInUseError` naming the holder.  The
kernel releases a ``flock`` when its holder dies (``SIGKILL`` included), so
there is never a stale lock, only a stale record: a lock file that still
names a holder when it is acquired was left by a process that ended without
releasing it, and is taken over with a warning in the log
(``wm_core.ownership``).  A clean release empties the file; the file itself
stays (removing it would let two processes lock two different files).

The lock belongs to the open file: children started with ``subprocess``
(which closes inherited descriptors) do not hold it, forked children that do
not exec do, until they end.  ``flock`` works across machines on NFS (Linux
emulates it with ``fcntl`` locks there), but the pid in a record from
another host is only reported, never checked.  Readers take no lock.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from typing import Any

__all__ = ["CHECKPOINTS", "RUN", "DirectoryInUseError", "DirectoryLock"]

RUN = "run"
CHECKPOINTS = "checkpoints"
_RECORD_BYTES = 65536
_logger = logging.getLogger("wm_core.ownership")


def _describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on <host> (since <time>: <command>)``, from a lock record."""
    if not holder:
        return "a process that has not recorded itself yet"
    where = f"pid {holder.get('pid')} on {holder.get('host')}"
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        where = f"this process ({where})"
    return f"{where} (since {holder.get('started')}: {holder.get('command')})"


class DirectoryInUseError(RuntimeError):
    """The directory's lock for this role is held by another process (or another
    :class:`DirectoryLock` of this one).

    ``holder``: the holder's record (``pid``, ``host``, ``command``,
    ``started``, ``role``), ``None`` when it had not written it yet.
    """

    def __init__(self, directory: str, role: str, holder: dict[str, Any] | None):
        self.directory, self.role, self.holder = directory, role, holder
        pid = holder.get("pid") if holder else None
        stop = f"; wait for it to end or stop it (kill {pid})" if pid else ""
        super().__init__(
            f"{directory} is in use: its {role!r} lock is held by {_describe_holder(holder)}"
            f"{stop}, or use another directory"
        )


def _read_record(descriptor: int) -> dict[str, Any] | None:
    text = os.pread(descriptor, _RECORD_BYTES, 0).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:  # being written, or not ours
        return {"command": repr(text[:200])}
    return record if isinstance(record, dict) else {"command": repr(text[:200])}


def _own_record(role: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "role": role,
    }


class DirectoryLock:
    """The exclusive ``role`` lock of ``directory`` (see module docs).

    Use as a context manager (``with DirectoryLock(output_dir, RUN):``, or
    ``with DirectoryLock(...).acquire(timeout_s=30):`` to wait) or with
    :meth:`acquire` and :meth:`release`.  Not reentrant: a second
    :class:`DirectoryLock` on the same directory and role in the same
    process is refused like any other holder.
    """

    def __init__(self, directory: str, role: str = RUN):
        self.directory = os.path.abspath(directory)
        self.role = role
        self.path = os.path.join(self.directory, f".wm-{role}.lock")
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def acquire(self, timeout_s: float = 0.0, poll_s: float = 0.2) -> DirectoryLock:
        """Take the lock (creating ``directory`` if needed); ``self``.

        Waits up to ``timeout_s`` seconds for a holder to end, then raises
        :class:`DirectoryInUseError`.  A record left by a dead holder is
        logged as a warning and replaced by this process's.
        """
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this DirectoryLock")
        os.makedirs(self.directory, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise DirectoryInUseError(
                            self.directory, self.role, _read_record(descriptor)
                        ) from None
                    time.sleep(poll_s)
            previous = _read_record(descriptor)
            if previous:
                _logger.warning(
                    "taking over the %r lock of %s: its holder, %s, ended without releasing it",
                    self.role, self.directory, _describe_holder(previous),
                )
            record = json.dumps(_own_record(self.role)).encode()
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, record, 0)
        except BaseException:
            os.close(descriptor)  # releases the flock, if taken
            raise
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        """Empty the record and unlock; nothing if not held."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            os.ftruncate(descriptor, 0)
        finally:
            os.close(descriptor)

    def __enter__(self) -> DirectoryLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DirectoryLock({self.directory!r}, {self.role!r}, held={self.held})"
