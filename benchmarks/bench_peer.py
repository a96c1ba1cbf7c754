"""wm side by side with the PyTorch peer, mbrl-lib 0.2.0 (same PlaNet sizes), alternating A B A B.

Two costs, each measured by the peer's own scripts (``shared/peers``) and
by the same protocol on wm's side, one fresh process per measurement:

* **training step**: one PlaNet update (loss, backward, Adam) on a batch of
  ``B x T`` random 64x64 frames, action dim 6: warm-up step, then the
  median of 3 steps (``planet_train_cpu.py`` / wm's ``Trainer.train_step``);
* **CEM decision**: horizon 12, 10 iterations, 1000 proposals, top 10%,
  action dim 6, observe + plan, mean of 5 decisions after warm-up
  (``planet_cem_cpu.py`` / ``wm_cem.CEM`` with PlaNet's predict and observe).

The two sides run in turn (wm, peer, wm, peer, ...) for ``--rounds``
rounds; the machine is shared, so only figures of the same run compare.
Printed: every round's pair, the medians over the rounds, the ratio of
the medians (wm / peer) with the range of the per-round ratios and the
ratio of the fastest runs (the least disturbed by other load: PyTorch's
OpenMP threads slow down far more than TensorFlow's when another process
takes a core), and the targets: training step <= 1.0x the peer (goal
0.7x), decision <= 0.6x.  ``--baseline CHECKOUT`` adds a third arm, the wm
code of another checkout (before/after figures in the same run).

The peer lives in its own virtual environment, outside the repository
(recipe in ``shared/peers/README.md``)::

    python3 -m venv /work/peers/.venv-mbrl
    /work/peers/.venv-mbrl/bin/pip install "pip<24.1"
    /work/peers/.venv-mbrl/bin/pip install mbrl==0.2.0
    /work/peers/.venv-mbrl/bin/pip install torch==2.13.0 hydra-core==1.3.2 omegaconf==2.3.0 "numpy<2"

    python benchmarks/bench_peer.py --peer-python /work/peers/.venv-mbrl/bin/python [--quick]

``--peer-python`` defaults to ``$WM_PEER_PYTHON``, then to
``<peers dir>/.venv-mbrl/bin/python``; ``--peers-dir`` (the peer's scripts)
to ``$WM_PEERS_DIR``, then to ``../shared/peers`` beside the repository.
Without a working peer the benchmark says why and exits 0 (skipped).

Full run: training step 50 x 50 (the published batch) and the decision,
3 rounds.  ``--quick``: training step 50 x 10 and the decision, 2 rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from processor import describe
from wm_tf.onednn import prefer_onednn

prefer_onednn()  # wm's child processes inherit it, as from wm-run; the peer ignores it

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TRAIN_TARGET, TRAIN_GOAL, DECISION_TARGET = 1.0, 0.7, 0.6
PROPOSALS, ITERATIONS, ACTION_DIM = 1000, 10, 6


# -- wm's side (runs in a child process with the project's interpreter) -----------


def wm_train_step(batch: int, duration: int) -> None:
    """Like the peer's ``planet_train_cpu.py``: warm-up, then the median of 3 steps."""
    import tempfile
    from types import SimpleNamespace

    import gymnasium as gym
    import numpy as np

    from wm_planet.model import RecurrentStateSpaceModel
    from wm_planet.training import Trainer

    task = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))
    model = RecurrentStateSpaceModel(task=task)
    rng = np.random.default_rng(0)
    data = {
        "image": rng.integers(0, 256, (batch, duration, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, duration, ACTION_DIM)).astype(np.float32),
        "reward": rng.uniform(0, 8, (batch, duration)).astype(np.float32),
    }
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(model, model_dir)
        trainer.train_step(data)  # warm-up (traces)
        times = []
        for _ in range(3):
            start = time.time()
            trainer.train_step(data)
            times.append(time.time() - start)
    print(f"wm PlaNet train step {batch}x{duration}: median {sorted(times)[1] * 1000:.0f} ms")


def wm_cem_decision(proposals: int, iterations: int) -> None:
    """Like the peer's ``planet_cem_cpu.py``: mean of 5 observe + plan decisions after warm-up."""
    import tempfile
    from types import SimpleNamespace

    import gymnasium as gym
    import numpy as np

    from wm_cem.cem import CEM
    from wm_core.planning.objectives import DiscountedReward
    from wm_planet import planet
    from wm_planet.model import RecurrentStateSpaceModel

    task = SimpleNamespace(action_space=gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))
    model = RecurrentStateSpaceModel(task=task)
    with tempfile.TemporaryDirectory() as model_dir:
        cem = CEM(
            predict_fn=planet.create_planet_predict_fn(model),
            observe_fn=planet.create_planet_observe_fn(model, model_dir),
            reset_fn=planet.create_planet_reset_fn(model), task=task,
            objective_fn=DiscountedReward(), horizon=12, iterations=iterations,
            proposals=proposals, fraction=0.1, seed=0,
        )
        cem.reset(seed=0)
        rng = np.random.default_rng(0)

        def frame():
            return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)

        action = cem(frame(), np.zeros(ACTION_DIM, np.float32), 0.0)[0]  # warm-up
        action = cem(frame(), np.asarray(action, np.float32), 0.0)[0]
        count, start = 5, time.time()
        for _ in range(count):
            action = cem(frame(), np.asarray(action, np.float32), 0.0)[0]
        seconds = (time.time() - start) / count
    print(f"wm CEM pop={proposals} H=12 iters={iterations}: {seconds * 1000:.0f} ms per action")


# -- the comparison --------------------------------------------------------------


def _run(command: list[str], cwd: str, pattern: str, pythonpath: str | None = None) -> float:
    """Run ``command``; the milliseconds its output reports (``pattern``'s group), in seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    found = re.search(pattern, completed.stdout)
    if completed.returncode != 0 or not found:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {completed.returncode}):\n"
            f"{completed.stdout[-1500:]}{completed.stderr[-3000:]}"
        )
    return float(found.group(1)) / 1000.0


def baseline_path(checkout: str) -> str:
    """``PYTHONPATH`` that makes another checkout's wm_core and plugins win over the installed ones."""
    checkout = os.path.abspath(checkout)
    plugins = os.path.join(checkout, "plugins")
    folders = [os.path.join(plugins, name) for name in sorted(os.listdir(plugins))]
    return os.pathsep.join([checkout, *folders])


def peer_problem(peer_python: str, peers_dir: str) -> str | None:
    """Why the peer cannot run here, or ``None``."""
    scripts = ("planet_train_cpu.py", "planet_cem_cpu.py", "planet.yaml")
    missing = [name for name in scripts if not os.path.isfile(os.path.join(peers_dir, name))]
    if missing:
        return f"the peer's scripts {missing} are not in {peers_dir!r} (set --peers-dir or WM_PEERS_DIR)"
    if not (os.path.isfile(peer_python) and os.access(peer_python, os.X_OK)):
        return (
            f"no peer interpreter at {peer_python!r}: install mbrl-lib 0.2.0 as "
            f"{os.path.join(peers_dir, 'README.md')} says and pass its python with --peer-python "
            f"or WM_PEER_PYTHON"
        )
    check = subprocess.run(
        [peer_python, "-c", "import mbrl.models, mbrl.planning, torch, hydra"],
        capture_output=True, text=True,
    )
    if check.returncode != 0:
        return f"{peer_python} cannot import mbrl-lib: {check.stderr.strip().splitlines()[-1:]}"
    return None


def compare(name: str, wm: list[str], peer: list[str], pattern: str, rounds: int,
            peers_dir: str, target: float, goal: float | None = None,
            baseline: str | None = None) -> dict[str, float]:
    """Alternate ``wm`` (and the ``baseline`` checkout's wm) with ``peer`` for ``rounds``
    rounds; print and return medians and ratios."""
    arms = [("wm", wm, REPO, None)]
    if baseline:
        arms.append(("wm baseline", wm, REPO, baseline_path(baseline)))
    arms.append(("mbrl-lib", peer, peers_dir, None))
    seconds: dict[str, list[float]] = {label: [] for label, *_ in arms}
    for index in range(rounds):
        for label, command, cwd, pythonpath in arms:
            seconds[label].append(_run(command, cwd, pattern, pythonpath))
        peer_time = seconds["mbrl-lib"][-1]
        print(f"  {name}, round {index + 1}: " + ", ".join(
            f"{label} {values[-1] * 1e3:.0f} ms" + (f" ({values[-1] / peer_time:.2f}x)" if label != "mbrl-lib" else "")
            for label, values in seconds.items()) + f"; {describe().split('; ')[-1]}", flush=True)
    peer_median = statistics.median(seconds["mbrl-lib"])
    result = {"peer_seconds": peer_median}
    for label in seconds:
        if label == "mbrl-lib":
            continue
        ratios = [a / b for a, b in zip(seconds[label], seconds["mbrl-lib"])]
        median = statistics.median(seconds[label])
        ratio = median / peer_median
        verdict = f"target <= {target}x: {'met' if ratio <= target else 'NOT met'}"
        if goal is not None:
            verdict += f", goal {goal}x: {'met' if ratio <= goal else 'not met'}"
        print(f"{name}: median over {rounds} alternations {label} {median * 1e3:.0f} ms, mbrl-lib "
              f"{peer_median * 1e3:.0f} ms -> {label} {ratio:.2f}x the peer (per round "
              f"{min(ratios):.2f}-{max(ratios):.2f}x; fastest runs {min(seconds[label]) * 1e3:.0f} vs "
              f"{min(seconds['mbrl-lib']) * 1e3:.0f} ms: "
              f"{min(seconds[label]) / min(seconds['mbrl-lib']):.2f}x); {verdict}", flush=True)
        key = "wm" if label == "wm" else "baseline"
        result.update({f"{key}_seconds": median, f"{key}_ratio": ratio})
    return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="training step 50 x 10, 2 rounds")
    parser.add_argument("--peer-python", default=os.environ.get("WM_PEER_PYTHON"))
    parser.add_argument("--peers-dir", default=os.environ.get(
        "WM_PEERS_DIR", os.path.join(os.path.dirname(REPO), "shared", "peers")))
    parser.add_argument("--rounds", type=int, default=None, help="alternations (default 3; quick 2)")
    parser.add_argument("--only", choices=("train", "decision"), default=None)
    parser.add_argument("--batch", default=None, help="training batch BxT (default 50x50; quick 50x10)")
    parser.add_argument("--baseline", help="also time the wm code of this checkout (e.g. a git "
                        "worktree of an older commit) in every round")
    parser.add_argument("--wm-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wm_child:
        kind, *sizes = args.wm_child
        (wm_train_step if kind == "train" else wm_cem_decision)(*map(int, sizes))
        return {}

    print(describe(), flush=True)
    peers_dir = os.path.abspath(args.peers_dir)
    peer_python = args.peer_python or os.path.join(peers_dir, ".venv-mbrl", "bin", "python")
    problem = peer_problem(peer_python, peers_dir)
    if problem:
        print(f"peer comparison SKIPPED: {problem}")
        return {}
    rounds = args.rounds or (2 if args.quick else 3)
    batch, duration = map(int, (args.batch or ("50x10" if args.quick else "50x50")).split("x"))
    threads = str(os.cpu_count())
    config = os.path.join(peers_dir, "planet.yaml")
    me = [sys.executable, os.path.abspath(__file__), "--wm-child"]
    results = {}
    if args.only in (None, "train"):
        results["train_step"] = compare(
            f"PlaNet training step {batch}x{duration}",
            me + ["train", str(batch), str(duration)],
            [peer_python, "planet_train_cpu.py", threads, config, str(batch), str(duration)],
            r"median (\d+) ms", rounds, peers_dir, TRAIN_TARGET, TRAIN_GOAL, args.baseline,
        )
    if args.only in (None, "decision"):
        results["cem_decision"] = compare(
            f"CEM decision ({PROPOSALS} proposals, {ITERATIONS} iterations)",
            me + ["cem", str(PROPOSALS), str(ITERATIONS)],
            [peer_python, "planet_cem_cpu.py", threads, str(PROPOSALS), str(ITERATIONS), config],
            r"(\d+) ms per action", rounds, peers_dir, DECISION_TARGET, baseline=args.baseline,
        )
    print(describe())
    return results


if __name__ == "__main__":
    main()
