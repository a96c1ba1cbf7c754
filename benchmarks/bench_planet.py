"""PlaNet costs: one CEM decision at the published settings and one training step.

Each cost is a median wall time, its model FLOPs and the achieved FLOP rate
as a fraction of this machine's dense-matmul rate (a compiled 2048²
``tf.matmul``); ``time / (FLOPs / matmul rate)`` is how many times slower
than that FLOP limit the cost is.  The machine is shared, so its matmul
rate drifts with the load: every timed repeat is paired with the matmul
rate measured just before it, and the ratio reported is the median of the
per-repeat ratios.

FLOPs are counted analytically from the layer shapes (2 per multiply-add of
every dense, GRU and (transposed) convolution; elementwise ops ignored):
a predict call is ``P * H`` prior steps plus the reward head, a decision is
``iterations`` predict calls; a training step is the forward pass (encoder,
posterior step, decoder, reward head for every one of ``batch * duration``
rows) times 3 (forward + backward ~ 3x forward).

The decision is ``wm_cem.cem.CEM.plan`` (horizon 12, 10 iterations, 1000
proposals, top 100) with the full-size model's sampling ``predict_fn``; the
training step is :meth:`wm_planet.training.Trainer.train_step` on an
in-memory 50×50 batch (no data loading, no checkpoint).

``python benchmarks/bench_planet.py [--quick]``; ``quick`` times fewer
repeats with the same sizes.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from types import SimpleNamespace
from typing import Callable

from wm_tf.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # as the plugins ask for when imported first (wm_tf.onednn)

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from wm_core.planning.objectives import DiscountedReward  # noqa: E402
from wm_planet import planet  # noqa: E402
from wm_planet.model import RecurrentStateSpaceModel  # noqa: E402
from wm_planet.training import Trainer  # noqa: E402

from processor import run_script  # noqa: E402

HORIZON, ITERATIONS, PROPOSALS, FRACTION = 12, 10, 1000, 0.1
BATCH, DURATION = 50, 50
DECISION_TARGET_SECONDS, TRAIN_TARGET_RATIO = 0.5, 3.0


class MatmulClock:
    """This machine's float32 dense-matmul FLOP rate, measured on demand."""

    def __init__(self, size: int = 2048):
        a = tf.random.normal([size, size])
        b = tf.random.normal([size, size])
        self._multiply = tf.function(lambda: tf.matmul(a, b))
        self._multiply().numpy()
        self.flops = 2 * size**3

    def rate(self, repeats: int = 3) -> float:
        """FLOP/s: the fastest of ``repeats`` multiplications (the least disturbed)."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self._multiply().numpy()
            times.append(time.perf_counter() - start)
        return self.flops / min(times)


def paired_timings(run: Callable[[], object], repeats: int, clock: MatmulClock) -> tuple[list[float], list[float]]:
    """Warm ``run`` up, then time it ``repeats`` times, each right after measuring ``clock``'s
    rate; returns (seconds, matmul rates)."""
    run()  # trace / warm up
    seconds, rates = [], []
    for _ in range(repeats):
        rates.append(clock.rate())
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds, rates


def dense_flops(*layers) -> int:
    """Per row: 2 x every kernel's size (Dense kernels and GRU kernels)."""
    total = 0
    for layer in layers:
        for weight in layer.trainable_weights:
            if "kernel" in weight.name:  # kernel and recurrent_kernel, not biases
                total += 2 * int(np.prod(weight.shape))
    return total


def conv_flops(layers, input_size: int, transposed: bool) -> int:
    """2 x kernel size x spatial positions (outputs for conv, inputs for transposed conv)."""
    total, size = 0, input_size
    for layer in layers:
        kernel = int(np.prod(layer.kernel.shape))
        stride, width = layer.strides[0], layer.kernel_size[0]
        out = (size - 1) * stride + width if transposed else (size - width) // stride + 1
        total += 2 * kernel * (size * size if transposed else out * out)
        size = out
    return total


def prior_step_flops(model: RecurrentStateSpaceModel) -> int:
    cell = model.cell
    return dense_flops(cell.transition_input, cell.gru, cell.prior_hidden, cell.prior_stats)


def reward_flops(model: RecurrentStateSpaceModel) -> int:
    return dense_flops(*model.reward_head.hidden, model.reward_head.out)


def row_forward_flops(model: RecurrentStateSpaceModel) -> int:
    """One training row: encode, posterior step, decode, reward."""
    cell = model.cell
    encoder = conv_flops(model.encoder.convs, 64, transposed=False)
    if model.encoder.projection is not None:
        encoder += dense_flops(model.encoder.projection)
    decoder = dense_flops(model.decoder.dense) + conv_flops(model.decoder.deconvs, 1, transposed=True)
    posterior = dense_flops(cell.posterior_hidden, cell.posterior_stats)
    return encoder + prior_step_flops(model) + posterior + decoder + reward_flops(model)


def report(name: str, timings: tuple[list[float], list[float]], flops: float) -> dict[str, float]:
    """Print and return the median time, GFLOPs, and median ratio to the paired FLOP limits."""
    seconds, rates = timings
    ratios = [time_ * rate / flops for time_, rate in zip(seconds, rates)]
    median, ratio, rate = statistics.median(seconds), statistics.median(ratios), statistics.median(rates)
    print(
        f"{name}: median {median * 1e3:.1f} ms, {flops / 1e9:.2f} GFLOP, "
        f"{flops / median / 1e9:.1f} GFLOP/s; matmul rate {rate / 1e9:.0f} GFLOP/s "
        f"(range {min(rates) / 1e9:.0f}-{max(rates) / 1e9:.0f}) -> {ratio:.2f}x its FLOP limit "
        f"(per repeat {min(ratios):.2f}-{max(ratios):.2f})"
    )
    return {"seconds": median, "gflop": flops / 1e9, "times_flop_limit": ratio}


def cem_planner(model: RecurrentStateSpaceModel, model_dir: str):
    """A published-size CEM planner that has observed one frame (its ``state`` is set)."""
    from wm_cem.cem import CEM

    task = SimpleNamespace(action_space=model.task.action_space)
    planner = CEM(
        predict_fn=planet.create_planet_predict_fn(model),
        observe_fn=planet.create_planet_observe_fn(model, model_dir),
        reset_fn=planet.create_planet_reset_fn(model),
        task=task, objective_fn=DiscountedReward(), horizon=HORIZON,
        iterations=ITERATIONS, proposals=PROPOSALS, fraction=FRACTION, seed=0,
    )
    planner.reset(seed=0)
    rng = np.random.default_rng(0)
    planner(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), np.zeros(1, np.float32), 0.0)
    return planner


def training_batch(model: RecurrentStateSpaceModel) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (BATCH, DURATION, *model.frame_size), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (BATCH, DURATION, model.action_dim)).astype(np.float32),
        "reward": rng.uniform(0, 8, (BATCH, DURATION)).astype(np.float32),
    }


def main(quick: bool = False) -> dict[str, dict[str, float]]:
    clock = MatmulClock()
    print(f"dense matmul rate at start: {clock.rate(10) / 1e9:.1f} GFLOP/s (2048² float32)")
    cartpole = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    model = RecurrentStateSpaceModel(task=cartpole)  # published sizes
    results = {}
    with tempfile.TemporaryDirectory() as model_dir:
        planner = cem_planner(model, model_dir)
        flops = ITERATIONS * PROPOSALS * HORIZON * (prior_step_flops(model) + reward_flops(model))
        timings = paired_timings(lambda: planner.plan(planner.state), 3 if quick else 9, clock)
        results["cem_decision"] = report(
            f"CEM decision ({PROPOSALS} proposals x {HORIZON} steps x {ITERATIONS} iterations)",
            timings, flops)
        predict_fn, state = planner.predict_fn, planner.state
        actions = np.random.default_rng(1).uniform(-1, 1, (PROPOSALS, HORIZON, 1)).astype(np.float32)
        timings = paired_timings(
            lambda: [predict_fn(actions, state) for _ in range(ITERATIONS)], 3 if quick else 9, clock)
        results["predict_calls"] = report(f"  of which {ITERATIONS} predict_fn calls alone", timings, flops)
        trainer = Trainer(model, model_dir)
        batch = training_batch(model)
        timings = paired_timings(lambda: trainer.train_step(batch), 1 if quick else 3, clock)
        flops = 3 * BATCH * DURATION * row_forward_flops(model)
        results["train_step"] = report(f"training step ({BATCH} x {DURATION})", timings, flops)
    decision, train = results["cem_decision"]["seconds"], results["train_step"]["times_flop_limit"]
    print(f"targets: decision <= {DECISION_TARGET_SECONDS} s: {'met' if decision <= DECISION_TARGET_SECONDS else 'NOT met'}; "
          f"train step within {TRAIN_TARGET_RATIO}x FLOP limit: {'met' if train <= TRAIN_TARGET_RATIO else 'NOT met'}")
    return results


if __name__ == "__main__":
    run_script(main, __doc__)
