"""Run every benchmark; each prints medians and ratios measured in the same run.

    .venv/bin/python benchmarks/run.py [--quick] [name ...]

Names: simulate, data, planner, planet, sv2p (default: all whose plugins are installed).
"""

from __future__ import annotations

import importlib
import os
import sys

BENCHMARKS = {
    "simulate": "bench_simulate",
    "data": "bench_data",
    "planner": "bench_planner",
    "planet": "bench_planet",
    "sv2p": "bench_sv2p",
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [arg for arg in argv if not arg.startswith("--")] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    results = {}
    for name in names:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ImportError as error:
            print(f"   skipped: {error} (is its plugin installed?)")
            continue
        results[name] = module.main(quick=quick)
    print("== summary")
    for name, figures in results.items():
        print(f"   {name}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
