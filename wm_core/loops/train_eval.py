"""The off-the-shelf train-eval loop (``train_eval_loop`` of the original World Models Library).

First, ``seed_episodes`` episodes of uniformly random actions are collected
into ``<episodes_dir>/train`` (PlaNet's seed episodes: the model's first
training data, gathered before it is trained at all).  Then each iteration:
collect ``num_train_episodes_per_iteration`` episodes with
the training planner (each saved to ``<episodes_dir>/train`` as soon as it
ends), call ``train_fn(<episodes_dir>/train)``, and every
``eval_every_n_iterations`` iterations collect ``num_eval_episodes`` with the
evaluation planner into ``<episodes_dir>/eval``.  Summaries go out through
the run's hooks (the TensorBoard writer is one).

Resuming: the episode files on disk are the record of what was collected,
and ``<output_dir>/loop_state.json`` (written atomically) the record of which
iterations finished: ``{"completed_iterations": k}`` — nothing else, since
everything else a restart needs is in the episode files (which episodes
exist) and the models' checkpoints.  A run stopped at any moment — Ctrl-C or ``kill -9`` —
and started again with the same directories collects exactly the episodes
that are missing, so none is lost and none duplicated; only the interrupted
``train_fn`` call is repeated (models restore their own checkpoints).
Episode ``i`` of a phase is always reset with the same seed, so a resumed
run replays the environment seeds an uninterrupted one would have used.

Several environments (``num_envs > 1``): the run keeps ``num_envs``
environment workers (:class:`wm_core.tasks.vector.VectorEnv`) for all its
phases and steps them together.  Episodes are still saved in episode order —
one that ends before an earlier one waits in memory until that one is saved
— so the files on disk are always episodes ``0 .. k-1`` of the phase and a
killed run tops up exactly the missing ones (the waiting ones are collected
again, from the same seeds, to the same arrays).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import Any, Callable, Sequence

import gin
import numpy as np

from wm_core.api.checks import check_int_at_least, check_num_envs
from wm_core.api.hooks import Hooks, active_hooks, create_plugin_manager, use_hooks
from wm_core.data import npz
from wm_core.data.atomic import write_text_atomically
from wm_core.evaluation.planning_quality import evaluate_planner
from wm_core.loops.config import ConfigError, configure, loop_setting, seed_global_generators
from wm_core.loops.cpus import pin_threads, split_cpus
from wm_core.ownership import CHECKPOINTS, RUN, DirectoryLock, child_environment
from wm_core.planning.planners import Random
from wm_core.reporting.visualize import visualize  # the original library's train_eval.visualize
from wm_core.rollout.simulate import run_episodes

__all__ = ["EVAL_SEED_OFFSET", "LOOP_STATE_FILE", "run_experiment", "train_eval_loop", "visualize"]

LOOP_STATE_FILE = "loop_state.json"
EVAL_SEED_OFFSET = 1_000_000  # eval episodes never reuse a training seed


def _saved_episodes(directory: str) -> list[str]:
    return npz.episode_paths(directory) if os.path.isdir(directory) else []


def _mean_return(paths: list[str]) -> float | None:
    returns = [float(npz.load_episode(path)["reward"].sum()) for path in paths]
    return float(np.mean(returns)) if returns else None


def _read_completed_iterations(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as file:
        return int(json.load(file)["completed_iterations"])


def _write_completed_iterations(path: str, completed: int) -> None:
    write_text_atomically(path, json.dumps({"completed_iterations": completed}))


class _Environments:
    """The run's environments: a fresh one per phase (``num_envs == 1``), or
    one :class:`~wm_core.tasks.vector.VectorEnv` kept for the whole run."""

    def __init__(self, task: Any, num_envs: int):
        self.task, self.num_envs = task, num_envs
        self._vector = None

    def open(self) -> tuple[Any, bool]:
        """``(env, caller_closes_it)``."""
        if self.num_envs == 1:
            return self.task.create_env(), True
        if self._vector is None:
            from wm_core.tasks.vector import VectorEnv

            self._vector = VectorEnv(self.task, self.num_envs)
        return self._vector, False

    def close(self) -> None:
        if self._vector is not None:
            self._vector.close()
            self._vector = None


def _collect(
    task: Any,
    planner: Any,
    directory: str,
    wanted: int,
    seed: int,
    phase: str,
    hooks: Hooks,
    environments: _Environments,
    wait: Callable[[], None] | None = None,
) -> tuple[list, list, dict[str, float]]:
    """Top ``directory`` up to ``wanted`` episodes; returns the new ones and timings.

    Episode ``i`` (seed ``seed + i``) is saved only after episodes ``0 ..
    i-1``: the number of files is the index of the next episode to collect.
    ``wait``: called before every ``num_envs`` episodes (asynchronous training).
    """
    episodes, predictions = [], []
    start = time.perf_counter()
    index = len(_saved_episodes(directory))
    if index < wanted:
        env, closes = environments.open()  # one for all the missing episodes
        try:
            while index < wanted:
                count = wanted - index if wait is None else min(environments.num_envs, wanted - index)
                if wait is not None:
                    wait()
                for _, episode, episode_predictions in run_episodes(
                    task, planner, count, seed=seed + index, phase=phase, hooks=hooks,
                    first_episode_index=index, env=env, num_envs=environments.num_envs,
                ):
                    npz.save_dictionaries([episode], directory)
                    episodes.append(episode)
                    predictions.append(episode_predictions)
                index += count
        finally:
            if closes:
                env.close()
    seconds = time.perf_counter() - start
    if not episodes:
        return episodes, predictions, {}
    steps = sum(len(episode["reward"]) - 1 for episode in episodes)
    scalars = {
        "score": float(np.mean([episode["reward"].sum() for episode in episodes])),
        "episode_length": steps / len(episodes),
        "collect_seconds": seconds,
        "steps_per_second": steps / max(seconds, 1e-9),
    }
    return episodes, predictions, scalars


def _planning_quality(
    task: Any, planner: Any, eval_dir: str, num_states: int, seed: int
) -> dict[str, float]:
    """Mean planning-quality figures of ``planner``'s world model, per-step ones left out."""
    quality = evaluate_planner(
        task, planner, eval_dir, num_states=num_states, seed=seed,
        first_seed=seed + EVAL_SEED_OFFSET,
    )
    return {
        f"planning_quality/{name}": value
        for name, value in quality.mean.items()
        if not re.search(r"_h\d+$", name)
    }


def _start_learner(
    output_dir: str, model_dir: str, episodes_dir: str, ratio: float, cpus: set[int] | None = None
):
    """The learner process (``wm-run learn``, :mod:`wm_core.loops.learner`) and
    the wait before each collection; ``cpus``: pin the learner to them."""
    import subprocess
    import sys

    from wm_core.loops import learner

    learner.prepare_learner(output_dir)
    process = subprocess.Popen([
        sys.executable, "-m", "wm_core.cli", "learn", "--output_dir", output_dir,
        "--model_dir", model_dir, "--episodes_dir", episodes_dir,
        "--train_steps_per_env_step", repr(float(ratio)),
    ], env=child_environment())  # the learner dies with this process
    if cpus is not None:  # before it imports TensorFlow, which sizes its pools to them
        pin_threads(cpus, process.pid)
    train_dir = os.path.join(episodes_dir, "train")

    def wait() -> None:
        learner.wait_for_learner(output_dir, train_dir, ratio, process=process)

    return process, wait


def _finish_learner(process: Any, output_dir: str) -> None:
    """Let the learner train what is due, then exit; raise if it failed."""
    from wm_core.loops import learner

    with open(os.path.join(output_dir, learner.LEARNER_STOP_FILE), "w"):
        pass
    if process.wait() != 0:
        state = learner.read_learner_state(output_dir) or {}
        raise learner.LearnerFailed(
            f"the learner process exited with status {process.returncode}"
            + (f": {state['error']}" if state.get("error") else "")
        )


def _stop_learner(process: Any, output_dir: str, grace_s: float = 30.0) -> None:
    """End the learner now (SIGTERM, then SIGKILL after ``grace_s``); one
    that recorded an error is ending by itself and gets ``grace_s`` to report it."""
    import subprocess

    from wm_core.loops import learner

    if (learner.read_learner_state(output_dir) or {}).get("error"):
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@gin.configurable(module="wm")
def train_eval_loop(
    task: Any,
    train_planner: Any,
    eval_planner: Any,
    train_fn: Callable[[str], None] | None,
    num_train_episodes_per_iteration: int = 1,
    eval_every_n_iterations: int = 1,
    num_iterations: int = 1,
    episodes_dir: str = gin.REQUIRED,
    model_dir: str = gin.REQUIRED,
    num_eval_episodes: int = 1,
    seed_episodes: int = 0,
    planning_quality_states: int = 0,
    offline: bool = False,
    seed: int = 0,
    output_dir: str | None = None,
    hooks: Hooks | None = None,
    num_envs: int = 1,
    async_training: bool = False,
    train_steps_per_env_step: float = 0.0,
    learner_cpus: int = 0,
) -> dict[str, list[float]]:
    """Interleave data collection, training and evaluation; resumable.

    :param train_fn: ``train_fn(data_path)``; ``None`` for models that do not
        learn (e.g. the ground-truth ``oracle``).
    :param seed_episodes: random-action episodes collected before the first
        iteration (episode seeds ``seed + 0 .. seed + seed_episodes - 1``;
        the iterations' episodes follow them).
    :param planning_quality_states: after each evaluation, score the eval
        planner's world model on this many states of the eval episodes
        against the simulator (:func:`wm_core.evaluation.planning_quality.evaluate_planner`)
        and report the means as ``planning_quality/<figure>`` eval scalars;
        0: off.
    :param offline: train and evaluate from the episodes already in
        ``<episodes_dir>/train`` without collecting any.
    :param output_dir: run directory for ``loop_state.json``, the operative
        gin config and summaries; defaults to the parent of ``model_dir``.
    :param num_envs: environments collecting episodes together, each in its
        own worker process (``wm.train_eval_loop.num_envs = 4`` in a config);
        the planners decide for all of them at once through
        :func:`wm_core.planning.planners.batch_planner`.  Episode ``i`` of a phase has
        seed ``i`` whatever ``num_envs`` is, episodes are saved in episode
        order, and a run may be resumed with another ``num_envs``: the
        episodes are the same.  1 (default): one environment in this
        process (or the task's own worker).  The task must be
        picklable when ``num_envs > 1``.
    :param async_training: train in a separate learner process
        (``wm-run learn``, :mod:`wm_core.loops.learner`) while this
        one collects: the learner rebuilds ``train_fn`` from the run's
        ``operative_config.gin`` (so the loop must be gin-configured, as
        ``wm-run`` does; ``train_fn`` is not called here) and trains while
        its train steps < ``train_steps_per_env_step`` x the environment
        steps in ``<episodes_dir>/train``; collection waits before each
        training episode (``num_envs`` at a time) while the learner is more
        than one ``train_fn`` call behind; planners pick up its checkpoints
        themselves.  At the end the learner finishes the training due, then
        exits.
    :param learner_cpus: with ``async_training`` (Linux only), pin the
        learner to this many of the CPUs this process may use and
        collection to the rest (:mod:`wm_core.loops.cpus`), for the run's
        duration (environment workers, ``num_envs > 1``, keep every CPU);
        0 (default): both share every CPU.
    :returns: ``{"train_scores": [...], "eval_scores": [...]}`` for the
        iterations run by this call, and, read from the episode files (so a
        resumed run reports the whole run), ``random_score``: the mean return
        of the seed episodes, and ``final_eval_score``: that of the last
        evaluation's episodes (``None`` where there are none).
    """
    try:  # a bad setting is the config's error: wm-run says so in one line
        for name, value in (
            ("num_train_episodes_per_iteration", num_train_episodes_per_iteration),
            ("eval_every_n_iterations", eval_every_n_iterations),
            ("num_eval_episodes", num_eval_episodes),
        ):
            check_int_at_least(name, value)
        check_int_at_least("seed_episodes", seed_episodes, minimum=0)
        num_envs = check_num_envs(num_envs)
        check_int_at_least("learner_cpus", learner_cpus, minimum=0)
        if learner_cpus and not async_training:
            raise ValueError(f"learner_cpus={learner_cpus} needs async_training (a learner process)")
        cpu_split = split_cpus(learner_cpus) if learner_cpus else None
    except (ValueError, NotImplementedError) as error:
        raise ConfigError(f"wm.train_eval_loop: {error}") from None
    if async_training and (train_fn is None or offline or not train_steps_per_env_step > 0):
        raise ConfigError(
            "wm.train_eval_loop: async_training needs a train_fn, collection (offline=False) and "
            f"train_steps_per_env_step > 0, got {train_fn!r}, offline={offline}, "
            f"{train_steps_per_env_step!r}"
        )
    hooks = hooks or active_hooks()
    output_dir = output_dir or os.path.dirname(os.path.normpath(model_dir))
    train_dir = os.path.join(episodes_dir, "train")
    eval_dir = os.path.join(episodes_dir, "eval")
    state_path = os.path.join(output_dir, LOOP_STATE_FILE)
    for directory in (output_dir, model_dir, train_dir, eval_dir):
        os.makedirs(directory, exist_ok=True)
    for directory in (train_dir, eval_dir):
        npz.remove_stale_temporaries(directory)  # left by a run killed mid-save
    if offline and not _saved_episodes(train_dir):
        raise FileNotFoundError(f"offline mode needs episodes in {train_dir}, found none")

    environments = _Environments(task, num_envs)
    try:
        if num_envs > 1 and not offline:
            environments.open()  # started now, so the operative config has its gin settings
        operative_config = gin.operative_config_str()
        write_text_atomically(os.path.join(output_dir, "operative_config.gin"), operative_config)
    except BaseException:
        environments.close()
        raise
    results: dict[str, list[float]] = {"train_scores": [], "eval_scores": []}
    learner = wait = None
    with use_hooks(hooks):
        hooks.run_configured(output_dir=output_dir, operative_config=operative_config)
        try:
            if async_training:
                learner, wait = _start_learner(
                    output_dir, model_dir, episodes_dir, train_steps_per_env_step,
                    cpu_split[1] if cpu_split else None,
                )
                if cpu_split:
                    pin_threads(cpu_split[0])
            if not offline:
                episodes, predictions, scalars = _collect(
                    task, Random(task, seed), train_dir, seed_episodes, seed, "train", hooks,
                    environments, wait,
                )
                if episodes:
                    hooks.iteration_end(
                        phase="train", global_step=npz.environment_steps(train_dir),
                        episodes=episodes, predictions=predictions, scalars=scalars,
                    )
            for iteration in range(_read_completed_iterations(state_path), num_iterations):
                episodes, predictions, scalars = [], [], {}
                if not offline:
                    episodes, predictions, scalars = _collect(
                        task, train_planner, train_dir,
                        seed_episodes + num_train_episodes_per_iteration * (iteration + 1),
                        seed, "train", hooks, environments, wait,
                    )
                if episodes:
                    results["train_scores"].append(scalars["score"])
                if train_fn is not None and not async_training:
                    start = time.perf_counter()
                    train_fn(train_dir)
                    scalars["train_seconds"] = time.perf_counter() - start
                if scalars:
                    hooks.iteration_end(
                        phase="train", global_step=npz.environment_steps(train_dir),
                        episodes=episodes, predictions=predictions, scalars=scalars,
                    )
                if (iteration + 1) % eval_every_n_iterations == 0:
                    evaluations = (iteration + 1) // eval_every_n_iterations
                    episodes, predictions, scalars = _collect(
                        task, eval_planner, eval_dir, num_eval_episodes * evaluations,
                        seed + EVAL_SEED_OFFSET, "eval", hooks, environments,
                    )
                    if episodes:
                        results["eval_scores"].append(scalars["score"])
                        if planning_quality_states:
                            scalars.update(_planning_quality(
                                task, eval_planner, eval_dir, planning_quality_states, seed
                            ))
                        hooks.iteration_end(
                            phase="eval", global_step=npz.environment_steps(train_dir),
                            episodes=episodes, predictions=predictions, scalars=scalars,
                        )
                _write_completed_iterations(state_path, iteration + 1)
            if learner is not None:
                _finish_learner(learner, output_dir)
                learner = None
        finally:
            if learner is not None:
                _stop_learner(learner, output_dir)
            if cpu_split:
                pin_threads(cpu_split[0] | cpu_split[1])
            environments.close()
            hooks.run_end(output_dir=output_dir)
    last_evaluation = _saved_episodes(eval_dir)[-num_eval_episodes:]
    return {
        **results,
        "random_score": _mean_return(_saved_episodes(train_dir)[:seed_episodes]),
        "final_eval_score": _mean_return(last_evaluation),
    }


def run_experiment(
    gin_files: Sequence[str], gin_params: Sequence[str], output_dir: str, seed: int | None = None
) -> dict:
    """What ``wm-run`` runs: load the configs (:func:`wm_core.loops.config.configure`)
    and call the configured :func:`train_eval_loop` with the installed hook plugins;
    its results.

    Holds the ``run`` lock of ``output_dir`` throughout (taken first: a
    directory in use raises :class:`wm_core.ownership.DirectoryInUseError`
    before anything loads), and the ``checkpoints`` lock of ``model_dir``
    when the loop trains in this process (with ``async_training`` the
    learner holds it)."""
    with contextlib.ExitStack() as locks:
        locks.enter_context(DirectoryLock(output_dir, RUN))
        output_dir = configure(gin_files, gin_params, output_dir, seed)
        seed_global_generators(gin.query_parameter("%seed"))
        trains_here = loop_setting("train_fn", None, evaluate=False) is not None
        if trains_here and not loop_setting("async_training", False):
            locks.enter_context(DirectoryLock(loop_setting("model_dir"), CHECKPOINTS))
        return train_eval_loop(output_dir=output_dir, hooks=Hooks(create_plugin_manager()))
