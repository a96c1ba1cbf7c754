"""Progress bars for a run, as a hook plugin (``wm.plugins`` entry point
``progress``).

One tqdm bar per episode counts the planner's decisions and shows the
episode's score when it ends; one bar counts the world model's training
steps and shows its latest metrics, closed when the next episode starts.
Bars are quiet unless stderr is a terminal and the ``CI`` environment
variable is unset (or ``"0"``/``"false"``).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm

from wm_core.hooks import hookimpl

__all__ = ["ProgressPlugin", "progress_enabled"]


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether bars should be drawn on ``stream`` (default ``sys.stderr``):
    it is a terminal and ``CI`` is unset, empty, ``"0"`` or ``"false"``."""
    stream = stream if stream is not None else sys.stderr
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    isatty = getattr(stream, "isatty", None)
    return not in_ci and bool(isatty and isatty())


class ProgressPlugin:
    """tqdm bars driven by the run's hooks.

    :param enabled: ``None`` (default) decides per bar with
        :func:`progress_enabled`; ``True``/``False`` force it.
    :param file: where bars are drawn (default: ``sys.stderr`` at the time a
        bar opens).
    """

    def __init__(self, enabled: bool | None = None, file: TextIO | None = None) -> None:
        self._enabled = enabled
        self._file = file
        self._episode_bars: dict[tuple[str, int], Any] = {}
        self._train_bar: Any = None

    def _bar(self, **kwargs: Any) -> Any:
        file = self._file if self._file is not None else sys.stderr
        enabled = self._enabled if self._enabled is not None else progress_enabled(file)
        return tqdm(file=file, disable=not enabled, dynamic_ncols=True, **kwargs)

    def _episode_bar(self, phase: str, episode_index: int) -> Any:
        key = (phase, episode_index)
        if key not in self._episode_bars:
            self._close_train_bar()
            self._episode_bars[key] = self._bar(
                desc=f"{phase} episode {episode_index}", unit=" decisions"
            )
        return self._episode_bars[key]

    def _close_train_bar(self) -> None:
        if self._train_bar is not None:
            self._train_bar.close()
            self._train_bar = None

    @hookimpl
    def wm_episode_start(self, phase: str, episode_index: int, seed: int) -> None:
        self._episode_bar(phase, episode_index)

    @hookimpl
    def wm_planner_decided(self, phase: str, episode_index: int, step: int) -> None:
        self._episode_bar(phase, episode_index).update(1)

    @hookimpl
    def wm_episode_end(self, phase: str, episode_index: int, score: float) -> None:
        bar = self._episode_bars.pop((phase, episode_index), None)
        if bar is not None:
            bar.set_postfix(score=f"{score:.4g}", refresh=False)
            bar.close()

    @hookimpl
    def wm_train_step(self, step: int, metrics: dict[str, float]) -> None:
        if self._train_bar is None:
            self._train_bar = self._bar(desc="train", unit=" steps", initial=max(step - 1, 0))
        self._train_bar.set_postfix(
            {name: f"{float(value):.4g}" for name, value in metrics.items()}, refresh=False
        )
        self._train_bar.update(max(step - self._train_bar.n, 0))

    @hookimpl
    def wm_run_end(self, output_dir: str) -> None:
        for bar in self._episode_bars.values():
            bar.close()
        self._episode_bars.clear()
        self._close_train_bar()
