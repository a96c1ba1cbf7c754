"""A run's scores and training metrics as plain rows: ``<output_dir>/metrics.jsonl``.

:class:`MetricsLogPlugin` (``wm.plugins`` entry point ``metrics``) appends
one JSON object per line at the end of each iteration's phase, so a run can
be plotted or compared with any tool, without TensorBoard:

* ``phase``: ``"train"`` or ``"eval"`` (as the loop names them);
* ``env_steps``: the loop's global step (training environment steps so far);
* ``time``: seconds since the epoch;
* ``wall_s``: wall-clock seconds since the run started (its ``wm_run_configured``);
  a resumed run counts on from its file's last row, so the time between that
  row and the kill is left out;
* ``scores``: each new episode's undiscounted return, in order;
* every scalar the loop reported (``score``, ``collect_seconds``,
  ``planning_quality/...``);
* in a ``train`` row after training: ``model_step`` (the world model's last
  train step) and ``model/<metric>``, the mean of each training metric over
  the steps since the previous row.

Each row is written with one ``write`` to a file opened for appending; a
resumed run appends to the same file (after a newline, if a killed run left
a torn row), repeating the row of an iteration it repeats.
:func:`read_metrics` skips lines that do not parse.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict

import numpy as np

from wm_core.api.hooks import hookimpl

__all__ = ["METRICS_FILE", "MetricsLogPlugin", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
_clock = time.monotonic  # wall_s's clock (a test replaces it)


class MetricsLogPlugin:
    """Appends the rows of the module docs; idle outside a run."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._train_metrics: dict[str, list[float]] = defaultdict(list)
        self._model_step: int | None = None
        self._started = 0.0  # the _clock() reading at wall_s 0

    @hookimpl
    def wm_run_configured(self, output_dir: str, operative_config: str) -> None:
        self._path = os.path.join(output_dir, METRICS_FILE)
        if _ends_torn(self._path):
            self._append(b"\n")  # a killed run's torn row stays on a line of its own
        earlier = read_metrics(output_dir) if os.path.exists(self._path) else []
        self._started = _clock() - max((row.get("wall_s", 0.0) for row in earlier), default=0.0)

    @hookimpl
    def wm_train_step(self, step: int, metrics: dict[str, float]) -> None:
        self._model_step = step
        for name, value in metrics.items():
            self._train_metrics[name].append(float(value))

    @hookimpl
    def wm_iteration_end(
        self, phase: str, global_step: int, episodes: list, predictions: list, scalars: dict
    ) -> None:
        if self._path is None:
            return
        row = {
            "phase": phase,
            "env_steps": int(global_step),
            "time": time.time(),
            "wall_s": _clock() - self._started,
            "scores": [float(np.sum(episode["reward"])) for episode in episodes],
            **{name: float(value) for name, value in scalars.items()},
        }
        if self._train_metrics:
            row["model_step"] = self._model_step
            row.update({f"model/{name}": float(np.mean(values))
                        for name, values in self._train_metrics.items()})
            self._train_metrics.clear()
        self._append((json.dumps(row) + "\n").encode())

    def _append(self, data: bytes) -> None:
        descriptor = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)

    @hookimpl
    def wm_run_end(self, output_dir: str) -> None:
        self._path = None
        self._train_metrics.clear()


def _ends_torn(path: str) -> bool:
    """Whether ``path`` exists and its last byte is not a newline."""
    try:
        with open(path, "rb") as file:
            file.seek(-1, os.SEEK_END)
            return file.read(1) != b"\n"
    except (FileNotFoundError, OSError):  # missing, or empty (seek before the start)
        return False


def read_metrics(output_dir: str) -> list[dict]:
    """The rows of ``<output_dir>/metrics.jsonl`` in order; lines that do not parse (a torn
    last line) are skipped."""
    rows = []
    with open(os.path.join(output_dir, METRICS_FILE)) as file:
        for line in file:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
