"""TensorBoard summaries of episodes and predictions, without TensorFlow.

:func:`visualize` (``train_eval.visualize`` of the original World Models
Library) writes, for one phase of an iteration, into ``summary_dir``:

* every scalar of ``scalars`` under its own name;
* ``episode_<e>/video``: the episode's frames as an animated GIF;
* ``episode_<e>/open_loop/decision_<t>``: for the first decision ``t`` whose
  prediction carries ``image`` and for the middle decision of the episode
  (``T // 2``, if it carries ``image`` too), a GIF whose frame ``j`` is
  *truth | prediction | absolute error*: episode row ``t + 1 + j`` beside the
  predicted ``image[j]`` (frames past the episode's end are dropped);
* ``episode_<e>/reward``: a PNG plot of the true reward over the episode's
  rows and the one-step-ahead predicted reward ``predictions[t]["reward"][0]``
  drawn at row ``t + 1``;
* ``reward_prediction_mse``: the mean squared error of that one-step
  alignment, pooled over every decision with a prediction.

Alignment follows :mod:`wm_core.rollout.simulate`: ``predictions[e][t]`` was made on
episode row ``t`` and its row ``j`` refers to episode row ``t + 1 + j``.
Decisions without a prediction (``None``, e.g. the random planner) are
skipped; when there is none at all, only scalars and videos are written.

:class:`TensorBoardPlugin` writes these summaries from the run's hooks.
"""

from __future__ import annotations

import io
import os
from typing import Any, Sequence

import gin
import numpy as np
from PIL import Image, ImageDraw

from wm_core.reporting import summaries
from wm_core.api.contracts import Episode, Predictions
from wm_core.api.hooks import hookimpl

__all__ = [
    "visualize",
    "encode_gif",
    "open_loop_frames",
    "open_loop_decisions",
    "one_step_rewards",
    "reward_plot",
    "TensorBoardPlugin",
]

_TRUE_COLOR = (31, 119, 180)
_PREDICTED_COLOR = (255, 127, 14)


def _rgb_frames(frames: Any, what: str) -> np.ndarray:
    """``frames`` as ``uint8 [N, H, W, 3]`` (grey frames are repeated)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(
            f"{what} must be uint8 [N, H, W, 1 or 3], got {frames.dtype} {frames.shape}"
        )
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """Animated, looping GIF of ``uint8 [N, H, W, 3]`` frames.

    Frames with at most 256 colours are kept exactly; others are quantised
    (fast octree).  GIF merges identical consecutive frames into one longer
    frame, so a decoder may see fewer than ``N`` frames.
    """
    frames = _rgb_frames(frames, "GIF frames")
    if len(frames) == 0:
        raise ValueError("a GIF needs at least one frame, got 0")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    images = [Image.fromarray(frame).quantize(method=Image.Quantize.FASTOCTREE) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000 / fps)),
        loop=0,
    )
    return buffer.getvalue()


def _encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _prediction_images(prediction: Predictions | None) -> np.ndarray | None:
    if prediction is None or "image" not in prediction:
        return None
    return _rgb_frames(prediction["image"], "prediction['image'] ([H, h, w, C])")


def open_loop_decisions(episode_predictions: Sequence[Predictions | None]) -> list[int]:
    """Decisions to show as open-loop videos: the first one whose prediction
    has ``image`` and the middle decision ``T // 2`` if it has one too."""
    with_images = [t for t, p in enumerate(episode_predictions) if _prediction_images(p) is not None]
    if not with_images:
        return []
    middle = len(episode_predictions) // 2
    return [with_images[0]] + ([middle] if middle in with_images[1:] else [])


def open_loop_frames(episode: Episode, prediction: Predictions, decision: int) -> np.ndarray:
    """``uint8 [n, H, 3 W, 3]`` frames *truth | prediction | |error|*.

    Frame ``j`` shows episode row ``decision + 1 + j`` and the predicted
    ``image[j]`` (resized with nearest neighbours to the episode's frame size
    if the model predicts another size); ``n = min(H', T - decision)``.
    """
    truth_all = _rgb_frames(episode["image"], "episode['image']")
    predicted = _prediction_images(prediction)
    if predicted is None:
        raise ValueError(f"the prediction of decision {decision} has no 'image'")
    last_row = len(truth_all) - 1
    if not 0 <= decision < last_row:
        raise ValueError(f"decision {decision} is outside the episode's decisions 0..{last_row - 1}")
    count = min(len(predicted), last_row - decision)
    truth = truth_all[decision + 1 : decision + 1 + count]
    height, width = truth.shape[1:3]
    if predicted.shape[1:3] != (height, width):
        predicted = np.stack(
            [np.asarray(Image.fromarray(f).resize((width, height), Image.NEAREST)) for f in predicted]
        )
    predicted = predicted[:count]
    error = np.abs(truth.astype(np.int16) - predicted.astype(np.int16)).astype(np.uint8)
    return np.concatenate([truth, predicted, error], axis=2)


def one_step_rewards(
    episode: Episode, episode_predictions: Sequence[Predictions | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, true, predicted)``: for every decision ``t`` with a prediction,
    row ``t + 1``, the episode's ``reward[t + 1]`` and the prediction's
    ``reward[0]`` (int64 / float32 / float32 ``[D]``)."""
    rows, predicted = [], []
    for decision, prediction in enumerate(episode_predictions):
        if prediction is None:
            continue
        if "reward" not in prediction:
            raise ValueError(f"the prediction of decision {decision} has no 'reward'")
        rows.append(decision + 1)
        predicted.append(np.asarray(prediction["reward"]).reshape(-1)[0])
    rows = np.asarray(rows, np.int64)
    true = np.asarray(episode["reward"], np.float32)[rows]
    return rows, true, np.asarray(predicted, np.float32)


def reward_plot(
    true_reward: np.ndarray,
    rows: np.ndarray,
    predicted: np.ndarray,
    size: tuple[int, int] = (480, 240),
) -> np.ndarray:
    """``uint8 [height, width, 3]`` plot of the episode's true reward (rows
    ``1..T``, blue line) and the predicted rewards at ``rows`` (orange)."""
    width, height = size
    left, right, top, bottom = 56, 10, 24, 22
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    true_reward = np.asarray(true_reward, np.float64)
    values = np.concatenate([true_reward[1:], np.asarray(predicted, np.float64)])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if high - low < 1e-6:
        low, high = low - 1.0, high + 1.0
    last_row = max(len(true_reward) - 1, 1)

    def point(row: float, value: float) -> tuple[float, float]:
        x = left + (row - 1) / max(last_row - 1, 1) * (width - left - right)
        y = top + (high - value) / (high - low) * (height - top - bottom)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline=(160, 160, 160))
    true_points = [point(row, true_reward[row]) for row in range(1, len(true_reward))]
    if len(true_points) > 1:
        draw.line(true_points, fill=_TRUE_COLOR, width=2)
    for row, value in zip(rows, predicted):
        x, y = point(float(row), float(value))
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=_PREDICTED_COLOR)
    draw.text((4, top - 6), f"{high:.3g}", fill="black")
    draw.text((4, height - bottom - 6), f"{low:.3g}", fill="black")
    draw.text((left, height - bottom + 4), "row 1", fill="black")
    draw.text((width - right - 60, height - bottom + 4), f"row {last_row}", fill="black")
    draw.text((left, 4), "true reward", fill=_TRUE_COLOR)
    draw.text((left + 110, 4), "predicted, 1 step ahead", fill=_PREDICTED_COLOR)
    return np.asarray(image)


def _check_alignment(episodes: Sequence[Episode], predictions: Sequence | None) -> list[list]:
    """Per episode, its list of per-decision predictions (``None`` entries
    when ``predictions`` is ``None``), after checking the lengths."""
    if predictions is None:
        return [[None] * (len(episode["image"]) - 1) for episode in episodes]
    if len(predictions) != len(episodes):
        raise ValueError(
            f"predictions must hold one list per episode: got {len(predictions)} "
            f"lists for {len(episodes)} episodes"
        )
    aligned = []
    for index, (episode, episode_predictions) in enumerate(zip(episodes, predictions)):
        decisions = len(episode["image"]) - 1
        if episode_predictions is None:
            episode_predictions = [None] * decisions
        if len(episode_predictions) != decisions:
            raise ValueError(
                f"episode {index} has {decisions} decisions (T+1 = {decisions + 1} rows) "
                f"but {len(episode_predictions)} predictions"
            )
        aligned.append(list(episode_predictions))
    return aligned


@gin.configurable(module="wm")
def visualize(
    summary_dir: str | os.PathLike[str],
    global_step: int,
    episodes: Sequence[Episode],
    predictions: Sequence[Sequence[Predictions | None]] | None,
    scalars: dict[str, float],
    fps: float = 20.0,
    max_episodes: int | None = None,
) -> None:
    """Write the summaries listed in the module docs at ``global_step``.

    :param summary_dir: directory of the event files (a TensorBoard run);
        created if missing; events are appended to this process's open file.
    :param episodes: episode dicts (``image`` ``uint8 [T+1, H, W, C]``,
        ``reward`` ``float32 [T+1]``).
    :param predictions: per episode, the ``T`` per-decision predictions
        (dicts of ``[H', ...]`` arrays or ``None``); ``None`` for no model.
    :param scalars: name → number, each written under its name.
    :param fps: frame rate of the GIF videos.
    :param max_episodes: videos and plots only for the first ``max_episodes``
        episodes (``None``: all); ``reward_prediction_mse`` uses every episode.
    """
    if isinstance(episodes, dict):
        raise ValueError("episodes must be a list of episode dicts, got a single dict")
    for index, episode in enumerate(episodes):
        if "image" not in episode or "reward" not in episode:
            raise ValueError(f"episode {index} needs 'image' and 'reward', has {sorted(episode)}")
    aligned = _check_alignment(episodes, predictions)
    writer = summaries.writer(summary_dir)
    for name, value in scalars.items():
        writer.add_scalar(name, value, global_step)
    squared_errors = []
    for index, (episode, episode_predictions) in enumerate(zip(episodes, aligned)):
        rows, true, predicted = one_step_rewards(episode, episode_predictions)
        squared_errors.append((true - predicted) ** 2)
        if max_episodes is None or index < max_episodes:
            _write_episode(writer, f"episode_{index}", episode, episode_predictions, global_step, fps)
            if len(rows):
                plot = reward_plot(episode["reward"], rows, predicted)
                writer.add_image(f"episode_{index}/reward", _encode_png(plot), *plot.shape[:2], global_step)
    squared_errors = np.concatenate(squared_errors) if squared_errors else np.zeros(0)
    if squared_errors.size:
        writer.add_scalar("reward_prediction_mse", float(squared_errors.mean()), global_step)
    writer.flush()


def _write_episode(
    writer: summaries.EventFileWriter,
    prefix: str,
    episode: Episode,
    episode_predictions: list,
    step: int,
    fps: float,
) -> None:
    frames = _rgb_frames(episode["image"], f"{prefix} image")
    writer.add_image(f"{prefix}/video", encode_gif(frames, fps), *frames.shape[1:3], step)
    for decision in open_loop_decisions(episode_predictions):
        video = open_loop_frames(episode, episode_predictions[decision], decision)
        tag = f"{prefix}/open_loop/decision_{decision}"
        writer.add_image(tag, encode_gif(video, fps), *video.shape[1:3], step)


class TensorBoardPlugin:
    """Writes a run's TensorBoard summaries from its hooks (``wm.plugins``
    entry point ``tensorboard``).

    Below ``<output_dir>/summaries``: the operative gin config as text (step
    0), ``model/`` the world model's ``train/<metric>`` scalars at its train
    step, ``<phase>/`` what :func:`visualize` writes at the end of each
    iteration's phase.  Does nothing before ``wm_run_configured`` and after
    ``wm_run_end``.
    """

    def __init__(self) -> None:
        self._summary_root: str | None = None
        self._summary_dirs: set[str] = set()

    def _writer(self, name: str) -> summaries.EventFileWriter:
        summary_dir = os.path.join(self._summary_root, name)
        self._summary_dirs.add(summary_dir)
        return summaries.writer(summary_dir)

    @hookimpl
    def wm_run_configured(self, output_dir: str, operative_config: str) -> None:
        self._summary_root = os.path.join(output_dir, "summaries")
        writer = self._writer("")
        # Indented lines are a Markdown code block: gin comments stay comments.
        text = "\n".join("    " + line for line in operative_config.splitlines())
        writer.add_text("operative_config", text, 0)
        writer.flush()

    @hookimpl
    def wm_train_step(self, step: int, metrics: dict[str, float]) -> None:
        if self._summary_root is None:
            return
        writer = self._writer("model")
        for name, value in metrics.items():
            writer.add_scalar(f"train/{name}", value, step)
        writer.flush()

    @hookimpl
    def wm_iteration_end(
        self, phase: str, global_step: int, episodes: list, predictions: list, scalars: dict
    ) -> None:
        if self._summary_root is None:
            return
        summary_dir = os.path.join(self._summary_root, phase)
        self._summary_dirs.add(summary_dir)
        visualize(summary_dir, global_step, episodes, predictions, scalars)

    @hookimpl
    def wm_run_end(self, output_dir: str) -> None:
        for summary_dir in self._summary_dirs:
            summaries.close(summary_dir)
        self._summary_root, self._summary_dirs = None, set()
