"""Children that end when the process that started them dies.

The parent starts a child with :func:`child_environment` (``subprocess``)
or passes ``os.getpid()`` to it (``multiprocessing``); the child calls
:func:`die_with_parent` before anything slow::

    # parent
    subprocess.Popen([sys.executable, "-m", "some.child"], env=child_environment())
    # child, first thing
    die_with_parent()

From then on the child is sent ``signum`` (default ``SIGTERM``) when its
parent dies — a crash, an out-of-memory kill and ``SIGKILL`` included, where
no cleanup code of the parent runs.  Two mechanisms:

* Linux: ``prctl(PR_SET_PDEATHSIG, signum)``; the kernel sends the signal
  the moment the parent exits.  The kernel's "parent" is the *thread* that
  started the child, so start children from a thread that lives as long as
  they should (the main thread does).
* elsewhere (or where ``prctl`` fails): a daemon thread that checks every
  ``poll_s`` seconds whether the child was re-parented (``os.getppid()``
  changed) and then sends ``signum`` to its own process.

The race where the parent dies before the child calls :func:`die_with_parent`
is closed by comparing ``os.getppid()`` with the parent's pid after the
mechanism is set up: a child whose parent is already gone signals itself at
once.  So the child must be a direct child of that pid (no forking wrapper
in between).

``SIGTERM`` ends a process that has no handler for it at once; one that has
one (the learner's raises ``KeyboardInterrupt``) cleans up first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Mapping

__all__ = ["PARENT_PID_VARIABLE", "child_environment", "descendants", "die_with_parent", "is_running"]

PARENT_PID_VARIABLE = "WM_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def child_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``subprocess`` child that should die with this
    process: ``os.environ``, then ``environment``, then
    ``WM_PARENT_PID=<this process's pid>`` (read by :func:`die_with_parent`)."""
    return {**os.environ, **(environment or {}), PARENT_PID_VARIABLE: str(os.getpid())}


def _set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)``; ``False`` where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.prctl(
            ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signum),
            ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
        )
    except (OSError, AttributeError):
        return False
    return result == 0


def _watch_parent(parent_pid: int, signum: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os.kill(os.getpid(), signum)


def die_with_parent(
    parent_pid: int | None = None, signum: int = signal.SIGTERM, poll_s: float = 0.5
) -> str | None:
    """Have this process sent ``signum`` when ``parent_pid`` (its parent) dies.

    :param parent_pid: the parent's pid; ``None``: read it from the
        ``WM_PARENT_PID`` environment variable (set by
        :func:`child_environment`), which is then removed from this
        process's environment so that its own children do not inherit a pid
        that is not their parent's.  Without the variable nothing is done
        (a process started by hand outlives its shell as usual).
    :param poll_s: the fallback thread's check interval in seconds.
    :returns: the mechanism, ``"prctl"`` or ``"poll"``; ``None`` when there
        was no parent pid.  If the parent is already gone, ``signum`` is
        sent to this process at once (a handler for it runs in the main
        thread, as for any signal).
    """
    if parent_pid is None:
        value = os.environ.pop(PARENT_PID_VARIABLE, None)
        if value is None:
            return None
        try:
            parent_pid = int(value)
        except ValueError:
            raise ValueError(f"{PARENT_PID_VARIABLE} must be a process id, got {value!r}") from None
    if _set_parent_death_signal(signum):
        if os.getppid() != parent_pid:  # the parent died before prctl
            os.kill(os.getpid(), signum)
        return "prctl"
    # the thread's first check finds a parent that is already gone
    threading.Thread(
        target=_watch_parent, args=(parent_pid, signum, poll_s),
        name="wm-die-with-parent", daemon=True,
    ).start()
    return "poll"


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process (psutil where installed, else ``/proc``)."""
    try:
        import psutil
    except ImportError:
        parents = {}
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/stat") as file:
                    parents[int(name)] = int(file.read().rsplit(")", 1)[1].split()[1])
            except (ValueError, OSError, IndexError):  # not a process, or it just ended
                continue
        return parents
    return {process.pid: process.ppid() for process in psutil.process_iter()}


def descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children, their children, and so on (a snapshot;
    ascending).  Once ``pid`` is dead its children are re-parented, so take
    the snapshot while it lives."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, [])]
        found += frontier
    return sorted(found)


def is_running(pid: int) -> bool:
    """Whether process ``pid`` runs.  A zombie (ended, not yet reaped by its
    parent) has ended; without ``/proc`` a zombie counts as running."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True
