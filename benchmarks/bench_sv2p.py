"""SV2P costs: one CEM decision (128 and 1000 proposals, horizon 12) and one training step.

Every cost is reported as a median wall time, the model FLOPs it performs,
and the ratio of the achieved FLOP rate to this machine's dense-matmul rate
(a compiled 2048² ``tf.matmul``), measured in the same run before and after
the model timings; the higher of the two is used.

FLOPs are counted by TensorFlow's graph profiler on one batch-1 predictor
step and on one latent-tower call (convolutions, matmuls and the
elementwise ops it knows), then scaled: a predict call is
``(input_length - 1)`` context steps at batch 1 plus ``P * H`` rollout
steps; a training step is the forward pass over ``batch`` chunks times 3
(forward + backward ~ 3x forward).

Full run (``python benchmarks/bench_sv2p.py``): the published network
(``base_channels`` 32, 10 CDNA masks, 5x5 conv-LSTMs, about 3 GFLOP per
predicted frame) planning with the CEM settings of PlaNet's planner
(horizon 12, 10 iterations, top 10%), the only ones SV2P users have: one
iteration is one ``predict_fn`` call on all ``P`` proposals, so it is timed
once per proposal count and the decision time is given as
``10 x`` that time, labelled *extrapolated* (one iteration with 1000
proposals is 36 TFLOP, minutes on a 2-core CPU, so a measured 10-iteration
decision would take tens of minutes; CEM's own NumPy work per iteration is
negligible next to that).  The training step is
:meth:`wm_sv2p.training.Trainer.train_step` on an in-memory batch of 50
chunks of 12 rows (2 context + 10 predicted; no data loading, no
checkpoint).

Beside PlaNet: PlaNet at its published sizes is timed in the same process
(``bench_planet``'s model and batch): one ``predict_fn`` call per proposal
count (its CEM iteration) and one 50 x 50 training step; SV2P's times are
printed as ratios to those, per call and per training row (with ``--quick``
SV2P is the small network, so its ratios are too).

``--quick``: a small network (``base_channels`` 8, 4 masks), 128 proposals,
a measured ``wm_cem.CEM`` decision of 2 iterations and a batch of 8 chunks.
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
from tensorflow.python.profiler import model_analyzer, option_builder  # noqa: E402

from wm_core.planning.objectives import DiscountedReward  # noqa: E402
from wm_sv2p import SV2P, KLSchedule, create_train_fn  # noqa: E402

import bench_planet  # noqa: E402
from processor import run_script  # noqa: E402

HORIZON, FRACTION = 12, 0.1
ACTION_DIM = 1  # cartpole
INPUT_LENGTH, OUTPUT_LENGTH = 2, 10


def median_seconds(run: Callable[[], object], repeats: int, warm_up: Callable[[], object] | None = None) -> float:
    """Median wall time of ``repeats`` calls of ``run`` after one call of ``warm_up`` (default ``run``)."""
    (warm_up or run)()  # tracing and first-call costs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 dense-matmul FLOP rate (compiled, median of ``repeats``)."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    multiply = tf.function(lambda: tf.matmul(a, b))
    return 2.0 * size**3 / median_seconds(lambda: multiply().numpy(), repeats)


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


def observed_state(model: SV2P) -> dict:
    frame = np.zeros((1, *model.frame_size), np.uint8)
    return model.observe(frame, np.zeros((1, ACTION_DIM), np.float32), np.zeros(1, np.float32),
                         model.reset(seed=0))


def random_actions(proposals: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, (proposals, HORIZON, ACTION_DIM)).astype(np.float32)


def cem_decision(model: SV2P, proposals: int, iterations: int) -> Callable[[], object]:
    """A callable making one measured ``wm_cem.CEM`` planning decision."""
    from wm_cem import CEM

    planner = CEM(
        predict_fn=model.predict_fn, observe_fn=model.observe_fn, reset_fn=model.reset_fn,
        task=model.task, objective_fn=DiscountedReward(), horizon=HORIZON,
        iterations=iterations, proposals=proposals, fraction=FRACTION, seed=0,
    )
    planner.reset(seed=0)
    frame = np.zeros(model.frame_size, np.uint8)
    return lambda: planner(frame, np.zeros(ACTION_DIM, np.float32), 0.0)


def training_batch(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = INPUT_LENGTH + OUTPUT_LENGTH
    return {
        "image": rng.integers(0, 256, (batch, rows, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, rows, ACTION_DIM)).astype(np.float32),
        "reward": rng.uniform(0, 1, (batch, rows)).astype(np.float32),
    }


def main(quick: bool = False) -> dict[str, dict[str, float]]:
    if quick:
        options = dict(base_channels=8, num_masks=4)
        proposal_counts, iterations, batch = (128,), 2, 8
        repeats = {128: 3, "train": 3}
    else:
        options = dict(base_channels=32, num_masks=10)
        proposal_counts, iterations, batch = (128, 1000), 10, 50
        repeats = {128: 2, 1000: 1, "train": 2}
    task = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))
    rng = np.random.default_rng(0)

    peak_before = matmul_flops_per_second()
    print(f"dense matmul 2048x2048: {peak_before / 1e9:.1f} GFLOP/s (before)", flush=True)
    measured: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as workdir:
        model = SV2P(task=task, input_length=INPUT_LENGTH, output_length=OUTPUT_LENGTH,
                     model_dir=os.path.join(workdir, "model"), **options)
        per_step, tower = step_flops(model)
        print(f"model {options}: {per_step / 1e9:.3f} GFLOP per predicted frame, "
              f"{tower / 1e9:.3f} GFLOP latent tower", flush=True)
        state = observed_state(model)
        iteration_flops = {p: ((model.input_length - 1) + p * HORIZON) * per_step
                           for p in proposal_counts}

        for proposals in proposal_counts:
            actions = random_actions(proposals, rng)
            seconds = median_seconds(
                lambda: model.predict_fn(actions, state), repeats[proposals],
                warm_up=lambda: model.predict_fn(actions[:1], state),  # traces the same graph
            )
            measured.append((f"cem_iteration_{proposals}",
                             f"one CEM iteration = one predict_fn call, {proposals} proposals x {HORIZON} "
                             f"steps (median of {repeats[proposals]})",
                             seconds, iteration_flops[proposals]))
        if quick:
            seconds = median_seconds(cem_decision(model, 128, iterations), repeats[128])
            measured.append(("cem_decision_128",
                             f"CEM decision, wm_cem.CEM, 128 proposals, {iterations} iterations "
                             f"(measured, median of {repeats[128]})",
                             seconds, iterations * iteration_flops[128]))

        trainer = create_train_fn(
            model, train_steps=1, batch=batch, kl_schedule=KLSchedule(0, 0, 0)
        ).learner
        chunks = training_batch(batch, rng)
        seconds = median_seconds(lambda: trainer.train_step(chunks), repeats["train"])
        rows = INPUT_LENGTH + OUTPUT_LENGTH
        measured.append(("train_step",
                         f"training step, batch {batch} x {rows} rows (median of {repeats['train']})",
                         seconds, 3 * batch * ((rows - 1) * per_step + tower)))

    peak_after = matmul_flops_per_second()
    peak = max(peak_before, peak_after)
    print(f"dense matmul 2048x2048: {peak_after / 1e9:.1f} GFLOP/s (after); using {peak / 1e9:.1f}")
    results = {key: report(name, seconds, flops, peak) for key, name, seconds, flops in measured}
    compare_to_planet(results, planet_reference(task, proposal_counts, repeats), batch)
    if not quick:
        for proposals in proposal_counts:
            iteration = results[f"cem_iteration_{proposals}"]
            results[f"cem_decision_{proposals}"] = report(
                f"CEM decision, {proposals} proposals, {iterations} iterations "
                f"(EXTRAPOLATED: {iterations} x the measured iteration)",
                iterations * iteration["seconds"], iterations * iteration["flops"], peak)
    return results


def planet_reference(task, proposal_counts: tuple[int, ...], repeats: dict) -> dict[str, float]:
    """Median seconds of PlaNet (published sizes) per ``cem_iteration_P`` and ``train_step``."""
    from wm_planet.model import RecurrentStateSpaceModel
    from wm_planet.training import Trainer

    model = RecurrentStateSpaceModel(task=task)
    rng = np.random.default_rng(1)
    seconds = {}
    with tempfile.TemporaryDirectory() as model_dir:
        planner = bench_planet.cem_planner(model, model_dir)  # has observed one frame
        for proposals in proposal_counts:
            actions = random_actions(proposals, rng)
            seconds[f"cem_iteration_{proposals}"] = median_seconds(
                lambda: planner.predict_fn(actions, planner.state), max(3, repeats[proposals]))
        trainer = Trainer(model, model_dir)
        batch = bench_planet.training_batch(model)
        seconds["train_step"] = median_seconds(lambda: trainer.train_step(batch), repeats["train"])
    return seconds


def compare_to_planet(
    results: dict[str, dict[str, float]], planet: dict[str, float], batch: int
) -> None:
    """Print SV2P's costs as multiples of PlaNet's, per call and per training row."""
    for key, planet_seconds in planet.items():
        seconds = results[key]["seconds"]
        ratio = seconds / planet_seconds
        line = f"SV2P / PlaNet, {key}: {seconds:.3f} s / {planet_seconds:.3f} s = {ratio:.1f}x"
        if key == "train_step":
            sv2p_rows = batch * (INPUT_LENGTH + OUTPUT_LENGTH)
            planet_rows = bench_planet.BATCH * bench_planet.DURATION
            line += (f" per step; {ratio * planet_rows / sv2p_rows:.1f}x per training row "
                     f"({sv2p_rows} rows against {planet_rows})")
        print(line, flush=True)


def report(name: str, seconds: float, flops: float, peak: float) -> dict[str, float]:
    rate = flops / seconds
    print(f"{name}: {seconds:.3f} s, {flops / 1e9:.1f} GFLOP, "
          f"{rate / 1e9:.1f} GFLOP/s = {rate / peak:.2f} of dense matmul", flush=True)
    return {"seconds": seconds, "flops": flops, "ratio_to_matmul": rate / peak}


if __name__ == "__main__":
    run_script(main, __doc__)
