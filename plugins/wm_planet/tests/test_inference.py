"""observe_fn / predict_fn: the world-model contract, semantics and input checks."""

from __future__ import annotations

import types

import numpy as np
import pytest
import tensorflow as tf

from wm_core.testing import WorldModelContract
from wm_core.tasks.toy import PointTask
from wm_planet import planet


def functional(model, model_dir, sample=True, return_frames=False):
    return types.SimpleNamespace(
        reset_fn=planet.create_planet_reset_fn(model),
        observe_fn=planet.create_planet_observe_fn(model, model_dir, sample=sample),
        predict_fn=planet.create_planet_predict_fn(
            model, return_frames=return_frames, sample=sample
        ),
    )


class TestContinuousPointTask(WorldModelContract):
    @pytest.fixture
    def world_model(self, task, tmp_path, tiny_model):
        return functional(tiny_model(task), str(tmp_path), return_frames=True)


class TestDiscretePointTask(WorldModelContract):
    @pytest.fixture
    def task(self):
        return PointTask(discrete=True)

    @pytest.fixture
    def world_model(self, task, tmp_path, tiny_model):
        return functional(tiny_model(task), str(tmp_path))


@pytest.fixture
def deterministic(task, tmp_path, tiny_model):
    model = tiny_model(task)
    return model, functional(model, str(tmp_path), sample=False, return_frames=True)


def observed_state(world_model, rows=3, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (rows, 1)).astype(np.float32)
    return world_model.observe_fn(frames, actions, np.zeros(rows, np.float32), world_model.reset_fn(seed=0))


def test_reset_state_is_zero_float32_deter_and_stoch(deterministic):
    _, world_model = deterministic
    state = world_model.reset_fn(seed=3)
    assert {key: (value.dtype, value.shape) for key, value in state.items()} == {
        "deter": (np.float32, (1, 16)),
        "stoch": (np.float32, (1, 4)),
    }
    assert not any(value.any() for value in state.values())


def test_sampling_predict_leaves_state_bitwise_unchanged(task, tmp_path, tiny_model):
    world_model = functional(tiny_model(task), str(tmp_path), sample=True)
    state = observed_state(world_model)
    copy = {key: value.copy() for key, value in state.items()}
    first = world_model.predict_fn(np.zeros((7, 5, 1), np.float32), state)
    second = world_model.predict_fn(np.zeros((7, 5, 1), np.float32), state)
    for key in state:
        assert state[key].tobytes() == copy[key].tobytes()
    assert not np.array_equal(first["reward"], second["reward"])  # sampled prior, fresh noise


def test_sampled_predictions_are_the_same_with_and_without_xla(task, tiny_model):
    model = tiny_model(task)
    actions = np.random.default_rng(0).uniform(-1, 1, (50, 5, 1)).astype(np.float32)
    state = planet.create_planet_reset_fn(model)()
    compiled, plain = (
        planet.create_planet_predict_fn(model, jit_compile=jit_compile)(actions, state)["reward"]
        for jit_compile in (True, False)
    )
    np.testing.assert_allclose(compiled, plain, rtol=1e-4, atol=1e-5)


def test_observing_rows_at_once_equals_observing_them_one_by_one(deterministic):
    _, world_model = deterministic
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (4, 1)).astype(np.float32)
    rewards = np.zeros(4, np.float32)
    together = world_model.observe_fn(frames, actions, rewards, world_model.reset_fn())
    state = world_model.reset_fn()
    for row in range(4):
        state = world_model.observe_fn(frames[row:row + 1], actions[row:row + 1], rewards[:1], state)
    for key in state:
        np.testing.assert_allclose(together[key], state[key], rtol=1e-5, atol=1e-6)


def test_each_proposal_is_predicted_independently_of_the_batch(deterministic):
    _, world_model = deterministic
    state = observed_state(world_model)
    proposals = np.random.default_rng(2).uniform(-1, 1, (6, 4, 1)).astype(np.float32)
    batched = world_model.predict_fn(proposals, state)
    for index in range(6):
        alone = world_model.predict_fn(proposals[index:index + 1], state)
        np.testing.assert_allclose(alone["reward"][0], batched["reward"][index], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(alone["image"][0], batched["image"][index])


def test_reward_j_is_the_outcome_of_action_j(deterministic):
    model, world_model = deterministic
    state = observed_state(world_model)
    actions = np.random.default_rng(3).uniform(-1, 1, (2, 3, 1)).astype(np.float32)
    predicted = world_model.predict_fn(actions, state)["reward"]
    manual = {key: tf.constant(np.repeat(value, 2, 0)) for key, value in state.items()}
    for step in range(3):
        manual, _, _ = model.cell.prior_step(manual, tf.constant(actions[:, step]))
        reward = model.reward(model.cell.features(manual)).numpy()
        np.testing.assert_allclose(predicted[:, step], reward, rtol=1e-5, atol=1e-6)


def test_predicted_frames_are_uint8_on_the_5_bit_grid(deterministic):
    _, world_model = deterministic
    image = world_model.predict_fn(np.zeros((2, 3, 1), np.float32), observed_state(world_model))["image"]
    assert image.dtype == np.uint8 and image.shape == (2, 3, 64, 64, 3)
    assert not np.any(image % 8)


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((1, 32, 32, 3), np.uint8), r"PlaNet observe_fn: last_frames has frames of shape \(32, 32, 3\), expected \(64, 64, 3\)"),
        (np.zeros((1, 64, 64, 3), np.float32), r"float32 \(1, 64, 64, 3\)"),
        (np.zeros((64, 64, 3), np.uint8), r"uint8 \(64, 64, 3\)"),
    ],
)
def test_observe_rejects_bad_frames_naming_shape_and_dtype(deterministic, frames, message):
    _, world_model = deterministic
    with pytest.raises(ValueError, match=message):
        world_model.observe_fn(frames, np.zeros((1, 1), np.float32), np.zeros(1, np.float32), world_model.reset_fn())


def test_observe_rejects_mismatched_row_counts(deterministic):
    _, world_model = deterministic
    with pytest.raises(ValueError, match=r"got 2 frames, actions \(3, 1\)"):
        world_model.observe_fn(
            np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 1), np.float32),
            np.zeros(2, np.float32), world_model.reset_fn(),
        )


def test_predict_rejects_wrong_action_size(deterministic):
    _, world_model = deterministic
    with pytest.raises(ValueError, match=r"PlaNet predict_fn: future_actions has shape \(4, 3, 2\) \(float32\), expected float32 \[P, H, A\] with A = 1"):
        world_model.predict_fn(np.zeros((4, 3, 2), np.float32), world_model.reset_fn())


def test_predict_rejects_a_state_of_another_model(deterministic):
    _, world_model = deterministic
    with pytest.raises(ValueError, match=r"PlaNet predict_fn: state\['deter'\] is float32 \(1, 200\), expected float32 \[1, 16\]"):
        world_model.predict_fn(
            np.zeros((1, 1, 1), np.float32),
            {"deter": np.zeros((1, 200), np.float32), "stoch": np.zeros((1, 4), np.float32)},
        )


def test_model_rejects_frames_other_than_64_by_64(task, tiny_model):
    with pytest.raises(ValueError, match=r"frame_size \(96, 96, 3\) is not supported"):
        tiny_model(task, frame_size=(96, 96, 3))


def test_one_model_cannot_serve_two_strategies(task, tmp_path, tiny_model):
    model = tiny_model(task)
    planet.create_planet_predict_fn(model)
    with pytest.raises(ValueError, match="pass the same strategy to every create_planet"):
        planet.create_planet_observe_fn(model, str(tmp_path), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_the_world_models_entry_point_is_the_world_model_class():
    from wm_core.api import registry

    assert registry.load("world_models", "planet") is planet.PlaNet
