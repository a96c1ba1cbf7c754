"""TD-MPC + MPPI on the point task, both drawings, several seeds: the gap closed per run.

The runs of ``tests/test_learning.py`` (which keeps one seed per drawing in
the suite) on more seeds, with their wall-clock times::

    python plugins/wm_tdmpc/benchmarks/learning_point.py --seeds 0 1 2

Prints one line per run and the processor's flags (``lscpu``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from test_learning import DRAWINGS, learn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--drawings", nargs="+", default=sorted(DRAWINGS), choices=sorted(DRAWINGS))
    args = parser.parse_args()
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    print(next((line for line in flags.splitlines() if line.startswith("Flags")), "Flags: unknown"))
    for drawing in args.drawings:
        for seed in args.seeds:
            start = time.time()
            with tempfile.TemporaryDirectory() as directory:
                score = learn(DRAWINGS[drawing](), pathlib.Path(directory), seed)
            print(f"{drawing} seed {seed}: {score} ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
