"""Throughput of :class:`wm_core.data.sampling.ChunkIterator` against raw NumPy slicing.

Run: ``.venv/bin/python benchmarks/bench_data.py [--quick]``.

Writes synthetic episodes (64x64x3 uint8 frames of a square moving over a
gradient, so they compress like rendered frames) to a temporary directory,
then measures, in the same run:

* ``baseline``: batches/s of fancy-indexing the same episodes held as one
  in-memory array (the floor cost of copying the chunks out);
* ``iterator``: batches/s of ``ChunkIterator(prefetch=0)`` once its files are
  loaded, and the ratio to the baseline;
* ``first_batch``: seconds for the first batch (reads every file);
* ``trainer_wait``: seconds a trainer whose step takes ``train_step_s``
  waits in ``next()`` per batch, without and with ``prefetch=2``.

Each figure is the median of several repeats.  Every result is also printed
as one JSON line ``{"bench": "data", "metric": ..., "value": ..., "unit": ...}``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from typing import Callable

import numpy as np

from wm_core.data import npz, sampling

from processor import run_script

SIZE = 64


def synthetic_episode(seed: int, rows: int) -> dict[str, np.ndarray]:
    """An episode of ``rows`` frames: a bright square moving over a gradient."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    background = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    image = np.repeat(background[None], rows, axis=0)
    corner = (np.cumsum(rng.integers(-1, 2, (rows, 2)), axis=0) % (SIZE - 8)).astype(int)
    for t, (top, left) in enumerate(corner):
        image[t, top : top + 8, left : left + 8] = (255, 64, 0)
    return {
        "image": image,
        "action": rng.uniform(-1, 1, (rows, 6)).astype(np.float32),
        "reward": rng.uniform(0, 1, rows).astype(np.float32),
    }


def batches_per_second(next_batch: Callable[[], object], batches: int) -> float:
    """Like a training loop, keeps the previous batch alive while the next is made
    (dropping it would let the allocator hand back the same, cache-hot buffer)."""
    start = time.perf_counter()
    batch = None
    for _ in range(batches):
        batch = next_batch()  # noqa: F841 — the old batch is freed only now
    return batches / (time.perf_counter() - start)


def fancy_indexing_sampler(
    episodes: list[dict[str, np.ndarray]], batch_size: int, chunk_length: int
) -> Callable[[], dict[str, np.ndarray]]:
    """The baseline: chunks cut from one stacked in-memory array per key."""
    stacked = {key: np.stack([e[key] for e in episodes]) for key in episodes[0]}
    count, rows = stacked["reward"].shape
    rng = np.random.default_rng(0)
    offsets = np.arange(chunk_length)

    def next_batch() -> dict[str, np.ndarray]:
        index = rng.integers(count, size=(batch_size, 1))
        steps = rng.integers(rows - chunk_length + 1, size=(batch_size, 1)) + offsets
        return {key: value[index, steps] for key, value in stacked.items()}

    return next_batch


def trainer_wait(iterator: sampling.ChunkIterator, batches: int, train_step_s: float) -> float:
    """Median seconds spent in ``next()`` by a trainer that works ``train_step_s``."""
    waits = []
    batch = None
    for _ in range(batches):
        start = time.perf_counter()
        batch = next(iterator)  # noqa: F841 — held during the step, as a trainer would
        waits.append(time.perf_counter() - start)
        time.sleep(train_step_s)  # stands in for a training step that releases the GIL
    return statistics.median(waits)


def report(results: dict[str, float], metric: str, value: float, unit: str) -> None:
    results[metric] = value
    print(json.dumps({"bench": "data", "metric": metric, "value": round(value, 6), "unit": unit}))


def main(quick: bool = False) -> dict[str, float]:
    """Runs the benchmark; returns ``{metric: value}`` (also printed)."""
    episodes_count, rows = (20, 201) if quick else (100, 501)
    batch_size, chunk_length = 50, 50
    repeats, batches = (3, 5) if quick else (5, 20)
    train_step_s = 0.05
    episodes = [synthetic_episode(seed, rows) for seed in range(episodes_count)]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        npz.save_dictionaries(episodes, directory)
        report(results, "save_s_per_episode", (time.perf_counter() - start) / episodes_count, "s")

        baseline = fancy_indexing_sampler(episodes, batch_size, chunk_length)
        baseline_rates, iterator_rates, first_batch = [], [], []
        for repeat in range(repeats):
            iterator = sampling.ChunkIterator(directory, batch_size, chunk_length, seed=repeat)
            start = time.perf_counter()
            next(iterator)
            first_batch.append(time.perf_counter() - start)
            baseline_rates.append(batches_per_second(baseline, batches))
            iterator_rates.append(batches_per_second(lambda: next(iterator), batches))
        report(results, "first_batch_s", statistics.median(first_batch), "s")
        report(results, "baseline_batches_per_s", statistics.median(baseline_rates), "1/s")
        report(results, "iterator_batches_per_s", statistics.median(iterator_rates), "1/s")
        report(results, "iterator_over_baseline",
               results["iterator_batches_per_s"] / results["baseline_batches_per_s"], "ratio")

        for prefetch in (0, 2):
            waits = []
            for repeat in range(repeats):
                with sampling.ChunkIterator(directory, batch_size, chunk_length, seed=repeat,
                                       prefetch=prefetch) as iterator:
                    next(iterator)  # files loaded
                    waits.append(trainer_wait(iterator, batches, train_step_s))
            report(results, f"trainer_wait_s_prefetch{prefetch}", statistics.median(waits), "s")
    print(
        f"data: {episodes_count} episodes x {rows} rows, batches of {batch_size}x{chunk_length} "
        f"64x64x3 chunks, median of {repeats} x {batches} batches\n"
        f"  iterator {results['iterator_batches_per_s']:.1f} batches/s, baseline "
        f"{results['baseline_batches_per_s']:.1f} batches/s (ratio "
        f"{results['iterator_over_baseline']:.2f}); first batch {results['first_batch_s']:.2f} s\n"
        f"  trainer wait per {train_step_s * 1e3:.0f} ms step: "
        f"{results['trainer_wait_s_prefetch0'] * 1e3:.1f} ms without prefetch, "
        f"{results['trainer_wait_s_prefetch2'] * 1e3:.1f} ms with prefetch=2"
    )
    return results


if __name__ == "__main__":
    run_script(main, __doc__)
