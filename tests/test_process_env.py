from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from wm_core.tasks import DeepMindControl
from wm_core.tasks.process import ProcessEnv, WorkerDiedError, WorkerError, WorkerTimeoutError
from wm_core.tasks.toy import PointTask


@pytest.fixture
def point_env():
    env = ProcessEnv(PointTask(length=5).create_env)
    yield env
    env.close()


def test_worker_env_gives_what_the_local_env_gives(point_env):
    local = PointTask(length=5).create_env()
    assert point_env.action_space == local.action_space
    first, _ = point_env.reset(seed=3)
    expected, _ = local.reset(seed=3)
    np.testing.assert_array_equal(first["image"], expected["image"])
    for action in ([0.5], [-1.0], [0.2]):
        remote = point_env.step(np.array(action, np.float32))
        here = local.step(np.array(action, np.float32))
        np.testing.assert_array_equal(remote[0]["state"], here[0]["state"])
        assert remote[1:4] == here[1:4]


def test_rollout_runs_in_the_worker_and_leaves_the_snapshot_usable(point_env):
    point_env.reset(seed=0)
    snapshot = point_env.get_sim_state()
    actions = np.array([[[1.0]] * 3, [[-1.0]] * 3], np.float32)
    rewards, images = point_env.rollout(snapshot, actions, render=True)
    start = float(snapshot["position"])
    up = [1 - abs(min(start + 0.1 * k, 1.0) - 0.5) for k in (1, 2, 3)]
    np.testing.assert_allclose(rewards[0], up, atol=1e-6)
    assert images.shape == (2, 3, 64, 64, 3) and images.dtype == np.uint8
    replayed, after = point_env.replay(snapshot, np.array([[1.0]], np.float32))
    np.testing.assert_allclose(replayed, up[:1], atol=1e-6)
    assert float(after["position"]) == pytest.approx(min(start + 0.1, 1.0))


def test_worker_errors_keep_their_type_and_traceback(point_env):
    point_env.reset(seed=0)
    with pytest.raises(ValueError, match="expected \\(1,\\)") as caught:
        point_env.step(np.zeros(3, np.float32))
    assert "Traceback" in str(caught.value.__cause__)


def test_closed_env_refuses_calls_and_its_worker_exits():
    env = ProcessEnv(PointTask().create_env)
    process = env._process
    env.close()
    assert process.poll() is not None
    with pytest.raises(WorkerError, match="closed"):
        env.reset(seed=0)


def test_dead_worker_is_reported(point_env):
    point_env._process.kill()
    point_env._process.wait()
    with pytest.raises(WorkerError, match="died"):
        point_env.reset(seed=0)


def test_a_killed_worker_is_reported_as_died(point_env):
    point_env.reset(seed=0)
    point_env._process.kill()
    with pytest.raises(WorkerDiedError, match="died (during|before) 'step'"):
        point_env.step(np.zeros(1, np.float32))


SLOW_ENVS = textwrap.dedent('''
    import time
    from wm_core.tasks.toy import PointEnv

    def slow_env(seconds):
        env = PointEnv(length=5)
        step = env.step

        def slow_step(action):
            time.sleep(seconds)
            return step(action)

        env.step = slow_step
        return env
''')


@pytest.fixture
def slow_envs(tmp_path, monkeypatch):
    """A module on a temporary sys.path entry: the workers import it too."""
    (tmp_path / "wm_slow_envs.py").write_text(SLOW_ENVS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import functools
    import importlib

    module = importlib.import_module("wm_slow_envs")
    yield lambda seconds: functools.partial(module.slow_env, seconds)
    sys.modules.pop("wm_slow_envs", None)


def test_calls_to_several_workers_overlap(slow_envs):
    envs = ProcessEnv.start_many([slow_envs(1.0)] * 3)
    try:
        for env in envs:
            env.reset(seed=0)
        start = time.monotonic()
        for env in envs:
            env.call_async("step", np.zeros(1, np.float32))
        results = [env.call_wait() for env in envs]
        assert time.monotonic() - start < 2.5  # not 3 s: the three slept at once
        assert all(len(result) == 5 for result in results)
        with pytest.raises(WorkerError, match="without a pending call_async"):
            envs[0].call_wait()
    finally:
        for env in envs:
            env.close()


def test_a_worker_that_does_not_answer_in_time_is_killed(slow_envs):
    env = ProcessEnv(slow_envs(60.0), timeout=1.0)
    env.reset(seed=0)
    start = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match=r"did not answer 'step' within 1 s; it was killed"):
        env.step(np.zeros(1, np.float32))
    assert time.monotonic() - start < 5 and env._process.poll() is not None
    with pytest.raises(WorkerError, match="closed"):
        env.reset(seed=0)
    env.close()


def test_dmc_tasks_render_in_a_worker_by_default():
    env = DeepMindControl("cartpole", "swingup").create_env()
    try:
        assert isinstance(env, ProcessEnv)
    finally:
        env.close()


@pytest.mark.slow
def test_tensorflow_and_dmc_rendering_share_a_run_without_crashing():
    """TensorFlow and Mesa's LLVM crash in one process; the worker keeps them apart."""
    pytest.importorskip("tensorflow")
    code = (
        "import tensorflow as tf\n"
        "from wm_core.tasks import DeepMindControl\n"
        "from wm_core.planning.planners import Random\n"
        "from wm_core.rollout.simulate import simulate\n"
        "task = DeepMindControl('cartpole', 'swingup', action_repeat=8, time_limit=0.5)\n"
        "(episode,), _, _ = simulate(task, Random(task, seed=0), 1)\n"
        "episodes, _, _ = simulate(task, Random(task, seed=0), 2, num_envs=2)\n"
        "print(float(tf.reduce_sum(tf.constant(episode['image'], tf.float32)) > 0))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("1.0")
