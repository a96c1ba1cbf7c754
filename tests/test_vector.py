"""Several environments per run: the vector env, simulate and the loop with ``num_envs``.

The fault-injecting tasks live in a module written to a temporary directory
on ``sys.path`` (the workers get the parent's ``sys.path``, so they import
it too); test modules themselves are not importable by name here.
"""

from __future__ import annotations

import os
import pickle
import textwrap
import time
import warnings

import gin
import numpy as np
import pytest

from wm_core import hookimpl
from wm_core.data import npz
from wm_core.api.hooks import Hooks, create_plugin_manager
from wm_core.planning.planners import Random
from wm_core.rollout.simulate import simulate
from wm_core.tasks import DeepMindControl
from wm_core.tasks.process import WorkerDiedError, WorkerTimeoutError
from wm_core.tasks.toy import PointTask
from wm_core.tasks.vector import VectorEnv, worker_factory
from wm_core.loops.train_eval import train_eval_loop

FAULT_TASKS = textwrap.dedent('''
    """Point tasks whose environments end at seed-dependent times, die or hang."""
    import os, signal, time
    from wm_core.tasks.toy import PointEnv, PointTask

    class VariableEnv(PointEnv):
        """Episode of seed s: 2 + (7 * s) % 5 steps; on (seed, step) in `faults`,
        the fault happens once (a marker file per fault) or every time."""

        def __init__(self, faults, marker_dir, **kwargs):
            super().__init__(**kwargs)
            self.faults, self.marker_dir = faults, marker_dir
            self.seed_now, self.steps_now = None, 0
            with open(os.path.join(marker_dir, f"worker-{os.getpid()}"), "w"):
                pass

        def _fault(self, where):
            fault = self.faults.get((self.seed_now, where))
            if fault is None:
                return
            kind, once = fault
            marker = os.path.join(self.marker_dir, f"{kind}-{self.seed_now}-{where}")
            if once and os.path.exists(marker):
                return
            open(marker, "a").close()
            if kind == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)  # hang

        def reset(self, *, seed=None, options=None):
            self.seed_now, self.steps_now = seed, 0
            self.time_limit = 2 + (7 * seed) % 5
            self._fault("reset")
            return super().reset(seed=seed, options=options)

        def step(self, action):
            self.steps_now += 1
            self._fault(self.steps_now)
            return super().step(action)

    class VariableTask(PointTask):
        def __init__(self, marker_dir, faults=None, **kwargs):
            super().__init__(**kwargs)
            self.marker_dir, self.faults = marker_dir, dict(faults or {})

        def create_env(self):
            return VariableEnv(self.faults, self.marker_dir, **self.kwargs)
''')


@pytest.fixture
def fault_tasks(tmp_path, monkeypatch):
    """The module above, importable here and in the workers; markers in tmp_path/markers."""
    (tmp_path / "wm_fault_tasks.py").write_text(FAULT_TASKS)
    (tmp_path / "markers").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("wm_fault_tasks")
    yield module
    import sys

    sys.modules.pop("wm_fault_tasks", None)


def task_with(fault_tasks, tmp_path, faults=None):
    return fault_tasks.VariableTask(str(tmp_path / "markers"), faults, length=50, size=16)


def quiet_hooks(*plugins):
    return Hooks(create_plugin_manager(load_entry_points=False, plugins=plugins))


def assert_same_episodes(expected, actual):
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual):
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --------------------------------------------------------------------------- VectorEnv


def test_vector_env_steps_like_separate_environments_and_never_autoresets():
    task = PointTask(length=2, size=8)
    with VectorEnv(task, 3) as vector:
        assert vector.num_envs == 3 and vector.single_action_space == task.action_space
        observations, infos = vector.reset(seed=[4, 5, 6])
        assert observations["image"].shape == (3, 8, 8, 3) and not infos["failed"].any()
        locals_ = [task.create_env() for _ in range(3)]
        for env, seed, state in zip(locals_, [4, 5, 6], observations["state"]):
            np.testing.assert_array_equal(env.reset(seed=seed)[0]["state"], state)
        actions = [np.array([a], np.float32) for a in (0.5, -1.0, 0.2)]
        # Step slots 0 and 2 only: slot 1 keeps its observation and gets reward 0.
        before = observations["state"][1].copy()
        observations, rewards, terminated, truncated, infos = vector.step(
            actions, mask=np.array([True, False, True])
        )
        np.testing.assert_array_equal(observations["state"][1], before)
        assert rewards[1] == 0.0
        for slot in (0, 2):
            expected = locals_[slot].step(actions[slot])
            np.testing.assert_array_equal(observations["state"][slot], expected[0]["state"])
            assert rewards[slot] == pytest.approx(expected[1])
        vector.step(actions, mask=np.array([True, False, True]))  # slots 0 and 2 truncate
        with pytest.raises(ValueError, match=r"slot\(s\) \[0, 2\] must be reset .* no autoreset"):
            vector.step(actions)
        vector.reset(seed=[7, None, 8], options={"reset_mask": np.array([True, False, True])})
        vector.step(actions)  # every slot is in an episode again


def test_slots_are_called_one_at_a_time_and_answer_as_they_come():
    task = PointTask(length=5, size=8)
    with VectorEnv(task, 3) as vector:
        vector.reset(seed=[0, 1, 2])
        assert vector.receive() == [] and vector.in_flight == frozenset()
        vector.send(2, "step", np.array([1.0], np.float32))
        with pytest.raises(ValueError, match="slot 2 has a call in flight"):
            vector.send(2, "step", np.array([1.0], np.float32))
        assert vector.in_flight == {2}
        (answer,) = vector.receive()
        assert answer.slot == 2 and answer.method == "step" and not answer.failed
        local = task.create_env()
        local.reset(seed=2)
        np.testing.assert_array_equal(answer.result[0]["state"], local.step(np.array([1.0], np.float32))[0]["state"])
        # Rollouts from each slot's own state, in parallel (e.g. an oracle's for several slots).
        states = vector.call("get_sim_state")
        actions = np.ones((2, 3, 1), np.float32)
        rollouts = vector.call_each("rollout", [((states[0], actions), {}), None, ((states[2], actions), {})])
        assert rollouts[1] is None
        np.testing.assert_array_equal(rollouts[2][0], local.rollout(local.get_sim_state(), actions)[0])


def test_dead_worker_is_reported_and_replaced_at_the_next_reset():
    with VectorEnv(PointTask(length=5, size=8), 2) as vector:
        vector.reset(seed=[0, 1])
        old_pid = vector.envs[1].pid
        vector.envs[1]._process.kill()
        action = [np.zeros(1, np.float32)] * 2
        _, _, _, _, infos = vector.step(action)
        assert infos["failed"].tolist() == [False, True]
        with pytest.raises(ValueError, match="must be reset"):
            vector.step(action)
        _, infos = vector.reset(seed=[None, 1], options={"reset_mask": np.array([False, True])})
        assert not infos["failed"].any() and vector.restarts == 1
        assert vector.envs[1].pid != old_pid
        vector.step(action)


def _environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as file:
        pairs = [entry.decode().split("=", 1) for entry in file.read().split(b"\0") if b"=" in entry]
    return dict(pairs)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads worker environments from /proc")
def test_workers_split_the_cores_for_mesa_render_threads_restarted_ones_too(monkeypatch):
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))  # 4 cores, 2 workers
    with VectorEnv(PointTask(length=5, size=8), 2) as vector:
        vector.reset(seed=[0, 1])
        vector.envs[1]._process.kill()
        vector.step([np.zeros(1, np.float32)] * 2)
        vector.reset(seed=[None, 1], options={"reset_mask": np.array([False, True])})
        assert vector.restarts == 1
        assert [_environment_of(env.pid).get("LP_NUM_THREADS") for env in vector.envs] == ["2", "2"]
    assert "LP_NUM_THREADS" not in os.environ  # the parent's own environment is untouched


def test_a_hung_worker_is_killed_after_the_timeout(fault_tasks, tmp_path):
    task = task_with(fault_tasks, tmp_path, {(1, 2): ("hang", False)})
    vector = VectorEnv(task, 2, timeout=2.0)
    try:
        vector.reset(seed=[0, 1])
        action = [np.zeros(1, np.float32)] * 2
        vector.step(action)
        hung = vector.envs[1]._process
        start = time.monotonic()
        with pytest.raises(WorkerTimeoutError, match=r"slot\(s\) \[1\] .* did not answer 'step' within 2 s"):
            vector.step(action)
        assert time.monotonic() - start < 10
        assert hung.poll() is not None  # killed, not left sleeping
    finally:
        vector.close()


def test_bad_arguments_are_clear_errors():
    task = PointTask(length=3, size=8)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
            VectorEnv(task, bad)
        with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
            simulate(task, Random(task, seed=0), 2, num_envs=bad)
    with pytest.raises(TypeError, match="needs a wm_core.tasks.vector.VectorEnv"):
        simulate(task, Random(task, seed=0), 2, num_envs=2, env=task.create_env())


def test_a_task_that_cannot_travel_to_a_worker_is_a_clear_error():
    class LocalTask(PointTask):  # defined in a function: not picklable
        pass

    with pytest.raises(TypeError, match="cannot be sent to an environment worker process"):
        VectorEnv(LocalTask(), 2)


def test_tasks_with_their_own_worker_build_their_env_in_the_vector_worker():
    task = DeepMindControl("cartpole", "swingup", action_repeat=8)
    factory = worker_factory(task)
    assert factory.__self__.in_worker is False and task.in_worker is True
    assert factory.__self__.domain_name == "cartpole"
    pickle.dumps(factory)
    point = PointTask()
    assert worker_factory(point) == point.create_env


# --------------------------------------------------------------------------- simulate


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def wm_episode_start(self, phase, episode_index, seed):
        self.events.append(("start", episode_index, seed))

    @hookimpl
    def wm_planner_decided(self, phase, episode_index, step, action, prediction):
        self.events.append(("decided", episode_index, step))

    @hookimpl
    def wm_episode_end(self, phase, episode_index, episode, predictions, score):
        self.events.append(("end", episode_index, len(predictions)))


def test_four_environments_give_the_episodes_of_one(fault_tasks, tmp_path):
    task = task_with(fault_tasks, tmp_path)
    one, one_predictions, one_score = simulate(task, Random(task, seed=3), 9, seed=5)
    recorder = Recorder()
    four, four_predictions, four_score = simulate(
        task, Random(task, seed=3), 9, seed=5, num_envs=4, hooks=quiet_hooks(recorder),
        first_episode_index=10,
    )
    assert_same_episodes(one, four)
    assert one_score == four_score
    assert [len(p) for p in four_predictions] == [len(e["reward"]) - 1 for e in four]
    lengths = [len(e["reward"]) - 1 for e in four]
    assert len(set(lengths)) > 2  # episodes end at different times...
    ends = [index for kind, index, *_ in recorder.events if kind == "end"]
    assert ends != sorted(ends) and sorted(ends) == list(range(10, 19))  # ...and out of order
    starts = [(index, seed) for kind, index, *rest in recorder.events if kind == "start" for seed in rest]
    assert sorted(starts) == [(10 + i, 5 + i) for i in range(9)]
    for index, length in zip(range(10, 19), lengths):
        steps = [step for kind, i, *rest in recorder.events if kind == "decided" and i == index
                 for step in rest]
        assert steps == list(range(length))


def test_an_oracle_planner_in_four_environments_acts_as_in_one():
    from wm_core.planning import objectives
    from wm_core.models.oracle import OracleWorldModel
    from wm_core.planning.planners import ModelPlanner

    class Greedy(ModelPlanner):
        """The best of three constant plans under the model, with a little noise."""

        def plan(self, state):
            candidates = np.array([[[-1.0]] * 3, [[0.0]] * 3, [[1.0]] * 3], np.float32)
            predictions = self.predict_fn(candidates, state)
            best = int(np.argmax(self.objective_fn(predictions)))
            action = np.clip(candidates[best, 0] + self.rng.normal(0, 0.1, 1), -1, 1)
            return action.astype(np.float32), {key: value[best] for key, value in predictions.items()}

    task = PointTask(length=6, size=8)
    oracle = OracleWorldModel(task)
    planner = Greedy(task, oracle.predict_fn, oracle.observe_fn, oracle.reset_fn,
                     objectives.TotalReward(), seed=1)
    one, one_predictions, _ = simulate(task, planner, 5, seed=2)
    four, four_predictions, _ = simulate(task, planner, 5, seed=2, num_envs=4)
    assert_same_episodes(one, four)
    for a, b in zip(one_predictions, four_predictions):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x["reward"], y["reward"])


def test_more_environments_than_episodes_and_a_reused_vector_env():
    task = PointTask(length=3, size=8)
    one, _, _ = simulate(task, Random(task, seed=0), 2, seed=1)
    assert_same_episodes(one, simulate(task, Random(task, seed=0), 2, seed=1, num_envs=8)[0])
    with VectorEnv(task, 3) as vector:
        for _ in range(2):  # the caller's vector env is reused and left open
            episodes, _, _ = simulate(task, Random(task, seed=0), 2, seed=1, env=vector)
            assert_same_episodes(one, episodes)
        assert not vector.closed


@pytest.mark.parametrize("where", ["reset", 2])
def test_an_episode_whose_worker_dies_is_collected_again_from_its_seed(fault_tasks, tmp_path, where):
    clean = task_with(fault_tasks, tmp_path)
    expected, _, _ = simulate(clean, Random(clean, seed=0), 6, seed=0)
    task = task_with(fault_tasks, tmp_path, {(3, where): ("die", True)})
    recorder = Recorder()
    with pytest.warns(RuntimeWarning, match=r"slot \d died during '(reset|step)' in train episode 3 \(seed 3\)"):
        episodes, predictions, _ = simulate(task, Random(task, seed=0), 6, seed=0, num_envs=3,
                                            hooks=quiet_hooks(recorder))
    assert (tmp_path / "markers" / f"die-3-{where}").exists()  # it did die
    assert_same_episodes(expected, episodes)
    assert [len(p) for p in predictions] == [len(e["reward"]) - 1 for e in episodes]
    assert sorted(i for kind, i, *_ in recorder.events if kind == "end") == list(range(6))


def test_a_worker_that_always_dies_stops_the_run_with_a_clear_error(fault_tasks, tmp_path):
    task = task_with(fault_tasks, tmp_path, {(1, 1): ("die", False)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(WorkerDiedError, match=r"train episode 1 \(seed 1\) died 3 times"):
            simulate(task, Random(task, seed=0), 4, seed=0, num_envs=2)


# --------------------------------------------------------------------------- the loop


def loop(task, tmp_path, **overrides):
    arguments = dict(
        task=task, train_planner=Random(task, seed=0), eval_planner=Random(task, seed=1),
        train_fn=None, num_train_episodes_per_iteration=3, eval_every_n_iterations=2,
        num_iterations=2, num_eval_episodes=2, seed_episodes=2,
        episodes_dir=str(tmp_path / "episodes"), model_dir=str(tmp_path / "model"),
        hooks=quiet_hooks(),
    )
    arguments.update(overrides)
    return train_eval_loop(**arguments)


def saved_episodes(directory):
    return {phase: npz.load_dictionaries(str(directory / "episodes" / phase)) for phase in ("train", "eval")}


def test_loop_with_a_dying_worker_saves_exactly_the_episodes_of_one_environment(fault_tasks, tmp_path):
    clean = task_with(fault_tasks, tmp_path)
    loop(clean, tmp_path / "one")
    task = task_with(fault_tasks, tmp_path, {(3, 2): ("die", True), (1_000_001, "reset"): ("die", True)})
    with pytest.warns(RuntimeWarning, match="died"):
        loop(task, tmp_path / "four", num_envs=4)
    assert len(list((tmp_path / "markers").glob("die-*"))) == 2
    expected, actual = saved_episodes(tmp_path / "one"), saved_episodes(tmp_path / "four")
    for phase in ("train", "eval"):
        assert_same_episodes(expected[phase], actual[phase])
    for phase in ("train", "eval"):  # nothing half-written
        assert not [name for name in os.listdir(tmp_path / "four" / "episodes" / phase)
                    if not name.endswith(".npz") or name.startswith(".")]


def test_loop_num_envs_is_checked_and_configurable_with_gin(tmp_path):
    task = PointTask(length=3, size=8)
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1, got 0"):
        loop(task, tmp_path / "zero", num_envs=0)
    gin.parse_config("wm.train_eval_loop.num_envs = 3\nwm.VectorEnv.timeout = 30.0")
    configured = gin.get_configurable("wm.train_eval_loop")
    loop_args = dict(task=task, train_planner=Random(task, seed=0), eval_planner=Random(task, seed=1),
                     train_fn=None, episodes_dir=str(tmp_path / "run" / "episodes"),
                     model_dir=str(tmp_path / "run" / "model"), hooks=quiet_hooks(),
                     num_train_episodes_per_iteration=2, num_iterations=2)
    configured(**loop_args)
    operative = (tmp_path / "run" / "operative_config.gin").read_text()
    assert "train_eval_loop.num_envs = 3" in operative
    assert "VectorEnv.timeout = 30.0" in operative
    gin.clear_config()
    loop_args["episodes_dir"] = str(tmp_path / "reference" / "episodes")
    loop_args["model_dir"] = str(tmp_path / "reference" / "model")
    train_eval_loop(**loop_args)
    expected, actual = saved_episodes(tmp_path / "reference"), saved_episodes(tmp_path / "run")
    for phase in ("train", "eval"):
        assert_same_episodes(expected[phase], actual[phase])


def test_loop_with_a_hung_worker_stops_with_a_timeout_error(fault_tasks, tmp_path):
    task = task_with(fault_tasks, tmp_path, {(2, 1): ("hang", False)})
    gin.bind_parameter("wm.VectorEnv.timeout", 2.0)
    start = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match="did not answer 'step' within 2 s"):
        loop(task, tmp_path / "run", num_envs=2)
    assert time.monotonic() - start < 30
    # The seed episodes 0 and 1 were saved, nothing of the hung one.
    assert len(npz.episode_paths(str(tmp_path / "run" / "episodes" / "train"))) == 2


@pytest.mark.slow
def test_deepmind_control_in_two_environments_gives_the_episodes_of_one():
    """MuJoCo renders in each vector worker (no worker nested in a worker)."""
    task = DeepMindControl("cartpole", "swingup", action_repeat=8, time_limit=0.5)
    one, _, _ = simulate(task, Random(task, seed=0), 3, seed=7)
    two, _, _ = simulate(task, Random(task, seed=0), 3, seed=7, num_envs=2)
    assert one[0]["image"].any()
    assert_same_episodes(one, two)


def test_gymnasium_tasks_run_in_vector_workers_too():
    from wm_core.tasks import Gym

    task = Gym("Pendulum-v1", time_limit=4, size=(16, 16))
    one, _, _ = simulate(task, Random(task, seed=0), 3, seed=1)
    two, _, _ = simulate(task, Random(task, seed=0), 3, seed=1, num_envs=2)
    assert one[0]["image"].any()
    assert_same_episodes(one, two)
