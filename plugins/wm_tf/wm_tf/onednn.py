"""TensorFlow's oneDNN CPU kernels, on unless the user chose: call before importing TensorFlow.

TensorFlow's Linux x86 wheels run convolutions and matmuls with oneDNN by
default only on processors with AVX512_VNNI, AVX512_BF16 or AMX; on the
others (AVX2-only ones) they use Eigen's kernels, the slower ones for wm's
small-channel pixel networks (``docs/design.md``, "oneDNN on AVX2 processors").

The switch is the environment variable ``TF_ENABLE_ONEDNN_OPTS``, read once,
when TensorFlow is imported.  oneDNN's results equal Eigen's up to float
rounding (another summation order), so a run that mixes processes with and
without it is not bitwise reproducible: the variable is only set while
TensorFlow is not yet imported, and child processes inherit it.
"""

from __future__ import annotations

import os
import sys

__all__ = ["VARIABLE", "prefer_onednn"]

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` unless it is set or TensorFlow is already imported.

    The TensorFlow plugins call this in their package ``__init__``, before
    any of their modules imports TensorFlow.  Set the variable to ``0``
    yourself to keep Eigen's kernels.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(VARIABLE, "1")
