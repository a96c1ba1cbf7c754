"""``ScoreLog``: a hook plugin writing ``<output_dir>/scores.csv``."""

from __future__ import annotations

import os

from wm_core import hookimpl


class ScoreLog:
    """Appends ``phase,global_step,score`` after every phase that has a score."""

    def __init__(self):
        self.path: str | None = None

    @hookimpl
    def wm_run_configured(self, output_dir: str, operative_config: str) -> None:
        self.path = os.path.join(output_dir, "scores.csv")

    @hookimpl
    def wm_iteration_end(self, phase, global_step, episodes, predictions, scalars) -> None:
        if self.path is None or "score" not in scalars:
            return
        with open(self.path, "a") as file:
            file.write(f"{phase},{global_step},{scalars['score']:.6f}\n")
