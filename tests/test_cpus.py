"""wm_core.loops.cpus: choosing and pinning CPUs for training beside collection."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from wm_core.loops.cpus import pin_threads, split_cpus


def test_the_learner_takes_the_highest_cpus_and_collection_the_rest():
    assert split_cpus(1, {0, 1}) == ({0}, {1})
    assert split_cpus(2, {4, 1, 7, 3}) == ({1, 3}, {4, 7})


@pytest.mark.parametrize("learner_cpus", [0, 2, 3])
def test_a_split_leaves_each_side_at_least_one_cpu(learner_cpus):
    with pytest.raises(ValueError, match=f"learner_cpus={learner_cpus} must leave collection"):
        split_cpus(learner_cpus, {0, 1})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_pin_threads_moves_every_thread_of_a_process():
    cpus = os.sched_getaffinity(0)
    one = {min(cpus)}
    child = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                              "threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while len(os.listdir(f"/proc/{child.pid}/task")) < 2:  # both threads started
            assert child.poll() is None and time.monotonic() < deadline, "the child never started its thread"
            time.sleep(0.01)
        pin_threads(one, child.pid)
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert len(threads) == 2 and all(os.sched_getaffinity(int(t)) == one for t in threads)
    finally:
        child.kill()
        child.wait()
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        pin_threads(one)
        assert all(os.sched_getaffinity(int(t)) == one for t in os.listdir("/proc/self/task"))
    finally:
        pin_threads(cpus)
        stop.set()
        helper.join()
    assert os.sched_getaffinity(0) == cpus
