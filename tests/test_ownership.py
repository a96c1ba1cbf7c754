"""A run owns its directory: children die with their parent, one holder per directory lock."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from wm_core.loops.train_eval import EVAL_SEED_OFFSET
from wm_core.ownership import (
    CHECKPOINTS,
    PARENT_PID_VARIABLE,
    RUN,
    DirectoryInUseError,
    DirectoryLock,
    child_environment,
    descendants,
    die_with_parent,
    is_running,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")

GRACE_S = 10.0


def ended_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE, text=True, **kwargs,
    )


# --------------------------------------------------------------------------- parent death

# The child: die_with_parent first, then the mechanism to {report!r}, then wait to be ended.
CHILD = """
import os, time
import wm_core.ownership.parent_death as parent_death
if {force_poll}:
    parent_death._set_parent_death_signal = lambda signum: False
mechanism = parent_death.die_with_parent(poll_s=0.1)
with open({report!r} + ".tmp", "w") as file:
    file.write(str(mechanism))
os.replace({report!r} + ".tmp", {report!r})
time.sleep(120)
"""

# A parent that starts the child as the library does (subprocess, child_environment).
SUBPROCESS_PARENT = """
import subprocess, sys
from wm_core.ownership import child_environment
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=child_environment())
print(child.pid, flush=True)
child.wait()
"""

# A parent that starts the child with multiprocessing, passing its own pid.
MULTIPROCESSING_PARENT = """
import multiprocessing, os, sys, time
import wm_core.ownership.parent_death as parent_death

def child(parent_pid, force_poll, report):
    if force_poll:
        parent_death._set_parent_death_signal = lambda signum: False
    mechanism = parent_death.die_with_parent(parent_pid, poll_s=0.1)
    with open(report + ".tmp", "w") as file:
        file.write(str(mechanism))
    os.replace(report + ".tmp", report)
    time.sleep(120)

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    process = context.Process(target=child, args=(os.getpid(), sys.argv[2] == "poll", sys.argv[3]))
    process.start()
    print(process.pid, flush=True)
    process.join()
"""


def _kill_parent_and_check_child(parent: subprocess.Popen, report, mechanism: str) -> None:
    child_pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report.read_text() == mechanism  # the child is set up
        assert child_pid in descendants(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)  # the parent alone, no cleanup
        parent.wait()
        assert ended_within(child_pid, GRACE_S), f"child {child_pid} outlived its SIGKILLed parent"
    finally:
        if is_running(child_pid):
            os.kill(child_pid, signal.SIGKILL)
        parent.stdout.close()


@pytest.mark.parametrize("mechanism", ["prctl", "poll"])
def test_subprocess_child_dies_when_its_parent_is_sigkilled(tmp_path, mechanism):
    report = tmp_path / "mechanism"
    child = CHILD.format(force_poll=mechanism == "poll", report=str(report))
    parent = _python(SUBPROCESS_PARENT, textwrap.dedent(child))
    _kill_parent_and_check_child(parent, report, mechanism)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("mechanism", ["prctl", "poll"])
def test_multiprocessing_child_dies_when_its_parent_is_sigkilled(tmp_path, start_method, mechanism):
    script = tmp_path / "parent.py"  # spawn re-imports the parent's main module from its file
    script.write_text(textwrap.dedent(MULTIPROCESSING_PARENT))
    report = tmp_path / "mechanism"
    parent = subprocess.Popen(
        [sys.executable, str(script), start_method, mechanism, str(report)],
        stdout=subprocess.PIPE, text=True,
    )
    _kill_parent_and_check_child(parent, report, mechanism)


@pytest.mark.parametrize("force_poll", [False, True])
def test_child_whose_parent_is_already_gone_ends_at_once(tmp_path, force_poll):
    # WM_PARENT_PID names a process that is not the child's parent: as if the
    # parent had died (and the child been re-parented) before die_with_parent.
    script = CHILD.format(force_poll=force_poll, report=str(tmp_path / "mechanism"))
    script = script.replace("time.sleep(120)", "time.sleep(30)\nprint('outlived its parent')")
    child = _python(script, env={**os.environ, PARENT_PID_VARIABLE: str(os.getpid() + 1)})
    output, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    assert "outlived" not in output


def test_child_environment_names_this_process_and_die_with_parent_consumes_it():
    script = """
    import os
    from wm_core.ownership import PARENT_PID_VARIABLE, die_with_parent
    print(os.environ[PARENT_PID_VARIABLE] == str(os.getppid()), flush=True)
    print(die_with_parent(), PARENT_PID_VARIABLE in os.environ, flush=True)
    """
    child = _python(script, env=child_environment({"EXTRA": "1"}))
    output, _ = child.communicate(timeout=60)
    assert output.split() == ["True", "prctl", "False"]
    assert child_environment({"EXTRA": "1"})["EXTRA"] == "1"


def test_a_zombie_is_not_running_and_descendants_are_found():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"])
    try:
        deadline = time.monotonic() + 30
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        [sleeper] = descendants(parent.pid)
        assert {parent.pid, sleeper} <= set(descendants(os.getpid()))
        assert is_running(os.getpid()) and is_running(sleeper)
    finally:
        parent.kill()
    os.waitid(os.P_PID, parent.pid, os.WEXITED | os.WNOWAIT)  # ended, left unreaped
    assert os.path.exists(f"/proc/{parent.pid}") and not is_running(parent.pid)
    parent.wait()
    os.kill(sleeper, signal.SIGKILL)


def test_die_with_parent_without_a_parent_pid_does_nothing(monkeypatch):
    monkeypatch.delenv(PARENT_PID_VARIABLE, raising=False)
    assert die_with_parent() is None


# --------------------------------------------------------------------------- directory lock

# Holds the lock of argv[1] (role argv[2]) until its stdin closes.
HOLDER = """
import sys
from wm_core.ownership import DirectoryLock
lock = DirectoryLock(sys.argv[1], sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


@pytest.fixture
def holder(tmp_path):
    process = _python(HOLDER, str(tmp_path), RUN, stdin=subprocess.PIPE)
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()


def test_second_holder_is_refused_with_the_holders_pid(tmp_path, holder):
    with pytest.raises(DirectoryInUseError) as refused:
        DirectoryLock(str(tmp_path), RUN).acquire()
    assert refused.value.holder["pid"] == holder.pid
    assert refused.value.holder["command"].startswith(sys.executable)
    message = str(refused.value)
    assert f"pid {holder.pid} on " in message and f"kill {holder.pid}" in message
    assert str(tmp_path) in message
    with DirectoryLock(str(tmp_path), CHECKPOINTS):  # another role is another lock
        pass


def test_lock_of_a_sigkilled_holder_is_taken_over_with_a_warning(tmp_path, holder, caplog):
    holder.kill()
    holder.wait()
    with caplog.at_level(logging.WARNING, logger="wm_core.ownership"):
        lock = DirectoryLock(str(tmp_path), RUN).acquire()
    try:
        assert [record.levelname for record in caplog.records] == ["WARNING"]
        assert "taking over" in caplog.text and f"pid {holder.pid} on " in caplog.text
        with open(lock.path) as file:
            assert json.load(file)["pid"] == os.getpid()
    finally:
        lock.release()
    assert os.path.getsize(lock.path) == 0  # released: no record left


def test_released_lock_is_taken_without_a_warning_after_waiting(tmp_path, holder, caplog):
    with pytest.raises(DirectoryInUseError):
        DirectoryLock(str(tmp_path), RUN).acquire(timeout_s=0.3)
    holder.stdin.close()  # the holder releases and ends while we wait
    with caplog.at_level(logging.WARNING, logger="wm_core.ownership"):
        with DirectoryLock(str(tmp_path), RUN).acquire(timeout_s=60, poll_s=0.05):
            pass
    assert holder.wait(timeout=60) == 0
    assert caplog.records == []


def test_second_lock_in_the_same_process_is_refused(tmp_path):
    with DirectoryLock(str(tmp_path / "run"), RUN) as first:
        assert first.held and os.path.isdir(tmp_path / "run")
        with pytest.raises(DirectoryInUseError, match="this process"):
            DirectoryLock(str(tmp_path / "run"), RUN).acquire()
    assert not first.held
    with DirectoryLock(str(tmp_path / "run"), RUN):  # free again
        pass


# --------------------------------------------------------------------------- where runs take the locks


def test_wm_run_refuses_a_run_directory_in_use_before_loading_anything(tmp_path, capsys):
    from wm_core import cli

    with DirectoryLock(str(tmp_path), RUN):  # the config is never read: the lock comes first
        assert cli.main(["--gin_file", str(tmp_path / "unread.gin"), "--output_dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "is in use" in error and f"pid {os.getpid()} on " in error


def test_the_learner_refuses_a_model_dir_with_another_checkpoint_writer(tmp_path):
    from wm_core.loops.config import ConfigError
    from wm_core.loops.learner import run_learner

    config = tmp_path / "run.gin"  # no train_fn: the learner finds out only after the lock
    config.write_text("wm.train_eval_loop.model_dir = %model_dir\n"
                      "wm.train_eval_loop.episodes_dir = %episodes_dir\n")
    with DirectoryLock(str(tmp_path / "model"), CHECKPOINTS):
        with pytest.raises(DirectoryInUseError, match="'checkpoints' lock"):
            run_learner(str(tmp_path), 0.5, gin_file=str(config), lock_timeout_s=0)
    with pytest.raises(ConfigError, match="nothing to learn"):
        run_learner(str(tmp_path), 0.5, gin_file=str(config), lock_timeout_s=0)


def test_ray_collection_refuses_a_run_or_episode_directory_in_use(tmp_path):
    from wm_core import ray_collect
    from wm_core.planning.planners import Random
    from wm_core.tasks.toy import PointTask

    config = tmp_path / "run" / "operative_config.gin"
    config.parent.mkdir()
    config.write_text("")
    episodes = tmp_path / "run" / "episodes" / "train"
    task = PointTask(length=3)
    for factory, owned in ((ray_collect.Components(task, Random(task)), episodes),
                           (ray_collect.RunComponents(str(config), str(tmp_path / "run")), config.parent)):
        with DirectoryLock(str(owned), RUN):  # Ray is never reached
            with pytest.raises(DirectoryInUseError, match=f"pid {os.getpid()} on "):
                ray_collect.collect(factory, str(episodes), num_episodes=1)


# --------------------------------------------------------------------------- a whole run

PLANET_TINY = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "tests", "planet_tiny.gin")
ASYNC_TWO_ENVIRONMENTS = (
    "wm.train_eval_loop.num_envs = 2",
    "wm.train_eval_loop.async_training = True",
    "wm.train_eval_loop.train_steps_per_env_step = 0.2",
)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _episode_seeds(directory) -> list[int]:
    seeds = []
    for path in sorted(directory.glob("*.npz")):
        with np.load(path) as archive:
            seeds.append(int(archive["seed"][0]))
    return seeds


@pytest.mark.slow
def test_run_killed_alone_leaves_no_process_and_resumes_to_the_episodes_asked_for(tmp_path):
    pytest.importorskip("wm_planet")
    pytest.importorskip("wm_cem")
    output = tmp_path / "run"
    command = [sys.executable, "-m", "wm_core.cli", "--gin_file", PLANET_TINY, "--output_dir", str(output)]
    for binding in ASYNC_TWO_ENVIRONMENTS:
        command += ["--gin_param", binding]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while True:  # until both environment workers and the learner run
            children = descendants(run.pid)
            lines = [_command_line(pid) for pid in children]
            if (sum("wm_core.tasks.worker" in line for line in lines) == 2
                    and any("wm_core.cli learn" in line for line in lines)):
                break
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)  # the main process alone: no cleanup code runs
        run.wait()
        survivors = [pid for pid in children if not ended_within(pid, GRACE_S)]
        assert survivors == [], [_command_line(pid) for pid in survivors]
    finally:
        for pid in [run.pid, *children]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
    subprocess.run(command, check=True, timeout=300, stdout=subprocess.DEVNULL)
    # planet_tiny: 2 iterations of 1 train episode, an evaluation of 1 episode every 2
    assert _episode_seeds(output / "episodes" / "train") == [0, 1]
    assert _episode_seeds(output / "episodes" / "eval") == [EVAL_SEED_OFFSET]


RUN_UNDER_A_PARENT = """
import subprocess, sys
from wm_core.ownership import child_environment
run = subprocess.Popen(
    [sys.executable, "-m", "wm_core.cli", "--gin_file", {config!r}, "--output_dir", {output!r},
     "--gin_param", "wm.train_eval_loop.num_iterations = 100000"],
    env=child_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
print(run.pid, flush=True)
run.wait()
"""


def test_a_run_started_with_child_environment_ends_when_its_starter_is_sigkilled(tmp_path):
    # How benchmarks/learning_curves.py starts its runs: a killed benchmark leaves no run behind.
    config = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "tests", "random_toy.gin")
    script = RUN_UNDER_A_PARENT.format(config=config, output=str(tmp_path / "run"))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_pid = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "operative_config.gin").exists():  # the loop has started
            assert is_running(run_pid) and time.monotonic() < deadline, "the run ended before the kill"
            time.sleep(0.05)
        os.kill(parent.pid, signal.SIGKILL)  # the starter alone, no cleanup
        parent.wait()
        assert ended_within(run_pid, GRACE_S), "the run outlived its SIGKILLed starter"
    finally:
        if is_running(run_pid):
            os.kill(run_pid, signal.SIGKILL)
        parent.stdout.close()
