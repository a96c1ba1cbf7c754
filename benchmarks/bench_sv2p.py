"""SV2P costs: one CEM decision (128 and 1000 proposals, horizon 12) and one training step.

Every cost is reported as a median wall time, the model FLOPs it performs,
and the ratio of the achieved FLOP rate to this machine's dense-matmul rate
measured in the same run (a large ``tf.matmul``).

FLOPs are counted by TensorFlow's graph profiler on one batch-1 predictor
step and on one latent-tower call (convolutions, matmuls and elementwise ops
it knows), then scaled: a predict call is ``(input_length - 1)`` context
steps at batch 1 plus ``P * H`` rollout steps; a training step is the
forward pass over ``batch`` chunks times 3 (forward + backward ~ 3x forward).

``python benchmarks/bench_sv2p.py [--quick]``.  ``quick`` uses a small
network (base_channels 8, 4 masks), only 128 proposals and 2 CEM iterations;
the full run is the published network (base_channels 32, 10 masks) with 10
CEM iterations, which is meant for an accelerator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from types import SimpleNamespace
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler import model_analyzer, option_builder  # noqa: E402

from wm_core import npz  # noqa: E402
from wm_core.objectives import DiscountedReward  # noqa: E402
from wm_sv2p import SV2P, KLSchedule, create_train_fn  # noqa: E402

HORIZON = 12
ACTION_DIM = 1  # cartpole


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: tracing and first-call costs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(size: int, repeats: int) -> float:
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    seconds = median_seconds(lambda: tf.matmul(a, b).numpy(), repeats)
    return 2.0 * size**3 / seconds


def graph_flops(function: Callable, *specs: tf.TensorSpec) -> float:
    graph = tf.function(function).get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def step_flops(model: SV2P) -> tuple[float, float]:
    """FLOPs of one batch-1 predictor step and one batch-1 latent-tower call."""
    network = model.network
    frame = tf.TensorSpec([1, *model.frame_size])
    action = tf.TensorSpec([1, model.action_dim])
    latent = tf.TensorSpec([1, *network.latent_shape])
    step = graph_flops(
        lambda f, a, z: network.step(f, a, z, network.zero_state(1)), frame, action, latent
    )
    length = model.input_length + model.output_length
    tower = graph_flops(network.latent_tower, tf.TensorSpec([1, length, *model.frame_size]))
    return step, tower


def synthetic_episodes(count: int, steps: int, rng: np.random.Generator) -> list[dict]:
    return [
        {
            "image": rng.integers(0, 256, (steps + 1, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (steps + 1, ACTION_DIM)).astype(np.float32),
            "reward": rng.uniform(0, 1, steps + 1).astype(np.float32),
        }
        for _ in range(count)
    ]


def cem_decision(model: SV2P, proposals: int, iterations: int) -> tuple[Callable[[], object], str]:
    """A callable making one planning decision, and how it is made."""
    frame = np.zeros((64, 64, 3), np.uint8)
    action = np.zeros(ACTION_DIM, np.float32)
    try:
        from wm_cem import CEM
    except ImportError:
        state = model.observe(frame[None], action[None], np.zeros(1, np.float32), model.reset(seed=0))
        actions = np.zeros((proposals, HORIZON, ACTION_DIM), np.float32)
        return (
            lambda: [model.predict(actions, state) for _ in range(iterations)],
            f"{iterations} predict calls (wm_cem not installed)",
        )
    planner = CEM(
        predict_fn=model.predict_fn, observe_fn=model.observe_fn, reset_fn=model.reset_fn,
        task=model.task, objective_fn=DiscountedReward(), horizon=HORIZON,
        iterations=iterations, proposals=proposals, fraction=0.1, seed=0,
    )
    planner.reset(seed=0)
    return (lambda: planner(frame, action, 0.0)), f"wm_cem.CEM, {iterations} iterations"


def main(quick: bool = False) -> dict[str, dict[str, float]]:
    repeats = 3 if quick else 5
    size = 1024 if quick else 4096
    options = dict(base_channels=8, num_masks=4) if quick else dict(base_channels=32, num_masks=10)
    iterations = 2 if quick else 10
    proposal_counts = (128,) if quick else (128, 1000)
    batch = 8 if quick else 50
    task = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))

    peak = matmul_flops_per_second(size, repeats)
    print(f"dense matmul {size}x{size}: {peak / 1e9:.1f} GFLOP/s (median of {repeats})")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        model = SV2P(task=task, input_length=2, output_length=10,
                     model_dir=os.path.join(workdir, "model"), **options)
        per_step, tower = step_flops(model)
        print(f"model {options}: {per_step / 1e6:.1f} MFLOP per step, {tower / 1e6:.1f} MFLOP latent tower")

        for proposals in proposal_counts:
            decide, how = cem_decision(model, proposals, iterations)
            seconds = median_seconds(decide, repeats)
            flops = iterations * ((model.input_length - 1) + proposals * HORIZON) * per_step
            results[f"cem_decision_{proposals}"] = report(
                f"CEM decision, {proposals} proposals x {HORIZON} steps ({how})", seconds, flops, peak)

        rng = np.random.default_rng(0)
        episodes_dir = os.path.join(workdir, "episodes")
        npz.save_dictionaries(synthetic_episodes(4, 30, rng), episodes_dir)
        train_fn = create_train_fn(model, train_steps=1, batch=batch, kl_schedule=KLSchedule(0, 0, 0))
        train_fn.restore_newest = lambda: None  # time the step, not checkpoint reads
        chunk_rows = model.input_length + model.output_length
        seconds = median_seconds(lambda: train_fn(episodes_dir), repeats)
        flops = 3 * batch * ((chunk_rows - 1) * per_step + tower)
        results["train_step"] = report(
            f"training step, batch {batch} x {chunk_rows} rows (incl. checkpoint save)",
            seconds, flops, peak)
    return results


def report(name: str, seconds: float, flops: float, peak: float) -> dict[str, float]:
    rate = flops / seconds
    print(f"{name}: {seconds * 1e3:.1f} ms median, {flops / 1e9:.2f} GFLOP, "
          f"{rate / 1e9:.1f} GFLOP/s = {rate / peak:.2f} of dense matmul")
    return {"seconds": seconds, "flops": flops, "ratio_to_matmul": rate / peak}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
