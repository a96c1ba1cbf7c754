"""TDMPC honours the world-model contract (with ``value`` and ``propose_fn``), and bad input is refused."""

from __future__ import annotations

import gc
import os

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from wm_core.api.contracts import ContractError
from wm_core.planning.objectives import DiscountedReturnWithValue
from wm_core.tasks.toy import PointTask
from wm_core.testing import ObjectiveContract, WorldModelContract
from wm_tdmpc.world_model import TDMPC


class TestTDMPCHonoursTheWorldModelContract(WorldModelContract):
    @pytest.fixture
    def world_model(self, task, tiny_model, tmp_path):
        return TDMPC(task, str(tmp_path), tiny_model(task), train_steps=1, batch=2)


class TestDiscountedReturnWithValueHonoursTheObjectiveContract(ObjectiveContract):
    @pytest.fixture
    def objective(self):
        return DiscountedReturnWithValue(0.9)


def test_the_value_objective_bootstraps_with_the_discounted_value():
    objective = DiscountedReturnWithValue(0.5)
    predictions = {"reward": np.array([[1.0, 2.0], [0.0, 0.0]], np.float32),
                   "value": np.array([10.0, -4.0], np.float32)}
    np.testing.assert_allclose(objective(predictions), [1.0 + 0.5 * 2.0 + 0.25 * 10.0, 0.25 * -4.0])
    with pytest.raises(ContractError, match="no 'value'"):
        objective({"reward": predictions["reward"]})
    with pytest.raises(ContractError, match=r"must be \[proposals\]"):
        objective({"reward": predictions["reward"], "value": np.zeros(3, np.float32)})


@pytest.fixture
def world_model(task, tiny_model, tmp_path):
    return TDMPC(task, str(tmp_path), tiny_model(task), train_steps=1, batch=2)


def observed(world_model, task, frames: int = 1):
    state = world_model.reset_fn(seed=0)
    image = np.zeros((frames, *task.observation_space["image"].shape), np.uint8)
    return world_model.observe_fn(image, np.zeros((frames, 1), np.float32), np.zeros(frames, np.float32), state)


def test_predictions_are_rewards_per_step_and_one_value_per_proposal(world_model, task):
    state = observed(world_model, task)
    predictions = world_model.predict_fn(np.zeros((5, 3, 1), np.float32), state)
    assert predictions["reward"].shape == (5, 3) and predictions["value"].shape == (5,)
    assert predictions["value"].dtype == np.float32


def test_the_frame_stack_starts_with_copies_of_the_first_frame(world_model, task):
    state = world_model.reset_fn(seed=0)
    frame = np.full((1, *task.observation_space["image"].shape), 7, np.uint8)
    state = world_model.observe_fn(frame, np.zeros((1, 1), np.float32), np.zeros(1, np.float32), state)
    assert state["seen"] == 1 and (state["frames"] == 7).all()
    newer = np.full_like(frame, 9)
    state = world_model.observe_fn(newer, np.zeros((1, 1), np.float32), np.zeros(1, np.float32), state)
    assert state["seen"] == 2 and (state["frames"][0] == 7).all() and (state["frames"][1] == 9).all()


def test_proposals_come_from_the_policy_prior_within_the_bounds(world_model, task):
    state = observed(world_model, task)
    first = world_model.propose_fn(state, 3, 6, seed=1)
    assert first.shape == (6, 3, 1) and first.dtype == np.float32
    assert np.all(np.abs(first) <= 1.0)
    np.testing.assert_array_equal(world_model.propose_fn(state, 3, 6, seed=1), first)
    assert not np.array_equal(world_model.propose_fn(state, 3, 6, seed=2), first)


def test_a_horizon_longer_than_the_training_horizon_is_refused(world_model, task):
    state = observed(world_model, task)
    with pytest.raises(ValueError, match="4 steps is longer than the 3 the model trains"):
        world_model.predict_fn(np.zeros((2, 4, 1), np.float32), state)
    with pytest.raises(ValueError, match="longer than the 3"):
        world_model.propose_fn(state, 4, 2)


def test_a_task_without_pixels_is_refused(tiny_model):
    class StateOnly:
        name = "fake:state-only"
        action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1.0, 1.0, (3,), np.float32)})

    with pytest.raises(ValueError, match="TD-MPC learns from pixels: task 'fake:state-only'"):
        tiny_model(StateOnly())


def test_discrete_actions_are_refused(tiny_model):
    with pytest.raises(TypeError, match="needs a Box action space"):
        tiny_model(PointTask(discrete=True))


def test_a_latent_that_simnorm_cannot_group_is_refused(task, tiny_model):
    with pytest.raises(ValueError, match="multiple of simnorm_group=7"):
        tiny_model(task, simnorm_group=7)


def test_the_seed_fixes_the_initial_weights(task, tiny_model):
    first, again, other = (tiny_model(task, seed=seed) for seed in (3, 3, 4))
    for a, b, c in zip(first.variables, again.variables, other.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(a.numpy(), c.numpy()) for a, c in zip(first.variables, other.variables))


def test_the_encoder_initializer_sets_the_scale_of_the_conv_kernels(task, tiny_model):
    glorot, he = (tiny_model(task, encoder_initializer=name) for name in ("glorot_uniform", "he_normal"))
    kernel = glorot.convs[1].kernel  # 5 x 5 x channels x channels
    fan_in, fan_out = np.prod(kernel.shape[:3]), np.prod(kernel.shape[:2]) * kernel.shape[3]
    np.testing.assert_allclose(kernel.numpy().std(), np.sqrt(2 / (fan_in + fan_out)), rtol=0.15)
    np.testing.assert_allclose(he.convs[1].kernel.numpy().std(), np.sqrt(2 / fan_in), rtol=0.15)
    with pytest.raises(ValueError, match="encoder_initializer must be one of"):
        tiny_model(task, encoder_initializer="zeros")


def test_the_encoder_norm_standardises_each_encoding_before_simnorm(task, tiny_model):
    from wm_tdmpc.networks import simnorm

    model = tiny_model(task, encoder_norm=True)
    stacks = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3 * model.frame_stack), dtype=np.uint8)
    x = tf.cast(stacks, tf.float32) / 255.0 - 0.5
    for conv in model.convs:
        x = conv(x)
    x = tf.reshape(x, [4, -1]).numpy()
    standardised = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(model.encode(stacks), simnorm(standardised, model.simnorm_group), atol=1e-5)
    assert model.encoder_norm.trainable_variables[0] is model.encoder_variables[-2]  # trained with the encoder
    assert tiny_model(task).encoder_norm is None  # the published encoder has none


def test_the_dynamics_layernorm_their_output_before_simnorm(task, tiny_model):
    """As published (TD-MPC2's ``mlp(..., act=SimNorm)`` ends Linear, LayerNorm, SimNorm)."""
    from wm_tdmpc.networks import simnorm

    model = tiny_model(task)
    rng = np.random.default_rng(0)
    latents = model.encode(rng.integers(0, 256, (4, 64, 64, 3 * model.frame_stack), dtype=np.uint8))
    actions = rng.uniform(-1.0, 1.0, (4, model.action_dim)).astype(np.float32)
    x = tf.concat([latents, actions], -1)  # the point task's actions are already in [-1, 1]
    for dense, norm in model.dynamics.hidden:
        x = norm(dense(x))
        x = x * tf.tanh(tf.nn.softplus(x))
    x = model.dynamics.output(x).numpy()
    standardised = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(model.next(latents, actions), simnorm(standardised, model.simnorm_group), atol=1e-5)


def test_a_model_given_no_model_dir_removes_its_temporary_one(task, tiny_model):
    world_model = TDMPC(task, None, tiny_model(task), train_steps=1, batch=2)
    state = world_model.observe_fn(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((1, 1), np.float32),
                                   np.zeros(1, np.float32), world_model.reset_fn())
    world_model.predict_fn(np.zeros((2, 3, 1), np.float32), state)  # builds its tf.functions
    path = world_model.model_dir
    assert os.path.isdir(path)
    del world_model
    gc.collect()
    assert not os.path.exists(path)
