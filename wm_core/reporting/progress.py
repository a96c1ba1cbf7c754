"""Progress of a run, as a hook plugin (``wm.plugins`` entry point
``progress``).

On a terminal: one tqdm bar per episode counts the planner's decisions and
shows the episode's score when it ends; one bar counts the world model's
training steps and shows its latest metrics, closed when the next episode
starts.  Bars are drawn when stderr is a terminal and the ``CI`` environment
variable is unset (or ``"0"``/``"false"``).  Anywhere else (a log file, a
batch job, CI) each bar is replaced by one plain line written when it would
close, e.g.::

    train episode 3: 125 decisions, score 239.7, 14.2 s
    train: steps 301-400, loss=1.234, kl=3.001, 41.0 s

A training stretch is timed from the previous line (the hooks have no
"training starts" event), so its time includes saving the episodes before it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from wm_core.api.hooks import hookimpl

__all__ = ["ProgressPlugin", "format_score", "progress_enabled"]


def format_score(score: float) -> str:
    """A score (an episode's return, or a mean of returns) as every line of a run prints it."""
    return f"{score:.1f}"


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether bars should be drawn on ``stream`` (default ``sys.stderr``):
    it is a terminal and ``CI`` is unset, empty, ``"0"`` or ``"false"``."""
    stream = stream if stream is not None else sys.stderr
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    isatty = getattr(stream, "isatty", None)
    return not in_ci and bool(isatty and isatty())


@dataclasses.dataclass
class _Stretch:
    """An episode or a stretch of training: its bar (``None`` when bars are
    not drawn) and what its plain line reports."""

    bar: Any
    first_step: int = 0
    last_step: int = 0
    decisions: int = 0
    postfix: dict[str, str] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def seconds(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


class ProgressPlugin:
    """Bars or plain lines, driven by the run's hooks (see module docs).

    :param enabled: ``None`` (default) draws bars where
        :func:`progress_enabled` says so and writes lines elsewhere;
        ``True``/``False`` force bars/lines.
    :param file: where bars and lines go (default: ``sys.stderr`` at the
        time of writing).
    """

    def __init__(self, enabled: bool | None = None, file: TextIO | None = None) -> None:
        self._enabled = enabled
        self._file = file
        self._episodes: dict[tuple[str, int], _Stretch] = {}
        self._training: _Stretch | None = None
        self._last_closed = time.monotonic()  # training is timed from here: it has no start hook

    def _stream(self) -> TextIO:
        return self._file if self._file is not None else sys.stderr

    def _open(self, **bar_options: Any) -> _Stretch:
        stream = self._stream()
        enabled = self._enabled if self._enabled is not None else progress_enabled(stream)
        bar = tqdm(file=stream, dynamic_ncols=True, **bar_options) if enabled else None
        return _Stretch(bar)

    def _close(self, stretch: _Stretch, line: str) -> None:
        self._last_closed = time.monotonic()
        if stretch.bar is None:
            print(line, file=self._stream(), flush=True)
        else:
            stretch.bar.set_postfix(stretch.postfix, refresh=False)
            stretch.bar.close()

    def _episode(self, phase: str, episode_index: int) -> _Stretch:
        key = (phase, episode_index)
        if key not in self._episodes:
            self._close_training()
            self._episodes[key] = self._open(desc=f"{phase} episode {episode_index}", unit=" decisions")
        return self._episodes[key]

    def _close_training(self) -> None:
        training, self._training = self._training, None
        if training is not None:
            metrics = ", ".join(f"{name}={value}" for name, value in training.postfix.items())
            steps = f"steps {training.first_step}-{training.last_step}"
            self._close(training, f"train: {steps}, {metrics}, {training.seconds()}")

    @hookimpl
    def wm_episode_start(self, phase: str, episode_index: int, seed: int) -> None:
        self._episode(phase, episode_index)

    @hookimpl
    def wm_planner_decided(self, phase: str, episode_index: int, step: int) -> None:
        episode = self._episode(phase, episode_index)
        episode.decisions += 1
        if episode.bar is not None:
            episode.bar.update(1)

    @hookimpl
    def wm_episode_end(self, phase: str, episode_index: int, score: float) -> None:
        episode = self._episodes.pop((phase, episode_index), None)
        if episode is not None:
            episode.postfix = {"score": format_score(score)}
            self._close(episode, f"{phase} episode {episode_index}: {episode.decisions} decisions, "
                                 f"score {format_score(score)}, {episode.seconds()}")

    @hookimpl
    def wm_train_step(self, step: int, metrics: dict[str, float]) -> None:
        if self._training is None:
            self._training = self._open(desc="train", unit=" steps", initial=max(step - 1, 0))
            self._training.first_step = step
            self._training.started = self._last_closed
        training = self._training
        training.last_step = step
        training.postfix = {name: f"{float(value):.4g}" for name, value in metrics.items()}
        if training.bar is not None:
            training.bar.set_postfix(training.postfix, refresh=False)
            training.bar.update(max(step - training.bar.n, 0))

    @hookimpl
    def wm_run_end(self, output_dir: str) -> None:
        for episode in self._episodes.values():  # unfinished: no score to report
            if episode.bar is not None:
                episode.bar.close()
        self._episodes.clear()
        self._close_training()
