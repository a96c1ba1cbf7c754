"""The contract checks, written once: episodes, model inputs, predictions, scores.

Each function checks one thing :mod:`wm_core.api.contracts` writes down and
raises :class:`~wm_core.api.contracts.ContractError` (a ``ValueError``) saying
what was expected and what came, prefixed with ``where`` (who received or
returned it: ``"episode 3"``, ``"OracleWorldModel.observe"``,
``"predict_fn"``).  Functions that take arrays return them as the contract's
dtypes, so a caller checks and converts in one line.

They serve both sides, like gymnasium's passive environment checker serves
``check_env`` and its wrapper: the contract kit (:mod:`wm_core.testing`)
calls them with ``strict=True`` — dtypes and array types must be exactly
the contract's — and run-time code calls them on every use (episode files
in :mod:`wm_core.data.npz`, world-model inputs in :mod:`wm_core.models.oracle`,
predictions and scores in the search planners of ``wm-cem``), where the
default ``strict=False`` converts what converts safely (a ``float64``
reward to ``float32``) and still refuses wrong shapes, missing keys and
non-finite numbers.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from wm_core.api.contracts import ContractError, Predictions

__all__ = [
    "REQUIRED_EPISODE_KEYS",
    "check_episode",
    "check_observe_args",
    "check_future_actions",
    "check_predictions",
    "check_plan_prediction",
    "check_scores",
    "check_action",
    "check_decide_args",
    "check_int_at_least",
    "check_num_envs",
]

#: Keys every episode has: dtype and number of dimensions.
REQUIRED_EPISODE_KEYS: dict[str, tuple[type[np.generic], int]] = {
    "image": (np.uint8, 4),
    "action": (np.float32, 2),
    "reward": (np.float32, 1),
}
_RESERVED_KEYS = frozenset({"file", "allow_pickle"})  # np.savez's own parameters


def check_int_at_least(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``, or a ``ValueError`` naming it ``name``.

    Python and NumPy integers pass, and floats with an integral value (``2.0``);
    booleans, fractions, NaN and infinities do not.
    """
    try:
        valid = not isinstance(value, bool) and int(value) == value >= minimum
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` (environments stepped together) as an ``int >= 1`` (:func:`check_int_at_least`)."""
    return check_int_at_least("num_envs", num_envs)


def _describe(value: Any) -> str:
    """``dtype shape`` of an array-like, or its type name."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} {dtype} {tuple(shape)}"
    return type(value).__name__


# --------------------------------------------------------------------------- episodes


def check_episode(episode: Any, where: str = "episode") -> int:
    """Checks ``episode`` against the episode format; returns its steps ``T``.

    An episode is a ``dict[str, np.ndarray]`` with at least ``image uint8
    [T+1, H, W, C]``, ``action float32 [T+1, A]``, ``reward float32
    [T+1]``, every array with the same number of rows ``T + 1 >= 1``, and
    keys that can name ``.npz`` members.
    """
    if not isinstance(episode, Mapping):
        raise ContractError(
            f"{where} is a {type(episode).__name__}, expected dict[str, np.ndarray]"
        )
    missing = [key for key in REQUIRED_EPISODE_KEYS if key not in episode]
    if missing:
        raise ContractError(f"{where} lacks key(s) {missing}; it has {sorted(episode)}")
    rows = None
    for key, value in episode.items():
        if not isinstance(key, str) or not key or key in _RESERVED_KEYS or "/" in key:
            raise ContractError(f"{where} has an invalid key {key!r}")
        if not isinstance(value, np.ndarray):
            raise ContractError(
                f"{where} key {key!r} is a {type(value).__name__}, expected np.ndarray"
            )
        if value.dtype == object or value.ndim == 0:
            raise ContractError(
                f"{where} key {key!r} must be a numeric array with a time axis, "
                f"got {value.dtype} {value.shape}"
            )
        if rows is None:
            rows, first = len(value), key
        elif len(value) != rows:
            raise ContractError(
                f"{where} key {key!r} has {len(value)} rows but {first!r} has {rows}"
            )
    for key, (dtype, ndim) in REQUIRED_EPISODE_KEYS.items():
        value = episode[key]
        if value.dtype != dtype or value.ndim != ndim:
            raise ContractError(
                f"{where} key {key!r} must be {np.dtype(dtype)} with {ndim} dims, "
                f"got {value.dtype} {value.shape}"
            )
    if rows == 0:
        raise ContractError(f"{where} has no rows")
    return rows - 1


# --------------------------------------------------------------------------- world-model inputs


def _real_array(value: Any, name: str, expected: str, where: str) -> np.ndarray:
    """``value`` as an array of real numbers (not bool), or a ContractError."""
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise ContractError(f"{where}: {name} must be {expected}, got {type(value).__name__} ({error})")
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ContractError(f"{where}: {name} must be {expected}, got {_describe(value)}")
    return array


def _float_actions(value: Any, name: str, lead: str, ndim: int, action_dim: int | None, where: str) -> np.ndarray:
    size = "A" if action_dim is None else f"A = {action_dim}"
    expected = f"float32 [{lead}, A] action vectors ({size})"
    try:
        actions = np.asarray(value)
    except Exception as error:
        raise ContractError(f"{where}: {name} must be {expected}, got {type(value).__name__} ({error})")
    if not np.issubdtype(actions.dtype, np.floating) or actions.ndim != ndim or (
        action_dim is not None and actions.shape[-1] != action_dim
    ):
        raise ContractError(
            f"{where}: {name} has shape {actions.shape} ({actions.dtype}), expected "
            f"float32 [{lead}, A] with {size}"
        )
    return actions.astype(np.float32, copy=False)


def check_observe_args(
    frames: Any,
    actions: Any,
    rewards: Any,
    *,
    frame_shape: Sequence[int] | None = None,
    action_dim: int | None = None,
    where: str = "observe_fn",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``observe_fn``'s ``last_frames, last_actions, last_rewards``, checked.

    ``frames`` ``uint8 [T, H, W, C]`` (``[H, W, C] = frame_shape`` when
    given), ``actions`` floating ``[T, A]`` (``A = action_dim`` when given),
    ``rewards`` real ``[T]``, the same ``T >= 1``.  Returns them as
    ``uint8``, ``float32``, ``float32`` arrays.
    """
    frames_array = np.asarray(frames) if hasattr(frames, "dtype") else None
    if frames_array is None or frames_array.dtype != np.uint8 or frames_array.ndim != 4:
        raise ContractError(
            f"{where}: last_frames must be uint8 [T, H, W, C], got {_describe(frames)}"
        )
    if frame_shape is not None and tuple(frames_array.shape[1:]) != tuple(frame_shape):
        raise ContractError(
            f"{where}: last_frames has frames of shape {tuple(frames_array.shape[1:])}, expected "
            f"{tuple(frame_shape)} (shape {frames_array.shape}, expected [T, "
            f"{', '.join(map(str, frame_shape))}])"
        )
    actions_array = _float_actions(actions, "last_actions", "T", 2, action_dim, where)
    rewards_array = _real_array(rewards, "last_rewards", "float32 [T]", where)
    count = len(frames_array)
    if count == 0:
        raise ContractError(f"{where}: no observed frame (last_frames has 0 rows; observe needs T >= 1)")
    if len(actions_array) != count or rewards_array.shape != (count,):
        raise ContractError(
            f"{where}: got {count} frames, actions {actions_array.shape} and rewards "
            f"{rewards_array.shape}; expected T = {count} rows of each ([T, A] and [T])"
        )
    return frames_array, actions_array, rewards_array.astype(np.float32, copy=False)


def check_future_actions(
    actions: Any, action_dim: int | None = None, where: str = "predict_fn", *, batch: bool = False
) -> np.ndarray:
    """``predict_fn``'s ``future_actions`` floating ``[P, H, A]`` (``batch``:
    ``predict_batch_fn``'s ``[N, P, H, A]``), as ``float32``."""
    lead = "N, P, H" if batch else "P, H"
    return _float_actions(actions, "future_actions", lead, 4 if batch else 3, action_dim, where)


# --------------------------------------------------------------------------- predictions and scores


def check_predictions(
    predictions: Any,
    proposals: int,
    horizon: int,
    where: str = "predict_fn",
    *,
    batch: int | None = None,
    strict: bool = False,
) -> Predictions:
    """``predict_fn``'s result for ``proposals`` x ``horizon`` actions, checked.

    A ``dict`` with ``reward`` ``float32 [P, H]`` (finite), optional
    ``image`` ``uint8 [P, H, h, w, C]`` and ``value`` ``float32 [P]``
    (finite); every other value an array with leading dims ``[P, H]``.  ``batch=N``: ``predict_batch_fn``'s result, leading
    dims ``[N, P, H]``.  ``strict`` (the kit): values must be NumPy arrays
    of exactly those dtypes; otherwise they are converted (``reward`` to
    ``float32``).  Returns the dict of NumPy arrays.
    """
    lead = (proposals, horizon) if batch is None else (batch, proposals, horizon)
    names = "[proposals, horizon]" if batch is None else "[batch, proposals, horizon]"
    letters = "[P, H" if batch is None else "[N, P, H"
    if not isinstance(predictions, Mapping) or "reward" not in predictions:
        keys = sorted(predictions) if isinstance(predictions, Mapping) else type(predictions).__name__
        raise ContractError(f"{where} must return a dict with 'reward' {letters}]; got {keys}")
    if strict and not isinstance(predictions, dict):
        raise ContractError(f"{where} must return a dict, got {type(predictions).__name__}")
    checked = {}
    for key, value in predictions.items():
        if strict and not isinstance(value, np.ndarray):
            raise ContractError(
                f"{where} returned predictions[{key!r}] as {type(value).__name__}, expected a NumPy array"
            )
        checked[key] = np.asarray(value)
    reward = checked["reward"]
    if reward.shape != lead:
        raise ContractError(
            f"{where} returned reward of shape {reward.shape}, expected {names} = {lead}"
        )
    if "value" in checked:
        value = checked["value"]
        if value.shape != lead[:-1] or not np.issubdtype(value.dtype, np.floating) or (
            strict and value.dtype != np.float32
        ) or not np.isfinite(value).all():
            raise ContractError(
                f"{where} returned predictions['value'] {value.dtype} {value.shape}, expected finite "
                f"float32 {letters[:-3]}] = {lead[:-1]} (one value per proposal)"
            )
        checked["value"] = value.astype(np.float32, copy=False)
    for key, array in checked.items():
        if key != "value" and array.shape[: len(lead)] != lead:
            raise ContractError(
                f"{where} returned {key!r} of shape {array.shape}, expected leading "
                f"dims {names} = {lead}"
            )
    if not (np.issubdtype(reward.dtype, np.floating) and (reward.dtype == np.float32 or not strict)):
        raise ContractError(
            f"{where} returned predictions['reward'] of dtype {reward.dtype}, expected float32 {letters}]"
        )
    reward = checked["reward"] = reward.astype(np.float32, copy=False)
    finite = np.isfinite(reward)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ContractError(
            f"{where} returned {int((~finite).sum())} NaN or infinite rewards of {reward.size} "
            f"(first at index {first}); predicted rewards must be finite"
        )
    if "image" in checked:
        image = checked["image"]
        if image.ndim != len(lead) + 3 or (strict and image.dtype != np.uint8):
            raise ContractError(
                f"{where} returned predictions['image'] {image.dtype} {image.shape}, expected "
                f"uint8 {letters}, h, w, C]"
            )
    return checked


def check_plan_prediction(prediction: Any, where: str = "planner", *, strict: bool = False) -> Predictions:
    """A planner's per-decision prediction: a ``dict`` of ``[H, ...]`` arrays
    (``reward`` ``float32 [H]``, ``image`` ``uint8 [H, h, w, C]``), checked
    as proposal 1 of 1 by :func:`check_predictions`."""
    if not isinstance(prediction, Mapping) or "reward" not in prediction:
        keys = sorted(prediction) if isinstance(prediction, Mapping) else type(prediction).__name__
        raise ContractError(f"{where} must return a prediction dict with 'reward' [H]; got {keys}")
    if strict:
        for key, value in prediction.items():
            if not isinstance(value, np.ndarray):
                raise ContractError(
                    f"{where} returned prediction[{key!r}] as {type(value).__name__}, expected a NumPy array"
                )
    one = {key: np.asarray(value)[None] for key, value in prediction.items()}
    horizon = one["reward"].shape[1] if one["reward"].ndim > 1 else 0
    one = check_predictions(one, 1, horizon, f"{where} (its prediction as proposal 1 of 1)", strict=strict)
    return {key: value[0] for key, value in one.items()}


def check_scores(scores: Any, proposals: int, where: str = "objective_fn", *, strict: bool = False) -> np.ndarray:
    """``objective_fn``'s result: finite ``float32 [P]`` (``strict``: a NumPy
    array of exactly that dtype; otherwise converted).  Returns the scores."""
    if strict and not isinstance(scores, np.ndarray):
        raise ContractError(
            f"{where} returned scores as {type(scores).__name__}, expected a NumPy array float32 "
            f"[proposals] = ({proposals},)"
        )
    array = np.asarray(scores)
    if array.shape != (proposals,):
        raise ContractError(
            f"{where} returned scores of shape {array.shape}, expected [proposals] = ({proposals},)"
        )
    if (strict and array.dtype != np.float32) or not np.issubdtype(array.dtype, np.number):
        raise ContractError(
            f"{where} returned scores of dtype {array.dtype}, expected float32 [proposals] = ({proposals},)"
        )
    invalid = ~np.isfinite(array)
    if invalid.any():
        raise ContractError(
            f"{where} returned NaN or infinite scores for {int(invalid.sum())} of {proposals} "
            f"proposals (first at index {int(np.argmax(invalid))})"
        )
    return array.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- planners


def check_action(
    action: Any, action_dim: int, low: np.ndarray, high: np.ndarray, discrete: bool, where: str = "planner"
) -> np.ndarray:
    """A decided action: ``float32 [A]`` within ``[low, high]``; one-hot if ``discrete``."""
    if not (isinstance(action, np.ndarray) and action.dtype == np.float32 and action.shape == (action_dim,)):
        raise ContractError(
            f"{where}: action must be float32 [{action_dim}], got {type(action).__name__} "
            f"{getattr(action, 'dtype', None)} {getattr(action, 'shape', None)}"
        )
    if not bool(np.all((action >= low) & (action <= high))):
        raise ContractError(f"{where}: action {action} outside [{low}, {high}]")
    if discrete and sorted(action.tolist()) != [0.0] * (action_dim - 1) + [1.0]:
        raise ContractError(f"{where}: discrete action {action} is not one-hot")
    return action


def check_decide_args(
    slots: Sequence[int],
    prev_images: Any,
    prev_actions: Any,
    prev_rewards: Any,
    num_slots: int,
    action_dim: int,
    where: str = "decide",
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """``BatchPlanner.decide``'s arguments, as a list and arrays of the contract dtypes.

    ``slots``: distinct slot numbers in ``[0, num_slots)``; ``prev_images``
    ``uint8 [N, H, W, C]``, ``prev_actions`` ``float32 [N, A]``,
    ``prev_rewards`` ``float32 [N]``, ``N = len(slots)``.
    """
    try:
        slots = [int(slot) for slot in slots]
    except (TypeError, ValueError) as error:
        raise ContractError(f"{where}: slots must be a sequence of integers, got {slots!r}") from error
    if len(set(slots)) != len(slots) or any(not 0 <= slot < num_slots for slot in slots):
        raise ContractError(f"{where}: slots must be distinct integers in [0, {num_slots}), got {slots}")
    count = len(slots)
    prev_images = np.asarray(prev_images)
    if prev_images.dtype != np.uint8 or prev_images.ndim != 4 or len(prev_images) != count:
        raise ContractError(
            f"{where}: prev_images must be uint8 [N, H, W, C] with N = {count} slots, got "
            f"{prev_images.dtype} {prev_images.shape}"
        )
    prev_actions = _float_actions(prev_actions, "prev_actions", "N", 2, action_dim, where)
    if len(prev_actions) != count:
        raise ContractError(
            f"{where}: prev_actions must be float32 [N, A] = ({count}, {action_dim}), got shape "
            f"{prev_actions.shape}"
        )
    prev_rewards = _real_array(prev_rewards, "prev_rewards", f"float32 [N] = ({count},)", where)
    if prev_rewards.shape != (count,):
        raise ContractError(
            f"{where}: prev_rewards must be float32 [N] = ({count},), got shape {prev_rewards.shape}"
        )
    return slots, prev_images, prev_actions, prev_rewards.astype(np.float32, copy=False)
