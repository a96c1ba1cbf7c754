"""Giving training and collection their own CPUs (Linux).

With training beside collection (``train_eval_loop(async_training=True)``),
the learner process and the collecting process both run TensorFlow, whose
thread pools are sized to the CPUs a process may run on.  Left to share
every CPU, their threads contend for all of them; given disjoint sets, each
runs undisturbed on its own.  :func:`split_cpus` chooses the sets (the
learner takes the highest-numbered CPUs this process may use, collection
keeps the rest) and :func:`pin_threads` moves every thread of a process
onto a set (``sched_setaffinity`` applies to one thread at a time; threads
started later inherit their starter's set).

A child pinned right after it starts (before it imports TensorFlow, which
takes seconds) sizes its pools to its own CPUs.  This process's pools were
sized before the split and keep their threads, now sharing the collection
CPUs.
"""

from __future__ import annotations

import os

__all__ = ["split_cpus", "pin_threads", "usable_cpus"]


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (``os.sched_getaffinity``); raises
    ``NotImplementedError`` where the platform cannot pin (not Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        raise NotImplementedError("pinning processes to CPUs needs Linux (os.sched_setaffinity)")
    return set(os.sched_getaffinity(0))


def split_cpus(learner_cpus: int, cpus: set[int] | None = None) -> tuple[set[int], set[int]]:
    """``(collection, learner)``: the highest ``learner_cpus`` of ``cpus``
    (default :func:`usable_cpus`) for the learner, the rest for collection.
    Raises ``ValueError`` unless ``0 < learner_cpus < len(cpus)``."""
    ordered = sorted(usable_cpus() if cpus is None else cpus)
    if not 0 < learner_cpus < len(ordered):
        raise ValueError(
            f"learner_cpus={learner_cpus} must leave collection at least one of the "
            f"{len(ordered)} CPUs this process may use ({ordered})"
        )
    return set(ordered[:-learner_cpus]), set(ordered[-learner_cpus:])


def pin_threads(cpus: set[int], pid: int | None = None) -> None:
    """Move every thread of process ``pid`` (default: this one) onto ``cpus``."""
    tasks = f"/proc/{'self' if pid is None else pid}/task"
    for thread in os.listdir(tasks):
        try:
            os.sched_setaffinity(int(thread), cpus)
        except ProcessLookupError:  # ended since the listing
            pass
