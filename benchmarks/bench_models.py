"""World-model costs side by side: one training update and one planner decision of
PlaNet + CEM and of TD-MPC2 + MPPI, at the sizes of their CPU configs.

Both agents are built in this one process from their cartpole-balance CPU
configs (``CONFIGS``: ``configs/planet_cem_cartpole_balance_cpu.gin`` and
``configs/tdmpc_mppi_cartpole_balance_cpu.gin``, 64x64 frames, one action),
so each has its config's network sizes, batch and planner search:

* **update**: the model's ``Trainer.train_step`` on an in-memory random batch
  of the config's size (PlaNet: ``batch`` chunks of ``duration`` rows;
  TD-MPC: ``batch`` chunks of its ``chunk_length`` rows); no data
  loading, no checkpoint;
* **decision**: the eval planner's call on one frame (observe, then plan;
  PlaNet's CEM also decodes the chosen plan's frames, as in its eval
  episodes), repeated as the steps of one episode.

After a warm-up (tracing), the repeats alternate: PlaNet update, TD-MPC
update, PlaNet decision, TD-MPC decision, so a change in the machine's load
hits both models alike.  Prints each cost's median and range, the ratio
TD-MPC / PlaNet of the medians, and what one iteration of each config costs
at those medians (its updates per iteration, and one episode's decisions).

``python benchmarks/bench_models.py [--quick]``; ``quick`` times fewer
repeats with the same sizes.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any, Callable

from wm_tf.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # as the plugins ask for when imported first (wm_tf.onednn)

import gin  # noqa: E402
import numpy as np  # noqa: E402

from wm_core.loops.config import configure  # noqa: E402

from processor import run_script  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: model -> (config, the gin macro of its model, the planner's name).
CONFIGS = {
    "planet": ("planet_cem_cartpole_balance_cpu.gin", "MODEL", "CEM"),
    "tdmpc": ("tdmpc_mppi_cartpole_balance_cpu.gin", "MODEL", "MPPI"),
}
EPISODE_DECISIONS = 125  # cartpole's 1000 simulator steps at action repeat 8


@gin.configurable("parts", module="bench_models")
def _parts(model: Any, planner: Any) -> tuple[Any, Any]:
    """The configured model and eval planner (bound to the config's macros below)."""
    return model, planner


class Agent:
    """One config's model, eval planner, training update and decision, ready to time.

    :param name: a key of :data:`CONFIGS`.
    :param output_dir: the run directory its macros (``model_dir``) point into.
    """

    def __init__(self, name: str, output_dir: str):
        config, model_macro, self.planner_name = CONFIGS[name]
        configure(
            [os.path.join(ROOT, "configs", config)],
            [f"bench_models.parts.model = %{model_macro}", "bench_models.parts.planner = %BASE_PLANNER"],
            output_dir,
        )
        model, self.planner = _parts()
        rng = np.random.default_rng(0)
        if name == "planet":
            from wm_planet.training import Trainer

            batch, rows = (gin.query_parameter(f"planet.create_planet_train_fn.{key}")
                           for key in ("batch", "duration"))
            self.train_steps = gin.query_parameter("planet.create_planet_train_fn.train_steps")
            trainer = Trainer(model, gin.query_parameter("%model_dir"))
            frame_size, action_dim = model.frame_size, model.action_dim
        else:
            batch = gin.query_parameter("tdmpc.TDMPC.batch")
            self.train_steps = gin.query_parameter("tdmpc.TDMPC.train_steps")
            trainer, rows = model.trainer, model.trainer.chunk_length
            frame_size, action_dim = model.frame_shape, model.action_dim
        self.shape = f"{batch} x {rows} rows"
        self.batch = {
            "image": rng.integers(0, 256, (batch, rows, *frame_size), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (batch, rows, action_dim)).astype(np.float32),
            "reward": rng.uniform(0, 1, (batch, rows)).astype(np.float32),
        }
        self.frame = rng.integers(0, 256, tuple(frame_size), dtype=np.uint8)
        self._train_step = trainer.train_step
        self.planner.reset(seed=0)

    def update(self) -> None:
        self._train_step(self.batch)

    def decide(self) -> None:
        self.planner(self.frame, np.zeros(1, np.float32), 0.0)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(quick: bool = False) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        agents = {name: Agent(name, os.path.join(folder, name)) for name in CONFIGS}
        for agent in agents.values():  # trace and warm up
            agent.update()
            agent.decide()
        seconds: dict[tuple[str, str], list[float]] = {
            (cost, name): [] for cost in ("update", "decision") for name in agents}
        for _ in range(3 if quick else 15):
            for cost in ("update", "decision"):
                for name, agent in agents.items():
                    seconds[cost, name].append(timed(agent.update if cost == "update" else agent.decide))
    medians = {key: statistics.median(values) for key, values in seconds.items()}
    for (cost, name), values in seconds.items():
        agent = agents[name]
        what = f"train_step on {agent.shape}" if cost == "update" else f"{agent.planner_name} call on one frame"
        print(f"{name} {cost} ({what}): median {medians[cost, name] * 1e3:.1f} ms "
              f"(range {min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}, {len(values)} repeats)")
    for cost in ("update", "decision"):
        print(f"ratio tdmpc / planet, {cost}: {medians[cost, 'tdmpc'] / medians[cost, 'planet']:.2f}")
    for name, agent in agents.items():
        train, act = agent.train_steps * medians["update", name], EPISODE_DECISIONS * medians["decision", name]
        print(f"{name} per iteration at these medians: {agent.train_steps} updates {train:.1f} s, "
              f"one episode's {EPISODE_DECISIONS} decisions {act:.1f} s")
    return {f"{name}_{cost}": {"seconds": value} for (cost, name), value in medians.items()}


if __name__ == "__main__":
    run_script(main, __doc__)
