"""Held-out open-loop predictions of PlaNet and SV2P on real cartpole frames, against baselines.

    .venv/bin/python benchmarks/cartpole_predictions.py [--model planet|sv2p|both]
        [--seeds 0 1 2] [--train-episodes N] [--held-out-episodes N]
        [--train-steps N] [--horizon N] [--window-stride N] [--reward-samples N]

Not part of the test command (each model and seed is minutes of CPU
training); the agent-level learning tests are ``plugins/*/tests/test_learning.py``.

**Data.**  Random-action episodes of ``dmc:cartpole-balance`` (action
repeat 8, 126 rows each): the pole starts upright and falls, so the reward
(summed over the 8 repeats, 0-8 per step) swings with the pole's angle,
which the frames show (random swing-up episodes keep the pole down: too
little reward variance to learn from).  Each model trains briefly from
scratch on fresh episodes and is evaluated on held-out ones (other reset
seeds).  Episodes, initial weights, batches and noise all follow the seed:
a run is reproducible.

**Measure.**  For windows starting every ``--window-stride`` rows of every
held-out episode, the model takes the rows before the window and predicts
the window's ``--horizon`` rows from its actions alone (open loop).  Per
window, the mean squared error of

* the predicted rewards, against a **constant** reward: the training
  episodes' mean (row 0, the reset frame, has no reward);
* the predicted frames (pixel values 0-255), against **copying the last
  observed frame** over the whole horizon,

averaged over windows.  The ratio model / baseline is printed per seed and
its median over seeds; the script exits 1 if a median ratio (reward or
frame, of any model run) is not below 1.

**PlaNet** (``wm_planet``; deter 32, stoch 8, hidden 32, embed 256, depth 8;
default 20 training episodes, 300 steps of 16×25 rows, Adam 3e-3; 4
held-out episodes, windows from row 5 every 3 rows, horizon 10): the model
filters the whole prefix of the episode (posterior means).  The frames are
the prior-mean rollout's; the reward is the model's *expected* reward, the
mean over ``--reward-samples`` (64) sampled rollouts of the same actions,
which falls back towards the mean reward where the model is unsure (the
deterministic prior-mean rollout drifts into a confident wrong state; see
docs/design.md, "Open-loop predictions on cartpole").

**SV2P** (``wm_sv2p``; base channels 8, 4 CDNA masks, 3×3 conv-LSTMs, 5×5
CDNA kernels; default 8 training episodes, 500 steps of batch 8, Adam 1e-3,
only the paper's first, deterministic phase: ``z`` from the prior; 3
held-out episodes, horizon 4, windows every 2 rows): the model sees the
``input_length`` (2) rows before the window and predicts its frames and
rewards.

Measured figures: docs/design.md, "Open-loop predictions on cartpole".
The processor's flags (``processor.py``) are printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from processor import describe  # noqa: E402

#: Each model's settings (the former slow tests' constants); flags override them.
SETTINGS = {
    "planet": dict(train_episodes=20, held_out_episodes=4, train_steps=300, horizon=10,
                   window_stride=3, reward_samples=64),
    "sv2p": dict(train_episodes=8, held_out_episodes=3, train_steps=500, horizon=4,
                 window_stride=2, reward_samples=None),
}
#: The errors each evaluation returns, model then baseline for rewards, then for frames.
ERRORS = ("reward", "constant_reward", "frame", "copy_last_frame")


def random_episodes(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` uniformly random-action cartpole-balance episodes (episode ``i`` reset with ``seed + i``)."""
    from wm_core import tasks
    from wm_core.planning import planners
    from wm_core.rollout import simulate

    task = tasks.DeepMindControl("cartpole", "balance", action_repeat=8)
    episodes, _, _ = simulate.simulate(task, planners.Random(task, seed=seed), count, seed=seed)
    return episodes


def train_mean_reward(episodes: list[dict[str, np.ndarray]]) -> float:
    """The constant baseline: the mean reward of the training episodes (row 0 has none)."""
    return float(np.mean(np.concatenate([episode["reward"][1:] for episode in episodes])))


def window_errors(predicted_rewards, predicted_frames, episode, start: int, horizon: int,
                  mean_reward: float) -> tuple[float, float, float, float]:
    """One window's squared errors, in :data:`ERRORS` order (frames as pixel values 0-255)."""
    future = slice(start, start + horizon)
    rewards, frames = episode["reward"][future], episode["image"][future].astype(np.float64)
    return (
        float(np.mean((predicted_rewards - rewards) ** 2)),
        float(np.mean((mean_reward - rewards) ** 2)),
        float(np.mean((np.asarray(predicted_frames, np.float64) - frames) ** 2)),
        float(np.mean((episode["image"][start - 1].astype(np.float64) - frames) ** 2)),
    )


def planet_errors(directory: str, seed: int, settings: SimpleNamespace) -> dict[str, float]:
    """Train a small PlaNet on fresh episodes; mean :func:`window_errors` on held-out ones."""
    import gymnasium as gym
    import tf_keras

    from wm_core.data import npz
    from wm_planet import planet

    class CartpoleActions:
        """The task as the model sees it: only its action space."""

        action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    train_dir = os.path.join(directory, "train")
    train_episodes = random_episodes(settings.train_episodes, seed)
    npz.save_dictionaries(train_episodes, train_dir)
    held_out = random_episodes(settings.held_out_episodes, 100 + seed)
    tf_keras.utils.set_random_seed(seed)
    model = planet.RecurrentStateSpaceModel(
        task=CartpoleActions(), deter_size=32, stoch_size=8, hidden_size=32, embed_size=256,
        depth=8, reward_units=64, reward_layers=2, reward_scale=10.0, seed=seed,
    )
    model_dir = os.path.join(directory, "model")
    planet.create_planet_train_fn(model, settings.train_steps, 16, 25, 3e-3, model_dir, seed=seed)(train_dir)
    reset_fn = planet.create_planet_reset_fn(model)
    observe_fn = planet.create_planet_observe_fn(model, model_dir, sample=False)
    sample_rewards_fn = planet.create_planet_predict_fn(model, sample=True)
    predict_frames_fn = planet.create_planet_predict_fn(model, return_frames=True, sample=False)
    mean_reward = train_mean_reward(train_episodes)
    errors = []
    for episode in held_out:
        for start in range(5, len(episode["reward"]) - settings.horizon, settings.window_stride):
            rows = slice(0, start)
            state = observe_fn(episode["image"][rows], episode["action"][rows], episode["reward"][rows], reset_fn())
            actions = episode["action"][None, start:start + settings.horizon]
            sampled = sample_rewards_fn(np.repeat(actions, settings.reward_samples, 0), state)["reward"]
            frames = predict_frames_fn(actions, state)["image"][0]
            errors.append(window_errors(sampled.mean(0), frames, episode, start, settings.horizon, mean_reward))
    return dict(zip(ERRORS, np.mean(errors, 0).tolist()))


def sv2p_errors(directory: str, seed: int, settings: SimpleNamespace) -> dict[str, float]:
    """Train a small SV2P (deterministic phase) on fresh episodes; mean :func:`window_errors` on held-out ones."""
    from wm_core.data import npz
    from wm_core.loops.config import seed_global_generators
    from wm_core.tasks import DeepMindControl
    from wm_sv2p import SV2P, KLSchedule, create_train_fn

    seed_global_generators(seed)
    train_episodes = [
        {key: episode[key] for key in ("image", "action", "reward")}
        for episode in random_episodes(settings.train_episodes, seed)
    ]
    held_out = random_episodes(settings.held_out_episodes, seed + 1000)
    train_dir = os.path.join(directory, "episodes")
    npz.save_dictionaries(train_episodes, train_dir)
    mean_reward = train_mean_reward(train_episodes)
    model = SV2P(
        task=DeepMindControl("cartpole", "balance", action_repeat=8), input_length=2,
        output_length=settings.horizon, model_dir=os.path.join(directory, "model"),
        base_channels=8, num_masks=4, lstm_kernel=3, cdna_kernel=5,
    )
    schedule = KLSchedule(deterministic_steps=settings.train_steps, posterior_steps=0, kl_ramp_steps=0)
    create_train_fn(
        model, train_steps=settings.train_steps, batch=8, learning_rate=1e-3, kl_schedule=schedule, seed=seed
    )(train_dir)
    errors = []
    for episode in held_out:
        last = len(episode["reward"]) - settings.horizon
        for start in range(model.input_length, last + 1, settings.window_stride):
            context = slice(start - model.input_length, start)
            state = model.observe(
                episode["image"][context], episode["action"][context], episode["reward"][context],
                model.reset(seed=start),
            )
            actions = episode["action"][None, start:start + settings.horizon]
            predictions = model.predict(actions, state, return_frames=True)
            errors.append(window_errors(
                predictions["reward"][0], predictions["image"][0], episode, start, settings.horizon, mean_reward
            ))
    return dict(zip(ERRORS, np.mean(errors, 0).tolist()))


EVALUATE = {"planet": planet_errors, "sv2p": sv2p_errors}


def line(label: str, errors: dict[str, float]) -> str:
    """``reward model / constant (ratio); frames model / copy-last (ratio)``."""
    return (
        f"{label}  reward {errors['reward']:.2f} / constant {errors['constant_reward']:.2f} "
        f"({errors['reward'] / errors['constant_reward']:.2f})   "
        f"frames {errors['frame']:.1f} / copy-last {errors['copy_last_frame']:.1f} "
        f"({errors['frame'] / errors['copy_last_frame']:.2f})"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    def default(name: str) -> str:
        return "default: " + ", ".join(f"{model} {values[name]}" for model, values in SETTINGS.items()
                                       if values[name] is not None)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["planet", "sv2p", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-episodes", type=int, help=default("train_episodes"))
    parser.add_argument("--held-out-episodes", type=int, help=default("held_out_episodes"))
    parser.add_argument("--train-steps", type=int, help=default("train_steps"))
    parser.add_argument("--horizon", type=int, help="predicted rows per window; " + default("horizon"))
    parser.add_argument("--window-stride", type=int, help="rows between window starts; " + default("window_stride"))
    parser.add_argument("--reward-samples", type=int,
                        help="sampled rollouts averaged for the reward (PlaNet only); " + default("reward_samples"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    models = ["planet", "sv2p"] if args.model == "both" else [args.model]
    print(describe(), flush=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="wm_cartpole_predictions_") as scratch:
        for name in models:
            settings = SimpleNamespace(**{
                key: value if value is None or getattr(args, key) is None else getattr(args, key)
                for key, value in SETTINGS[name].items()
            })
            print(f"== {name}: " + ", ".join(f"{key} {value}" for key, value in vars(settings).items()
                                             if value is not None), flush=True)
            results = []
            for seed in args.seeds:
                directory = os.path.join(scratch, f"{name}_seed{seed}")
                started = time.perf_counter()
                errors = EVALUATE[name](directory, seed, settings)
                results.append(errors)
                print(line(f"seed {seed:<3d}", errors) + f"   [{time.perf_counter() - started:.0f} s]", flush=True)
            medians = {key: statistics.median(errors[key] for errors in results) for key in ERRORS}
            ratios = {
                kind: statistics.median(errors[model] / errors[baseline] for errors in results)
                for kind, model, baseline in (("reward", "reward", "constant_reward"),
                                              ("frames", "frame", "copy_last_frame"))
            }
            print(f"median    reward {medians['reward']:.2f} / constant {medians['constant_reward']:.2f}   "
                  f"frames {medians['frame']:.1f} / copy-last {medians['copy_last_frame']:.1f}")
            print(f"median ratios over {len(results)} seed(s): reward {ratios['reward']:.2f}, "
                  f"frames {ratios['frames']:.2f}")
            failed += [f"{name} {kind} ({ratio:.2f})" for kind, ratio in ratios.items() if not ratio < 1]
    print(describe())
    if failed:
        print(f"median ratio not below 1: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("every median ratio is below 1")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
