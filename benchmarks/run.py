"""Run every benchmark; each prints medians and ratios measured in the same run.

    .venv/bin/python benchmarks/run.py [--quick] [name ...]

Names: simulate, data, planner, planet, models, sv2p, vector, peer (default: all).
``models`` times PlaNet's and TD-MPC2's update and decision side by side.  ``peer`` is
wm side by side with mbrl-lib (``bench_peer.py``); it needs the peer's
interpreter (``WM_PEER_PYTHON``) and says it is skipped without one.
Every benchmark prints the processor's flags (``processor.py``) with its figures.
These are costs; the quality measurements run on their own (minutes to
hours): ``learning_curves.py`` (agents' learning curves on DeepMind Control)
and ``cartpole_predictions.py`` (PlaNet's and SV2P's held-out open-loop
predictions on cartpole against baselines).
Each benchmark runs in its own process (MuJoCo's renderer and TensorFlow must
not share one; see wm_core/tasks/process.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

BENCHMARKS = {
    "simulate": "bench_simulate",
    "data": "bench_data",
    "planner": "bench_planner",
    "planet": "bench_planet",
    "models": "bench_models",
    "sv2p": "bench_sv2p",
    "vector": "bench_vector",
    "peer": "bench_peer",
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [arg for arg in argv if not arg.startswith("--")] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(__file__))
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        script = os.path.join(folder, BENCHMARKS[name] + ".py")
        result = subprocess.run([sys.executable, script, *(["--quick"] if quick else [])])
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"== failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
