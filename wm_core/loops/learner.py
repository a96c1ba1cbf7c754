"""Training beside collection: a learner process that keeps a fixed ratio of train steps to environment steps.

::

    wm-run learn --output_dir runs/x --train_steps_per_env_step 0.5
        [--gin_file runs/x/operative_config.gin] [--model_dir ...] [--episodes_dir ...]

The learner (:func:`run_learner`) rebuilds the run's ``train_fn`` from its
gin config (by default the ``operative_config.gin`` that ``wm-run`` and
``train_eval_loop`` write) and calls it on ``<episodes_dir>/train`` while

    train steps done < train_steps_per_env_step * environment steps collected

Environment steps are counted from the episode files' names (``len<T>``:
:func:`wm_core.data.npz.environment_steps`); train steps are the model's own
step counter as its ``train_fn`` reports it through the ``train_step`` hook (it
is restored with the checkpoint, so a restarted learner goes on counting).
The ratio is between counts, not wall time: a faster or slower machine
trains the same number of steps per collected step.

The learner's progress is ``<output_dir>/learner_state.json`` (written
atomically after every ``train_fn`` call): ``train_steps`` done,
``env_steps`` they were due for, ``steps_per_call`` (one call's steps, known
after the first call), ``pid``, and ``error`` when the learner failed.
Collection reads it (:func:`wait_for_learner`) and waits while the learner
is behind by more than one call, so collection stays at most one
``train_fn`` call ahead of the ratio.  Planners pick up the learner's
checkpoints themselves (PlaNet's and SV2P's ``observe_fn`` restore the
newest checkpoint in ``model_dir``).

The learner stops when ``<output_dir>/learner_stop`` exists (after finishing
the call in progress and any training the episodes on disk are due), or on
SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Sequence

import gin

from wm_core.api.hooks import Hooks, create_plugin_manager, hookimpl, use_hooks
from wm_core.data.atomic import write_text_atomically
from wm_core.data.npz import environment_steps
from wm_core.deprecation import moved_attributes
from wm_core.loops import config
from wm_core.ownership import CHECKPOINTS, DirectoryLock

__all__ = [
    "LEARNER_STATE_FILE",
    "LEARNER_STOP_FILE",
    "LearnerFailed",
    "learn",
    "prepare_learner",
    "read_learner_state",
    "run_learner",
    "wait_for_learner",
]

LEARNER_STATE_FILE = "learner_state.json"
LEARNER_STOP_FILE = "learner_stop"
__getattr__ = moved_attributes(__name__, {
    "configure_run": "wm_core.loops.config.configure_run",
    "loop_setting": "wm_core.loops.config.loop_setting",
})


class LearnerFailed(RuntimeError):
    """The learner process stopped with an error or died; collection cannot wait for it."""


# --------------------------------------------------------------------------- progress


def read_learner_state(output_dir: str) -> dict | None:
    """``<output_dir>/learner_state.json``, ``None`` before the learner wrote it."""
    try:
        with open(os.path.join(output_dir, LEARNER_STATE_FILE)) as file:
            return json.load(file)
    except FileNotFoundError:
        return None


def _write_state(output_dir: str, state: dict) -> None:
    write_text_atomically(os.path.join(output_dir, LEARNER_STATE_FILE), json.dumps(state))


def prepare_learner(output_dir: str) -> None:
    """Before starting a learner for ``output_dir``: remove the stop file and
    the error a failed learner recorded (so nobody reads it as the new one's)."""
    stop_file = os.path.join(output_dir, LEARNER_STOP_FILE)
    if os.path.exists(stop_file):
        os.remove(stop_file)
    state = read_learner_state(output_dir)
    if state and state.get("error"):
        _write_state(output_dir, {**state, "error": None, "pid": None})


def due_steps(ratio: float, env_steps: int) -> int:
    """Train steps due for ``env_steps`` collected steps (``ceil(ratio * env_steps)``, rounding-safe)."""
    return math.ceil(ratio * env_steps - 1e-9)


# --------------------------------------------------------------------------- the learner


class _StepCounter:
    """A hook plugin: the last step a ``train_fn`` reported, and how many it reported."""

    def __init__(self):
        self.step: int | None = None
        self.calls = 0

    @hookimpl
    def wm_train_step(self, step, metrics):
        self.step = int(step)
        self.calls += 1


def learn(
    train_fn: Any,
    train_dir: str,
    output_dir: str,
    train_steps_per_env_step: float,
    poll_s: float = 0.2,
    hooks: Hooks | None = None,
    stop_when_idle: bool = False,
) -> dict:
    """The learner's loop (see module docs); returns the last state written.

    ``hooks``: the run's hooks (each train step is reported there).
    ``stop_when_idle``: return as soon as no training is due.  Else it runs
    until the stop file appears (then trains what the episodes on disk are
    still due) or it is interrupted.
    """
    if not train_steps_per_env_step > 0:
        raise ValueError(f"train_steps_per_env_step must be > 0, got {train_steps_per_env_step}")
    counter = _StepCounter()
    manager = hooks.manager if hooks is not None else create_plugin_manager(load_entry_points=False)
    manager.register(counter)
    stop_file = os.path.join(output_dir, LEARNER_STOP_FILE)
    previous = read_learner_state(output_dir) or {}
    state = {
        "train_steps": int(previous.get("train_steps", 0)),
        "env_steps": int(previous.get("env_steps", 0)),
        "steps_per_call": previous.get("steps_per_call"),
        "pid": os.getpid(),
        "error": None,
    }
    _write_state(output_dir, state)
    try:
        with use_hooks(Hooks(manager)):
            while True:
                stopping = os.path.exists(stop_file)
                env_steps = environment_steps(train_dir)
                if state["train_steps"] < due_steps(train_steps_per_env_step, env_steps):
                    calls = counter.calls
                    train_fn(train_dir)
                    if counter.calls == calls:
                        raise RuntimeError(
                            "the train_fn reported no step through the train_step hook; the "
                            "learner counts train steps from it"
                        )
                    # the model's own counter: restored with its checkpoint, so a restarted
                    # learner (or one killed between a save and this line) counts on correctly
                    state["train_steps"] = counter.step
                    state["steps_per_call"] = counter.calls - calls
                    state["env_steps"] = env_steps
                    _write_state(output_dir, state)
                    continue
                if stopping or stop_when_idle:
                    return state
                time.sleep(poll_s)
    except Exception as error:  # an interruption (Ctrl-C, SIGTERM) is not a failure
        state["error"] = f"{type(error).__name__}: {error}"
        _write_state(output_dir, state)
        raise
    finally:
        manager.unregister(counter)


def wait_for_learner(
    output_dir: str,
    train_dir: str,
    train_steps_per_env_step: float,
    process: Any = None,
    poll_s: float = 0.1,
    timeout_s: float | None = None,
) -> float:
    """Block while the learner is more than one ``train_fn`` call behind the
    ratio for the episodes in ``train_dir``; the seconds waited.

    Before the learner's first call, one call's size is unknown, so any
    training due means waiting.  Raises :class:`LearnerFailed` when the
    learner recorded an error or ``process`` (a ``subprocess.Popen``) exited,
    ``TimeoutError`` after ``timeout_s``.
    """
    start = time.monotonic()
    while True:
        state = read_learner_state(output_dir) or {}
        if state.get("error"):
            raise LearnerFailed(f"the learner failed: {state['error']}")
        due = due_steps(train_steps_per_env_step, environment_steps(train_dir))
        slack = state.get("steps_per_call") or 0
        if state.get("train_steps", 0) + slack >= due:
            return time.monotonic() - start
        if process is not None and process.poll() is not None:
            raise LearnerFailed(
                f"the learner process exited with status {process.returncode} while "
                f"{due - state.get('train_steps', 0)} train steps were due"
            )
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"the learner did not catch up within {timeout_s:g} s")
        time.sleep(poll_s)


def run_learner(
    output_dir: str,
    train_steps_per_env_step: float,
    gin_file: str | None = None,
    gin_params: Sequence[str] = (),
    model_dir: str | None = None,
    episodes_dir: str | None = None,
    poll_s: float = 0.2,
    stop_when_idle: bool = False,
    lock_timeout_s: float = 60.0,
) -> dict:
    """``wm-run learn``: rebuild the run's ``train_fn`` from ``gin_file``
    (default ``<output_dir>/operative_config.gin``) and :func:`learn` with the
    installed hook plugins; the last state written.

    ``model_dir`` and ``episodes_dir`` override those run macros.  Raises
    :class:`~wm_core.loops.config.ConfigError` (also when the config sets no
    ``train_fn``), :class:`~wm_core.loops.config.PluginMissing` or
    ``FileNotFoundError`` for a run it cannot rebuild.  The learner holds
    the ``checkpoints`` lock of ``model_dir`` (the one checkpoint writer),
    waiting up to ``lock_timeout_s`` for a previous learner to end, else
    :class:`wm_core.ownership.DirectoryInUseError`.
    """
    gin_file = gin_file or os.path.join(output_dir, "operative_config.gin")
    macros = {name: os.path.abspath(value) for name, value in
              (("model_dir", model_dir), ("episodes_dir", episodes_dir)) if value}
    output_dir = config.configure_run(gin_file, output_dir, gin_params, macros)
    checkpoints = DirectoryLock(config.loop_setting("model_dir"), CHECKPOINTS)
    with checkpoints.acquire(timeout_s=lock_timeout_s):
        train_fn = config.loop_setting("train_fn", None)
        if train_fn is None:
            raise config.ConfigError(f"{gin_file} sets no wm.train_eval_loop.train_fn: nothing to learn")
        train_dir = os.path.join(config.loop_setting("episodes_dir"), "train")
        hooks = Hooks(create_plugin_manager())
        hooks.run_configured(output_dir=output_dir, operative_config=gin.operative_config_str())
        try:
            return learn(train_fn, train_dir, output_dir, train_steps_per_env_step, poll_s, hooks,
                         stop_when_idle=stop_when_idle)
        finally:
            hooks.run_end(output_dir=output_dir)
