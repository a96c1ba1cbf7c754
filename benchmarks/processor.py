"""The processor facts every benchmark prints with its figures (one helper, shared).

A timing, or a ratio to a FLOP limit, does not carry across processors: the
same TensorFlow code is several times slower relative to the peer on a
2-core AVX2-only machine than on one with AVX-512.  So each benchmark says
which vector and matrix extensions its machine has::

    from processor import describe
    print(describe())
    # processor: AMD EPYC, 2 cores; avx2 yes, avx512f no, avx512_bf16 no, amx no;
    #   TF_ENABLE_ONEDNN_OPTS=1; load 1.9

(``benchmarks/`` is on ``sys.path`` when a benchmark runs as a script.)
So is ``TF_ENABLE_ONEDNN_OPTS`` (``wm_tf.onednn``): TensorFlow's oneDNN
kernels train PlaNet ~1.5x faster than its Eigen ones on AVX2-only
processors, where TensorFlow leaves them off unless told.  The load average
is part of the line too: another process on the machine slows every figure,
so medians and ratios measured in the same run are what count.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Callable

from wm_tf.onednn import VARIABLE

__all__ = ["FLAGS", "flags", "describe", "run_script"]

#: The extensions that decide which kernels TensorFlow and PyTorch use here.
#: ``amx`` is any of the ``amx_*`` flags (tile, bf16, int8).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx")


def _cpuinfo() -> tuple[str, set[str]]:
    """Model name and flags of the first processor in ``/proc/cpuinfo`` (Linux)."""
    model, found = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features"):
                    found = set(value.split())
                    break
    except OSError:
        pass
    return model, found


def flags() -> dict[str, bool]:
    """``{flag: present}`` for each of :data:`FLAGS`."""
    _, found = _cpuinfo()
    present = {name: name in found for name in FLAGS[:-1]}
    present["amx"] = any(name.startswith("amx") for name in found)
    return present


def describe() -> str:
    """One line: processor model, core count, each of :data:`FLAGS`, the oneDNN
    switch, 1-minute load average."""
    model, _ = _cpuinfo()
    marks = ", ".join(f"{name} {'yes' if value else 'no'}" for name, value in flags().items())
    try:
        load = f"; load {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    kernels = f"{VARIABLE}={os.environ.get(VARIABLE, 'unset')}"
    return f"processor: {model}, {os.cpu_count()} cores; {marks}; {kernels}{load}"


def run_script(main: Callable[..., object], doc: str, quick_help: str = "a small, fast variant") -> None:
    """Run a benchmark's ``main(quick=...)`` as a script.

    ``--quick`` comes from the command line (``doc``'s first line is the
    ``--help`` text), and the :func:`describe` line is printed before and
    after, so a change in load during the run shows.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    quick = parser.parse_args().quick
    print(describe(), flush=True)
    main(quick=quick)
    print(describe(), flush=True)


if __name__ == "__main__":
    print(describe())
