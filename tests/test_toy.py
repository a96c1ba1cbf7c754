from __future__ import annotations

import numpy as np
import pytest

from wm_core.tasks.toy import PointEnv, PointTask


def test_bar_is_bar_width_columns_centred_on_the_point():
    env = PointEnv(size=64, bar_width=8)
    env.reset(seed=0)
    env.set_sim_state({**env.get_sim_state(), "position": np.asarray(0.0)})
    lit = np.flatnonzero(env.render_image()[0, :, 0])
    assert lit.tolist() == list(range(28, 36))  # centre round(0.5 * 63) = 32
    assert np.all(env.render_image()[:, 28:36] == 255)


def test_bar_is_clipped_at_the_right_edge():
    env = PointEnv(size=64, bar_width=8)
    env.reset(seed=0)
    env.set_sim_state({**env.get_sim_state(), "position": np.asarray(1.0)})
    assert np.flatnonzero(env.render_image()[0, :, 0]).tolist() == list(range(59, 64))


@pytest.mark.parametrize("discrete, action, moved", [(False, np.array([0.5]), 0.15), (True, 2, 0.3)])
def test_action_moves_the_point_by_speed(discrete, action, moved):
    env = PointEnv(discrete=discrete, speed=0.3)
    env.reset(seed=0)
    env.set_sim_state({**env.get_sim_state(), "position": np.asarray(0.0)})
    _, reward, *_ = env.step(action)
    assert env.position == pytest.approx(moved)
    assert reward == pytest.approx(1.0 - abs(moved - 0.5))


def test_bad_bar_width_is_named():
    with pytest.raises(ValueError, match="bar_width"):
        PointEnv(bar_width=0)


def test_task_passes_its_settings_to_the_env():
    env = PointTask(length=7, bar_width=4, speed=0.25).create_env()
    assert (env.bar_width, env.speed) == (4, 0.25)


@pytest.mark.parametrize("discrete", [False, True])
def test_rollout_is_bitwise_the_step_by_step_rollout_and_the_real_rewards(discrete):
    """PointEnv rolls all proposals out at once (NumPy); TaskEnv's loop is the reference."""
    from wm_core.tasks.base import TaskEnv

    env = PointEnv(discrete=discrete, length=6, speed=0.3, gauge=True)
    rng = np.random.default_rng(0)
    shape = (7, 4) if discrete else (7, 4, 1)
    # Unclipped Box actions too: rollout takes them as given, like advance.
    actions = rng.integers(0, 3, shape) if discrete else rng.uniform(-1.5, 1.5, shape).astype(np.float32)
    for steps in range(8):  # before, at and past the time limit (rewards 0 after it)
        env.reset(seed=steps)
        sim_state = {**env.get_sim_state(), "steps": np.asarray(steps, np.int64)}
        fast, images = env.rollout(sim_state, actions)
        slow, _ = TaskEnv.rollout(env, sim_state, actions)
        assert images is None and fast.dtype == slow.dtype == np.float32
        np.testing.assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))
        assert np.count_nonzero(fast[0]) == max(1, min(4, 6 - steps))
    plan = actions[3:4] if discrete else np.clip(actions[3:4], -1.0, 1.0)  # step clips
    env.reset(seed=1)
    start = env.get_sim_state()
    real = [env.step(action)[1] for action in plan[0]]
    np.testing.assert_array_equal(env.rollout(start, plan)[0][0], np.float32(real))
