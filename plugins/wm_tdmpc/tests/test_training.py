"""TD-MPC's update: targets move by Polyak averaging, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

from wm_tdmpc.training import Trainer


def batches(task, count: int, length: int, size: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shape = task.observation_space["image"].shape
    return [
        {
            "image": rng.integers(0, 256, (size, length, *shape), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (size, length, 1)).astype(np.float32),
            "reward": rng.uniform(0, 1, (size, length)).astype(np.float32),
        }
        for _ in range(count)
    ]


def state_of(trainer: Trainer) -> list[np.ndarray]:
    """Everything the next update depends on."""
    optimizers = (trainer.encoder_optimizer, trainer.model_optimizer, trainer.policy_optimizer)
    return (
        [v.numpy() for v in trainer.model.variables]
        + [v.numpy() for optimizer in optimizers for v in optimizer.variables()]
        + [trainer.value_scale.numpy(), trainer.step_counter.numpy(), trainer.noise.state.numpy()]
    )


def test_a_resumed_run_equals_an_uninterrupted_one(task, tiny_model, tmp_path):
    data = batches(task, 4, 5)
    straight = Trainer(tiny_model(task), str(tmp_path / "straight"))
    for batch in data:
        straight.train_step(batch)

    first = Trainer(tiny_model(task), str(tmp_path / "resumed"))
    for batch in data[:2]:
        first.train_step(batch)
    first.save()
    resumed = Trainer(tiny_model(task, seed=99), str(tmp_path / "resumed"))  # other initial weights
    assert resumed.step == 2
    for batch in data[2:]:
        resumed.train_step(batch)
    for mine, theirs in zip(state_of(resumed), state_of(straight), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_target_q_functions_move_tau_towards_the_online_ones(task, tiny_model, tmp_path):
    trainer = Trainer(tiny_model(task), str(tmp_path), tau=0.25)
    model = trainer.model
    before = [v.numpy() for v in model.target_q_variables]
    metrics = trainer.train_step(batches(task, 1, 5)[0])
    online = [v.numpy() for v in model.q_variables]
    for old, new, target in zip(before, online, model.target_q_variables):
        np.testing.assert_allclose(target.numpy(), old + 0.25 * (new - old), rtol=1e-5, atol=1e-7)
    assert set(metrics) == {"loss", "consistency_loss", "reward_loss", "value_loss", "policy_loss",
                            "grad_norm", "policy_grad_norm", "value_scale", "latent_spread"}
    assert all(np.isfinite(value) for value in metrics.values())


def test_the_loss_falls_on_a_repeated_batch(task, tiny_model, tmp_path):
    trainer = Trainer(tiny_model(task), str(tmp_path), learning_rate=3e-3)
    batch = batches(task, 1, 5)[0]
    losses = [trainer.train_step(batch)["loss"] for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0], losses


def test_chunks_of_the_wrong_length_are_refused(task, tiny_model, tmp_path):
    trainer = Trainer(tiny_model(task), str(tmp_path))
    with pytest.raises(ValueError, match="frame_stack \\+ horizon \\+ td_steps - 1 = 5 rows; this batch has 7"):
        trainer.train_step(batches(task, 1, 7)[0])
    assert Trainer(tiny_model(task), str(tmp_path / "n"), td_steps=3).chunk_length == 7


def test_n_step_targets_reach_the_reward_beyond_the_horizon_through_the_value_loss_only(
    task, tiny_model, tmp_path
):
    # td_steps=2 adds one row; its reward enters the last TD target (and nothing else).  The
    # heads start at zero (uniform predictions, losses blind to targets): compare second steps.
    batch = batches(task, 1, 6)[0]
    changed = {**batch, "reward": batch["reward"].copy()}
    changed["reward"][:, -1] += 5.0

    def second_step(name, data):
        trainer = Trainer(tiny_model(task), str(tmp_path / name), td_steps=2)
        trainer.train_step(data)
        return trainer.train_step(data)

    first, second = second_step("first", batch), second_step("second", changed)
    assert first["reward_loss"] == second["reward_loss"]
    assert first["consistency_loss"] == second["consistency_loss"]
    assert first["value_loss"] != second["value_loss"]


def test_a_new_model_pretrains_on_its_first_batches(task, tiny_model, tmp_path):
    trainer = Trainer(tiny_model(task), str(tmp_path), pretrain_steps=3)
    data = iter(batches(task, 4, 5))
    before = [v.numpy() for v in trainer.model.trainable_variables]
    trainer.before_first_step(data)
    assert trainer.step == 3
    assert len(list(data)) == 1  # three batches taken
    assert any(not np.array_equal(old, new.numpy())
               for old, new in zip(before, trainer.model.trainable_variables))
    with pytest.raises(ValueError, match="pretrain_steps must be an integer >= 0"):
        Trainer(tiny_model(task), str(tmp_path / "other"), pretrain_steps=-1)


def test_latent_spread_is_zero_for_identical_frames_only(task, tiny_model, tmp_path):
    trainer = Trainer(tiny_model(task), str(tmp_path))
    varied = batches(task, 1, 5)[0]
    uniform = {**varied, "image": np.full_like(varied["image"], 77)}  # every shift looks the same
    assert trainer.train_step(uniform)["latent_spread"] == 0.0
    assert trainer.train_step(varied)["latent_spread"] > 1e-4


@pytest.mark.parametrize("td_steps", [1, 2])
def test_the_consistency_and_reward_losses_equal_the_published_formulas(task, tiny_model, tmp_path, td_steps):
    # Written out one chunk and one step at a time (Hansen et al. 2024, eq. 3): observation t
    # is frames t .. t + K - 1, action t and reward t are rows K + t; the latent rolled t + 1
    # steps is compared with the encoding of observation t + 1, whatever td_steps adds.
    model = tiny_model(task, shift_pad=0)  # no augmentation: nothing random in these two losses
    trainer = Trainer(model, str(tmp_path), td_steps=td_steps)
    stack, horizon, rho = model.frame_stack, model.horizon, trainer.rho
    batch = batches(task, 1, trainer.chunk_length)[0]
    rng = np.random.default_rng(1)
    for variable in model.reward_head.output.trainable_variables:  # at zero it scores every target the same
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))

    def observation(chunk: int, t: int) -> np.ndarray:
        return np.concatenate(list(batch["image"][chunk, t : t + stack]), -1)[None]

    consistency, reward = [], []
    for chunk in range(len(batch["image"])):
        latent = model.encode(observation(chunk, 0))
        chunk_consistency = chunk_reward = 0.0
        for t in range(horizon):
            action = batch["action"][chunk, stack + t][None]
            logits = model.reward(latent, action)
            chunk_reward += rho**t * float(model.two_hot.cross_entropy(logits, batch["reward"][chunk, stack + t][None])[0])
            latent = model.next(latent, action)
            target = model.encode(observation(chunk, t + 1))
            chunk_consistency += rho**t * float(np.mean(np.square(latent - target)))
        consistency.append(chunk_consistency / horizon)
        reward.append(chunk_reward / horizon)

    losses = trainer.train_step(batch)
    assert losses["consistency_loss"] == pytest.approx(np.mean(consistency), rel=1e-4)
    assert losses["reward_loss"] == pytest.approx(np.mean(reward), rel=1e-4)
