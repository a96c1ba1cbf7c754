"""Tasks: gymnasium compliance, determinism, action repeat, snapshots, naming."""

from __future__ import annotations

import inspect
import subprocess
import sys

import gin
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from wm_core import tasks
from wm_core.api import registry, spaces
from wm_core.tasks import rendering
from wm_core.testing import TaskContract

TASKS = {
    "dmc": lambda **kw: tasks.DeepMindControl("cartpole", "swingup", **kw),
    "pendulum": lambda **kw: tasks.Gym("Pendulum-v1", **kw),
    "cartpole": lambda **kw: tasks.Gym("CartPole-v1", **kw),
    "atari": lambda **kw: tasks.Atari("Pong", **kw),
}


@pytest.fixture(params=sorted(TASKS))
def make_task(request):
    return TASKS[request.param]


def random_actions(task, count, seed=0):
    """``count`` environment actions drawn from the task's action space."""
    rng = np.random.default_rng(seed)
    vectors = spaces.sample_action_vectors(task.action_space, rng, (count,))
    return [spaces.to_env_action(task.action_space, vector) for vector in vectors]


def run_episode(env, seed, actions):
    """Images ``[T+1, ...]`` and rewards ``[T]`` of replaying ``actions`` after ``reset(seed)``."""
    observation, _ = env.reset(seed=seed)
    images, rewards = [observation["image"]], []
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        images.append(observation["image"])
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.stack(images), np.asarray(rewards)


class TestTaskContract(TaskContract):
    @pytest.fixture(params=sorted(TASKS))
    def task(self, request):
        return TASKS[request.param](action_repeat=2)


def test_tasks_import_without_tensorflow():
    code = (
        "import sys, wm_core.tasks, wm_core.models.oracle; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'dm_control' not in sys.modules, 'dm_control imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_env_passes_gymnasium_check_env(make_task):
    check_env(make_task().create_env())


def test_observation_is_a_64x64_uint8_image_dict(make_task):
    task = make_task()
    env = task.create_env()
    observation, info = env.reset(seed=0)
    assert observation["image"].dtype == np.uint8
    assert observation["image"].shape == (64, 64, 3)
    assert set(observation) == set(task.observation_space.spaces)
    assert task.observation_space.contains(observation)
    assert info["discount"] == 1.0
    assert observation["image"].std() > 0  # a real frame, not a blank one


def test_same_seed_and_actions_give_the_same_episode(make_task):
    task = make_task(action_repeat=2)
    actions = random_actions(task, 6)
    images_a, rewards_a = run_episode(task.create_env(), 7, actions)
    images_b, rewards_b = run_episode(task.create_env(), 7, actions)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(rewards_a, rewards_b)


@pytest.mark.parametrize("name", ["dmc", "pendulum", "cartpole"])
def test_different_seeds_give_different_starts(name):
    env = TASKS[name]().create_env()
    first, _ = env.reset(seed=1)
    second, _ = env.reset(seed=2)
    assert not np.array_equal(first["state"], second["state"])


def test_action_repeat_sums_the_rewards_of_single_steps(make_task):
    repeat = 3
    repeated = make_task(action_repeat=repeat).create_env()
    single = make_task(action_repeat=1).create_env()
    actions = random_actions(single, 4, seed=1)
    repeated.reset(seed=5)
    single.reset(seed=5)
    for action in actions:
        observation, reward, *_ = repeated.step(action)
        expected = 0.0
        for _ in range(repeat):
            single_observation, single_reward, *_ = single.step(action)
            expected += single_reward
        assert reward == pytest.approx(expected, abs=1e-12)
        np.testing.assert_array_equal(observation["image"], single_observation["image"])


def test_dmc_episode_truncates_at_the_time_limit_mid_repeat():
    # 0.1 s of cartpole = 10 control steps; repeats of 3 end after 3+3+3+1.
    env = tasks.DeepMindControl("cartpole", "swingup", action_repeat=3, time_limit=0.1).create_env()
    single = tasks.DeepMindControl("cartpole", "swingup", time_limit=0.1).create_env()
    env.reset(seed=0)
    single.reset(seed=0)
    action = np.array([0.5], np.float32)
    for agent_step in range(4):
        _, reward, terminated, truncated, info = env.step(action)
        steps = 1 if agent_step == 3 else 3
        expected = sum(single.step(action)[1] for _ in range(steps))
        assert reward == pytest.approx(expected, abs=1e-12)
        assert not terminated
        assert truncated == (agent_step == 3)
        assert info["discount"] == 1.0


def test_dmc_default_time_limit_is_the_suites_1000_steps():
    env = tasks.DeepMindControl("cartpole", "swingup", action_repeat=8).create_env()
    assert env.time_limit == 1000


def test_cartpole_termination_sets_discount_zero():
    env = tasks.Gym("CartPole-v1").create_env()
    env.reset(seed=0)
    for step in range(100):
        _, reward, terminated, truncated, info = env.step(np.int64(1))
        if terminated:
            break
    assert terminated and not truncated
    assert reward == 1.0  # CartPole pays for the step on which the pole falls
    assert info["discount"] == 0.0
    assert 5 < step < 100


def test_gym_truncates_at_the_given_time_limit():
    env = tasks.Gym("Pendulum-v1", action_repeat=2, time_limit=5).create_env()
    env.reset(seed=0)
    truncations = [env.step(np.zeros(1, np.float32))[3] for _ in range(3)]
    assert truncations == [False, False, True]


def test_restoring_a_snapshot_replays_the_same_future(make_task):
    task = make_task(action_repeat=2)
    env = task.create_env()
    env.reset(seed=3)
    for action in random_actions(task, 3, seed=2):
        env.step(action)
    snapshot = env.get_sim_state()
    assert all(isinstance(value, np.ndarray) for value in snapshot.values())
    actions = random_actions(task, 4, seed=9)
    first = [env.step(action)[:2] for action in actions]
    env.set_sim_state(snapshot)
    second = [env.step(action)[:2] for action in actions]
    for (image_a, reward_a), (image_b, reward_b) in zip(first, second):
        np.testing.assert_array_equal(image_a["image"], image_b["image"])
        assert reward_a == reward_b


def test_box_actions_outside_the_bounds_are_clipped():
    clipped = tasks.Gym("Pendulum-v1").create_env()
    bounded = tasks.Gym("Pendulum-v1").create_env()
    clipped.reset(seed=0)
    bounded.reset(seed=0)
    too_big = clipped.step(np.array([50.0], np.float32))
    at_bound = bounded.step(np.array([2.0], np.float32))
    assert too_big[1] == at_bound[1]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        clipped.step(np.zeros(2, np.float32))


def test_make_builds_tasks_by_name_with_keyword_arguments():
    task = tasks.make("dmc:cartpole-swingup", action_repeat=8)
    assert isinstance(task, tasks.DeepMindControl)
    assert (task.name, task.domain_name, task.task_name) == (
        "dmc:cartpole-swingup", "cartpole", "swingup"
    )
    assert task.action_repeat == 8
    assert tasks.make("gym:Pendulum-v1").name == "gym:Pendulum-v1"
    assert tasks.make("atari:Pong").game == "Pong"


def test_make_reports_an_unknown_prefix_with_the_installed_ones():
    with pytest.raises(registry.PluginNotFoundError, match=r"installed: atari, dmc, gym"):
        tasks.make("dcm:cartpole-swingup")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cartpole-swingup", "not '<prefix>:<name>'"),
        ("dmc:cartpole", "not '<domain>-<task>'"),
    ],
)
def test_make_rejects_malformed_names(spec, message):
    with pytest.raises(ValueError, match=message):
        tasks.make(spec)


def test_unknown_environments_are_named_in_the_error():
    with pytest.raises(ValueError, match="'cartpole'-'fly'"):
        tasks.DeepMindControl("cartpole", "fly").create_env()
    with pytest.raises(ValueError, match="Pendulum-v99"):
        tasks.Gym("Pendulum-v99").create_env()
    with pytest.raises(ValueError, match="NotAGame"):
        tasks.Atari("NotAGame").create_env()


def test_tasks_are_gin_configurable():
    with gin.unlock_config():
        gin.parse_config("wm.Gym.action_repeat = 3\nwm.DeepMindControl.camera_id = 1")
    try:
        assert tasks.Gym("Pendulum-v1").action_repeat == 3
        assert tasks.DeepMindControl("cartpole", "swingup").camera_id == 1
    finally:
        gin.clear_config()


@pytest.mark.parametrize(
    "task_class, env_class",
    [
        (tasks.DeepMindControl, tasks.DeepMindControlEnv),
        (tasks.Gym, tasks.GymEnv),
        (tasks.Atari, tasks.AtariEnv),
        (tasks.PointTask, tasks.PointEnv),
    ],
)
def test_a_task_and_its_environment_take_the_same_defaults(task_class, env_class):
    """Both constructors are public and list the same parameters; a default changed
    in one only would make ``Task(...).create_env()`` differ from ``Env(...)``."""
    task_parameters = inspect.signature(task_class.__init__).parameters
    env_parameters = inspect.signature(env_class.__init__).parameters
    shared = sorted(set(task_parameters) & set(env_parameters) - {"self"})
    assert len(shared) >= 4
    for name in shared:
        assert task_parameters[name].default == env_parameters[name].default, name


def test_resize_averages_the_covered_pixels():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    np.testing.assert_array_equal(
        rendering.resize_image(image, (2, 2))[..., 0], [[2, 4], [10, 12]]  # 2.5→2, 4.5→4 (round half even)
    )
    row = np.array([[[0], [30], [90]]], np.uint8)  # 1×3 → 1×2: (0 + 15) / 1.5, (15 + 90) / 1.5
    np.testing.assert_array_equal(rendering.resize_image(row, (1, 2))[0, :, 0], [10, 70])


def test_missing_gl_backends_are_named_with_their_packages(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(rendering.NoGLBackendError) as error:
        rendering.configure_mujoco_gl()
    for expected in ("egl", "osmesa", "libegl1 libgl1-mesa-dri", "libosmesa6"):
        assert expected in str(error.value)


def test_gl_backend_falls_back_to_osmesa(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(
        rendering.ctypes.util, "find_library", lambda name: "libOSMesa.so" if name == "OSMesa" else None
    )
    assert rendering.configure_mujoco_gl() == "osmesa"


def test_a_user_chosen_gl_backend_is_kept(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    assert rendering.configure_mujoco_gl() == "glfw"


@pytest.mark.parametrize("workers, threads", [(1, "8"), (2, "4"), (4, "2"), (5, "0"), (16, "0")])
def test_render_threads_share_the_cores_among_the_workers(monkeypatch, workers, threads):
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    monkeypatch.setattr(rendering.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert rendering.render_threads(workers) == {"LP_NUM_THREADS": threads}  # 0: render inline


def test_render_threads_keep_the_users_setting(monkeypatch):
    monkeypatch.setenv("LP_NUM_THREADS", "3")
    assert rendering.render_threads(4) == {}
