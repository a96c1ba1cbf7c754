"""SV2P as a world model: contract, state, checkpoints, training, errors."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from wm_core.api import registry
from wm_core.data import npz
from wm_core.api.hooks import Hooks, create_plugin_manager, hookimpl, use_hooks
from wm_core.testing import WorldModelContract
from wm_core.loops.training import TrainingDivergedError
from wm_core.tasks.toy import PointTask
from wm_sv2p import SV2P, KLSchedule, create_predict_fn, create_train_fn

TINY = dict(base_channels=4, num_masks=2, lstm_kernel=3, cdna_kernel=3)


def tiny_square_model(task, model_dir, **kwargs) -> SV2P:
    options = dict(input_length=2, output_length=3, frame_size=(16, 16, 3), model_dir=str(model_dir))
    return SV2P(task=task, **{**options, **TINY, **kwargs})


def observed_state(model: SV2P, episode: dict, rows: int, seed: int = 0):
    state = model.reset(seed=seed)
    for row in range(rows):
        state = model.observe(
            episode["image"][row:row + 1], episode["action"][row:row + 1],
            episode["reward"][row:row + 1], state,
        )
    return state


class MetricRecorder:
    def __init__(self):
        self.steps: list[tuple[int, dict]] = []

    @hookimpl
    def wm_train_step(self, step, metrics):
        self.steps.append((step, metrics))


def train_recording(train_fn, data_dir) -> MetricRecorder:
    recorder = MetricRecorder()
    manager = create_plugin_manager(load_entry_points=False, plugins=(recorder,))
    with use_hooks(Hooks(manager)):
        train_fn(str(data_dir))
    return recorder


class TestSV2PContract(WorldModelContract):
    @pytest.fixture
    def task(self):
        return PointTask()

    @pytest.fixture
    def world_model(self, task, tmp_path):
        return SV2P(task=task, input_length=2, output_length=2, model_dir=str(tmp_path), **TINY)


def test_entry_point_names_the_model():
    assert registry.load("world_models", "sv2p") is SV2P


def test_observe_keeps_the_newest_input_length_rows(square_task, square_episodes, tmp_path):
    model = tiny_square_model(square_task, tmp_path, input_length=2)
    episode = square_episodes(1)[0]
    first = observed_state(model, episode, 1)
    later = observed_state(model, episode, 4)
    np.testing.assert_array_equal(later["image"], episode["image"][2:4])
    np.testing.assert_array_equal(later["action"], episode["action"][2:4])
    np.testing.assert_array_equal(later["reward"], episode["reward"][2:4])
    assert int(later["observed"]) == 4
    assert first["image"].shape == (1, 16, 16, 3)  # the old state is untouched


def test_short_context_is_padded_by_repeating_the_first_frame(square_task, square_episodes, tmp_path):
    model = tiny_square_model(square_task, tmp_path, input_length=3)
    episode = square_episodes(1)[0]
    state = observed_state(model, episode, 1)
    padded = dict(
        state,
        image=np.repeat(episode["image"][:1], 3, 0),
        action=np.zeros((3, 2), np.float32),
        reward=np.zeros(3, np.float32),
    )
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4, 2)).astype(np.float32)
    short = model.predict(actions, state, return_frames=True)
    full = model.predict(actions, padded, return_frames=True)
    np.testing.assert_array_equal(short["image"], full["image"])
    np.testing.assert_array_equal(short["reward"], full["reward"])


def test_white_context_is_copied_when_masks_pick_the_background(square_task, tmp_path):
    """With the static-background mask forced on, the prediction is the last
    frame: a white uint8 frame must come back as 255 (it was read as 1.0)."""
    model = tiny_square_model(square_task, tmp_path)
    mask_layer = model.network.mask_logits
    kernel, bias = mask_layer.get_weights()
    bias[:] = 0.0
    bias[0] = 50.0
    mask_layer.set_weights([np.zeros_like(kernel), bias])
    white = np.full((1, 16, 16, 3), 255, np.uint8)
    state = model.observe(white, np.zeros((1, 2), np.float32), np.zeros(1, np.float32), model.reset())
    predictions = model.predict(np.zeros((2, 3, 2), np.float32), state, return_frames=True)
    np.testing.assert_array_equal(predictions["image"], 255)


def test_predict_is_pure_and_latents_change_the_future(square_task, square_episodes, tmp_path):
    model = tiny_square_model(square_task, tmp_path)
    episode = square_episodes(1)[0]
    actions = np.random.default_rng(1).uniform(-1, 1, (4, 3, 2)).astype(np.float32)
    state = observed_state(model, episode, 2, seed=0)
    first = model.predict(actions, state, return_frames=True)
    again = model.predict(actions, state, return_frames=True)
    np.testing.assert_array_equal(first["image"], again["image"])
    other_seed = model.predict(actions, observed_state(model, episode, 2, seed=1), return_frames=True)
    assert np.abs(first["reward"] - other_seed["reward"]).max() > 0
    assert np.abs(first["image"].astype(int) - other_seed["image"]).max() > 0


def test_proposals_are_rolled_out_independently(square_task, square_episodes, tmp_path):
    model = tiny_square_model(square_task, tmp_path)
    state = observed_state(model, square_episodes(1)[0], 2)
    actions = np.random.default_rng(2).uniform(-1, 1, (5, 3, 2)).astype(np.float32)
    together = model.predict(actions, state)["reward"]
    alone = model.predict(actions[3:4], state)["reward"]
    np.testing.assert_allclose(together[3:4], alone, rtol=1e-5, atol=1e-6)
    assert together.dtype == np.float32 and together.shape == (5, 3)


def test_bad_inputs_raise_clear_errors(square_task, tmp_path):
    model = tiny_square_model(square_task, tmp_path)
    state = model.reset()
    zeros_a, zeros_r = np.zeros((1, 2), np.float32), np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"SV2P observe_fn: last_frames must be uint8 .*float32"):
        model.observe(np.zeros((1, 16, 16, 3), np.float32), zeros_a, zeros_r, state)
    with pytest.raises(ValueError, match=r"shape \(64, 64, 3\), expected \(16, 16, 3\)"):
        model.observe(np.zeros((1, 64, 64, 3), np.uint8), zeros_a, zeros_r, state)
    with pytest.raises(ValueError, match=r"last_actions has shape \(1, 3\)"):
        model.observe(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 3)), zeros_r, state)
    with pytest.raises(ValueError, match="no observed frame"):
        model.predict(np.zeros((2, 3, 2), np.float32), state)
    state = model.observe(np.zeros((1, 16, 16, 3), np.uint8), zeros_a, zeros_r, state)
    with pytest.raises(ValueError, match=r"SV2P predict_fn: future_actions has shape \(2, 3\)"):
        model.predict(np.zeros((2, 3), np.float32), state)
    predict_fn = create_predict_fn(model, prediction_horizon=4)
    with pytest.raises(ValueError, match="prediction_horizon=4"):
        predict_fn(np.zeros((2, 3, 2), np.float32), state)


def test_training_on_an_empty_directory_says_so(square_task, tmp_path):
    model = tiny_square_model(square_task, tmp_path / "model")
    (tmp_path / "episodes").mkdir()
    train_fn = create_train_fn(model, train_steps=1, batch=2)
    with pytest.raises(ValueError, match=r"no episode files \(\*\.npz\) in .*episodes"):
        train_fn(str(tmp_path / "episodes"))
    assert tf.train.latest_checkpoint(str(tmp_path / "model")) is None


def test_loss_falls_on_moving_squares(square_task, square_episodes, tmp_path):
    episodes = square_episodes(16)
    npz.save_dictionaries(episodes, str(tmp_path / "episodes"))
    model = tiny_square_model(square_task, tmp_path / "model", base_channels=8, num_masks=4)
    schedule = KLSchedule(deterministic_steps=20, posterior_steps=20, kl_ramp_steps=20, kl_weight=0.01)
    train_fn = create_train_fn(model, train_steps=80, batch=8, learning_rate=3e-3, kl_schedule=schedule)
    steps = train_recording(train_fn, tmp_path / "episodes").steps
    assert [step for step, _ in steps] == list(range(1, 81))
    first, last = ({key: np.mean([metrics[key] for _, metrics in part]) for key in steps[0][1]}
                   for part in (steps[:5], steps[-10:]))
    # Against baselines that learned nothing: predicting every frame as a copy
    # of the one before errs by 0.051 per pixel channel, an all-black frame by
    # 0.0625; the rewards' variance (the error of their mean) is 0.0086.
    assert last["loss"] < 0.6 * first["loss"], (first, last)
    frames = np.stack([episode["image"] for episode in episodes]).astype(np.float32) / 255
    copy_last = np.mean(np.square(frames[:, 1:] - frames[:, :-1]))
    assert last["reconstruction"] < 0.8 * copy_last, (copy_last, last)
    rewards = np.concatenate([episode["reward"][1:] for episode in episodes])
    assert last["reward_loss"] < 0.6 * np.var(rewards), (np.var(rewards), last)
    kl_weights = [metrics["kl_weight"] for _, metrics in steps]
    assert kl_weights[:40] == [0.0] * 40 and kl_weights[-1] == pytest.approx(0.01)
    assert {"loss", "reconstruction", "reward_loss", "kl", "kl_weight"} <= set(steps[0][1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, square_task, square_episodes) -> SimpleNamespace:
    """One tiny model trained 3 steps (batch 4) on 8 moving-square episodes,
    shared by the standardisation, restore and divergence tests below (each
    training graph costs seconds to build).  ``waiting`` was built on the same
    ``model_dir`` before any checkpoint; ``train_fn`` trained ``model``."""
    root = tmp_path_factory.mktemp("trained")
    episodes = square_episodes(8)
    npz.save_dictionaries(episodes, str(root / "episodes"))
    waiting = tiny_square_model(square_task, root / "model")
    model = tiny_square_model(square_task, root / "model")
    train_fn = create_train_fn(model, train_steps=3, batch=4)
    train_fn(str(root / "episodes"))
    return SimpleNamespace(model=model, waiting=waiting, train_fn=train_fn, episodes=episodes,
                           model_dir=root / "model")


def test_reward_decoder_is_standardised_once_from_the_data(square_task, trained, tmp_path):
    rewards = np.concatenate([episode["reward"][1:] for episode in trained.episodes])
    decoder = trained.model.network.reward_decoder
    # From >= 1024 sampled chunk rows (rows near episode ends are sampled less).
    assert float(decoder.offset.numpy()) == pytest.approx(rewards.mean(), abs=0.1 * float(rewards.std()))
    assert float(decoder.scale.numpy()) == pytest.approx(rewards.std(), rel=0.1)

    # Data with other rewards does not re-standardise a trained model (resumed
    # from a copy of its checkpoints: the other tests read the original).
    shifted = [dict(episode, reward=episode["reward"] + 10.0) for episode in trained.episodes]
    npz.save_dictionaries(shifted, str(tmp_path / "shifted"))
    shutil.copytree(trained.model_dir, tmp_path / "model")
    resumed = tiny_square_model(square_task, tmp_path / "model")
    create_train_fn(resumed, train_steps=1, batch=4)(str(tmp_path / "shifted"))
    assert int(resumed.step.numpy()) == 4
    assert float(resumed.network.reward_decoder.offset.numpy()) == float(decoder.offset.numpy())
    assert float(resumed.network.reward_decoder.scale.numpy()) == float(decoder.scale.numpy())


def test_reward_gradients_stop_at_the_frames(square_task, tmp_path):
    network = tiny_square_model(square_task, tmp_path).network
    frame = tf.random.uniform([2, 16, 16, 3])
    latent = network.prior_latent(2, tf.constant([0, 0], tf.int64))
    with tf.GradientTape() as tape:
        _, reward, _ = network.step(frame, tf.ones([2, 2]), latent, network.zero_state(2))
    gradients = tape.gradient(reward, network.trainable_variables)
    decoder = {id(variable) for variable in network.reward_decoder.trainable_variables}
    for variable, gradient in zip(network.trainable_variables, gradients):
        assert (gradient is not None) == (id(variable) in decoder), variable.name


def test_restored_model_predicts_identically(square_task, trained):
    episode = trained.episodes[0]
    actions = np.random.default_rng(3).uniform(-1, 1, (3, 4, 2)).astype(np.float32)
    expected = trained.model.predict(actions, observed_state(trained.model, episode, 2), return_frames=True)

    fresh = tiny_square_model(square_task, trained.model_dir)  # restores on construction
    assert int(fresh.step.numpy()) == 3
    restored = fresh.predict(actions, observed_state(fresh, episode, 2), return_frames=True)
    waiting = trained.waiting
    picked_up = waiting.predict(actions, observed_state(waiting, episode, 2), return_frames=True)
    for predictions in (restored, picked_up):  # the latter restored in observe
        np.testing.assert_array_equal(predictions["reward"], expected["reward"])
        np.testing.assert_array_equal(predictions["image"], expected["image"])


def test_nan_loss_raises_and_keeps_the_good_checkpoint(trained, square_episodes, tmp_path):
    """Runs after the other users of ``trained``: its weights must come back."""
    bad = square_episodes(2, seed=1)
    for episode in bad:
        episode["reward"][:] = np.nan
    npz.save_dictionaries(bad, str(tmp_path / "bad"))
    checkpoint = tf.train.latest_checkpoint(str(trained.model_dir))
    actions = np.zeros((2, 3, 2), np.float32)
    state = observed_state(trained.model, trained.episodes[0], 2)
    before = trained.model.predict(actions, state)["reward"]
    with pytest.raises(TrainingDivergedError, match="SV2P training diverged at step 4"):
        trained.train_fn(str(tmp_path / "bad"))
    assert tf.train.latest_checkpoint(str(trained.model_dir)) == checkpoint
    np.testing.assert_array_equal(trained.model.predict(actions, state)["reward"], before)


def test_one_device_strategy_matches_the_default(square_task, square_episodes, tmp_path):
    episodes = square_episodes(2)
    npz.save_dictionaries(episodes, str(tmp_path / "episodes"))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    model = tiny_square_model(square_task, tmp_path / "model", strategy=strategy)
    create_train_fn(model, train_steps=2, batch=2, strategy=strategy)(str(tmp_path / "episodes"))
    plain = tiny_square_model(square_task, tmp_path / "model")
    actions = np.random.default_rng(4).uniform(-1, 1, (3, 2, 2)).astype(np.float32)
    distributed = model.predict(actions, observed_state(model, episodes[0], 2))["reward"]
    direct = plain.predict(actions, observed_state(plain, episodes[0], 2))["reward"]
    np.testing.assert_allclose(distributed, direct, rtol=1e-5, atol=1e-6)
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / "model"))) == "ckpt-2"


def test_a_foreign_strategy_is_refused(square_task, tmp_path):
    model = tiny_square_model(square_task, tmp_path)
    with pytest.raises(ValueError, match="pass the strategy to SV2P"):
        create_train_fn(model, train_steps=1, batch=2, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
