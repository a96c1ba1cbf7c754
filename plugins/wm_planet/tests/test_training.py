"""train_fn and the loss: learning, reporting, checkpoints, divergence, bad data."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from wm_core.data import npz, sampling
from wm_core.tasks.toy import PointTask
from wm_core.api.hooks import Hooks, create_plugin_manager, hookimpl, use_hooks
from wm_planet import planet
from wm_planet.rssm import gaussian
from wm_core.loops.training import TrainingDivergedError
from wm_planet.training import LinearRamp, Trainer


class StepRecorder:
    def __init__(self):
        self.calls: list[tuple[int, dict[str, float]]] = []

    @hookimpl
    def wm_train_step(self, step, metrics):
        self.calls.append((step, metrics))


def recording_hooks() -> tuple[Hooks, StepRecorder]:
    recorder = StepRecorder()
    return Hooks(create_plugin_manager(load_entry_points=False, plugins=(recorder,))), recorder


def fixed_batch(directory: str, batch: int = 4, length: int = 8) -> dict[str, tf.Tensor]:
    chunks = next(sampling.ChunkIterator(directory, batch, length, seed=123))
    return {key: tf.constant(chunks[key]) for key in ("image", "action", "reward")}


def test_loss_falls_on_the_toy_task(task, tiny_model, episodes_dir, tmp_path):
    tf_keras.utils.set_random_seed(0)  # initial weights independent of the tests run before
    model = tiny_model(task)
    train_fn = planet.create_planet_train_fn(model, 30, 8, 10, 3e-3, str(tmp_path / "model"))
    batch = fixed_batch(episodes_dir)
    before = float(tf.reduce_mean(model.loss(batch)[0]))
    train_fn(episodes_dir)
    after = float(tf.reduce_mean(model.loss(batch)[0]))
    # No model beats the unit-Gaussian pixel noise plus the free nats; the
    # excess over that floor must at least halve (measured: ~1540 -> ~230 nats
    # in 30 steps, ~130 in 60; initial-weight seeds 0-5: 177-210 nats).
    floor = 0.5 * 64 * 64 * 3 * np.log(2 * np.pi) + model.free_nats
    assert after - floor < 0.5 * (before - floor), (before, after, floor)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, point_episodes) -> SimpleNamespace:
    """A tiny model trained 3 steps (batch 4, chunks of 6) on 4 random toy
    episodes through ``train_fn``, under hooks that recorded each step: shared
    by the reporting, compiled-graph, resume and divergence tests (building a
    training graph costs seconds)."""
    root = tmp_path_factory.mktemp("trained")
    task = PointTask(length=20)
    npz.save_dictionaries(point_episodes(task, 4), str(root / "episodes"))
    model = tiny_model(task)
    train_fn = planet.create_planet_train_fn(model, 3, 4, 6, 1e-3, str(root / "model"))
    hooks, recorder = recording_hooks()
    with use_hooks(hooks):
        train_fn(str(root / "episodes"))
    return SimpleNamespace(task=task, model=model, train_fn=train_fn, steps=recorder.calls,
                           episodes_dir=str(root / "episodes"), model_dir=str(root / "model"))


def test_every_step_reports_its_metrics_through_the_active_hooks(trained):
    assert [step for step, _ in trained.steps] == [1, 2, 3]
    for _, metrics in trained.steps:
        assert set(metrics) == {"loss", "image_log_likelihood", "reward_log_likelihood", "kl", "grad_norm"}
        assert all(np.isfinite(value) for value in metrics.values())
        assert metrics["kl"] >= 0 and metrics["grad_norm"] > 0


def test_free_nats_floor_the_kl_term(task, tiny_model, episodes_dir):
    model = tiny_model(task, free_nats=1e4)
    model.build()
    loss, metrics = model.loss(fixed_batch(episodes_dir))
    assert np.all(metrics["kl"].numpy() < 1e4)
    expected = -metrics["image_log_likelihood"] - 10.0 * metrics["reward_log_likelihood"] + 1e4
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)


def test_image_log_likelihood_is_a_unit_gaussian_over_all_pixels(task, tiny_model, episodes_dir):
    model = tiny_model(task)
    model.build()
    batch = fixed_batch(episodes_dir, batch=2, length=3)
    states, _ = model.observe(batch["image"], batch["action"], model.initial_state(2))
    mean = model.decode(model.cell.features(states)).numpy()
    target = np.floor(batch["image"].numpy() / 8) / 32 - 0.5
    by_hand = -0.5 * ((target - mean) ** 2).sum((2, 3, 4)) - 0.5 * 64 * 64 * 3 * np.log(2 * np.pi)
    _, metrics = model.loss(batch)
    np.testing.assert_allclose(metrics["image_log_likelihood"].numpy(), by_hand.mean(1), rtol=1e-5)


def test_overshooting_kl_matches_a_step_by_step_rollout(task, tiny_model, episodes_dir):
    model = tiny_model(task, overshooting=3, overshooting_scale=0.5, free_nats=0.0)
    model.build()
    batch = fixed_batch(episodes_dir, batch=2, length=5)
    loss, metrics = model.loss(batch)
    states, stats = model.observe(batch["image"], batch["action"], model.initial_state(2))
    per_distance = []
    for distance in (2, 3):
        kls = []
        for start in range(5 - distance):
            state = {key: value[:, start] for key, value in states.items()}
            for offset in range(1, distance + 1):
                state, mean, std = model.cell.prior_step(state, batch["action"][:, start + offset])
            target = gaussian(stats["posterior_mean"][:, start + distance], stats["posterior_std"][:, start + distance])
            kls.append(tfp.distributions.kl_divergence(target, gaussian(mean, std)).numpy())
        per_distance.append(np.mean(kls, 0))
    np.testing.assert_allclose(metrics["overshooting_kl"].numpy(), np.mean(per_distance, 0), rtol=1e-4)
    base = -metrics["image_log_likelihood"] - 10.0 * metrics["reward_log_likelihood"] + metrics["kl"]
    np.testing.assert_allclose(loss.numpy(), (base + 0.5 * metrics["overshooting_kl"]).numpy(), rtol=1e-5)


def deterministic_functions(model, model_dir):
    return (
        planet.create_planet_observe_fn(model, model_dir, sample=False),
        planet.create_planet_predict_fn(model, return_frames=True, sample=False),
    )


def predict_after_observing(functions, reset_fn, episode):
    observe_fn, predict_fn = functions
    state = observe_fn(episode["image"][:3], episode["action"][:3], episode["reward"][:3], reset_fn())
    return predict_fn(episode["action"][None, 3:8], state)


def test_a_fresh_model_restores_the_checkpoint_and_predicts_identically(
    task, tiny_model, episodes_dir, point_episodes, tmp_path
):
    model_dir = str(tmp_path / "model")
    trained, fresh = tiny_model(task), tiny_model(task)
    train_fn = planet.create_planet_train_fn(trained, 2, 4, 6, 1e-3, model_dir)
    train_fn(episodes_dir)
    reset_fn = planet.create_planet_reset_fn(fresh)
    episode = point_episodes(task, 1, seed=99)[0]
    trained_functions = deterministic_functions(trained, model_dir)
    fresh_functions = deterministic_functions(fresh, model_dir)
    first = predict_after_observing(trained_functions, reset_fn, episode)
    restored = predict_after_observing(fresh_functions, reset_fn, episode)
    for key in first:
        np.testing.assert_array_equal(first[key], restored[key])

    train_fn(episodes_dir)  # a newer checkpoint appears; the next observe picks it up
    second = predict_after_observing(trained_functions, reset_fn, episode)
    assert not np.array_equal(first["reward"], second["reward"])
    np.testing.assert_array_equal(second["reward"], predict_after_observing(fresh_functions, reset_fn, episode)["reward"])


def test_training_resumes_the_step_count_from_the_checkpoint(trained, tiny_model, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(trained.model_dir, model_dir)  # a copy: the other tests read the original
    hooks, recorder = recording_hooks()
    with use_hooks(hooks):
        planet.create_planet_train_fn(tiny_model(trained.task), 2, 4, 6, 1e-3, model_dir)(
            trained.episodes_dir
        )
    assert [step for step, _ in recorder.calls] == [4, 5]
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-5")


def test_a_resumed_run_draws_on_from_where_the_training_noise_stopped(trained, tiny_model, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(trained.model_dir, model_dir)
    saved = trained.train_fn.learner.noise.state.numpy()
    assert saved.any()  # three steps drew from the stream
    fresh = planet.create_planet_train_fn(tiny_model(trained.task), 2, 4, 6, 1e-3, model_dir)
    fresh.learner.restore_last()
    np.testing.assert_array_equal(fresh.learner.noise.state.numpy(), saved)


def test_a_checkpoint_without_the_noise_stream_still_restores(trained, tiny_model, tmp_path):
    old = trained.train_fn.learner  # write a checkpoint as before the stream was saved
    model_dir = str(tmp_path / "model")
    tf.train.Checkpoint(model=old.model, optimizer=old.optimizer, step=old.step_counter).save(
        os.path.join(model_dir, "ckpt")
    )
    fresh = planet.create_planet_train_fn(tiny_model(trained.task), 2, 4, 6, 1e-3, model_dir)
    assert fresh.learner.restore_last()
    assert fresh.learner.step == old.step
    np.testing.assert_array_equal(fresh.learner.noise.state.numpy()[:2], [0, 0])  # the stream starts anew


def test_steps_of_one_batch_shape_share_one_compiled_graph(trained):
    # The three steps of trained.train_fn, each on a new batch of [4, 6] chunks.
    assert trained.train_fn.learner._compiled_step.experimental_get_tracing_count() == 1


def test_a_nan_loss_raises_and_never_replaces_the_good_checkpoint(trained, point_episodes, tmp_path):
    """The last user of ``trained``: its weights must come back."""
    model, model_dir = trained.model, trained.model_dir
    files, good = sorted(os.listdir(model_dir)), [v.numpy() for v in model.trainable_variables]
    poisoned = point_episodes(trained.task, 2)
    for episode in poisoned:
        episode["reward"][:] = np.nan
    npz.save_dictionaries(poisoned, str(tmp_path / "poisoned"))
    with pytest.raises(TrainingDivergedError, match=r"PlaNet training diverged at step 4 \(loss=nan.*poisoned'; nothing was saved; .*ckpt-3 was kept"):
        trained.train_fn(str(tmp_path / "poisoned"))
    assert sorted(os.listdir(model_dir)) == files
    for variable, value in zip(model.trainable_variables, good):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_learning_rate_ramps_up_linearly():
    ramp = LinearRamp(1e-3, 4)
    assert [round(float(ramp(step)), 8) for step in range(6)] == [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]
    assert float(LinearRamp(1e-3, 0)(0)) == pytest.approx(1e-3)


def test_save_refuses_non_finite_weights(task, tiny_model, tmp_path):
    model = tiny_model(task)
    trainer = Trainer(model, str(tmp_path))
    model.reward_head.out.kernel.assign(tf.fill(model.reward_head.out.kernel.shape, np.inf))
    with pytest.raises(TrainingDivergedError, match="non-finite variables=.*kernel.*no checkpoint to go back to"):
        trainer.save()
    assert not os.path.exists(tmp_path / "checkpoint")


def test_an_empty_episode_directory_is_a_clear_error(task, tiny_model, tmp_path):
    train_fn = planet.create_planet_train_fn(tiny_model(task), 1, 2, 4, 1e-3, str(tmp_path / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no episode files \(\*\.npz\) in '.*empty'"):
        train_fn(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="missing"):
        train_fn(str(tmp_path / "missing"))


def test_a_batch_of_the_wrong_frame_size_is_rejected(task, tiny_model, tmp_path):
    model = tiny_model(task)
    train_fn = planet.create_planet_train_fn(model, 1, 2, 3, 1e-3, str(tmp_path / "model"))
    episode = {
        "image": np.zeros((4, 32, 32, 3), np.uint8),
        "action": np.zeros((4, 1), np.float32),
        "reward": np.zeros((4,), np.float32),
    }
    npz.save_dictionaries([episode], str(tmp_path / "small"))
    with pytest.raises(ValueError, match=r"PlaNet training batch from '.*small'\['image'\] is uint8 "
                                         r"\(2, 3, 32, 32, 3\); expected uint8 \[\?, \?, 64, 64, 3\]"):
        train_fn(str(tmp_path / "small"))


def test_mixed_precision_keeps_float32_weights_and_skips_overflowing_steps(task, tiny_model, tmp_path):
    model = tiny_model(task, mixed_precision=True)
    trainer = Trainer(model, str(tmp_path))
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8),
        "action": np.zeros((2, 4, 1), np.float32),
        "reward": np.zeros((2, 4), np.float32),
    }
    steps = [trainer.train_step(batch) for _ in range(6)]
    assert {variable.dtype for variable in model.trainable_variables} == {tf.float32}
    assert model.encoder.convs[0].compute_dtype == "float16"
    assert all(np.isfinite(step["loss"]) for step in steps)
    # The initial loss scale 2**15 overflows float16 gradients: those steps are
    # skipped and the scale halved until the gradients fit.
    assert not np.isfinite(steps[0]["grad_norm"]) and np.isfinite(steps[-1]["grad_norm"])
    assert float(trainer.optimizer.loss_scale) < 2**15
    predict_fn = planet.create_planet_predict_fn(model)
    reward = predict_fn(np.zeros((3, 2, 1), np.float32), planet.create_planet_reset_fn(model)())["reward"]
    assert reward.dtype == np.float32 and reward.shape == (3, 2)
