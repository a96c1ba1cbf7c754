"""The functional API of the original World Models Library: ``create_planet_*_fn(model, ...)``.

::

    model = RecurrentStateSpaceModel(task=task)
    reset_fn = create_planet_reset_fn(model)
    observe_fn = create_planet_observe_fn(model, model_dir, strategy)
    predict_fn = create_planet_predict_fn(model, strategy)
    train_fn = create_planet_train_fn(model, 100, 50, 50, 1e-3, model_dir, strategy)

Each function is a thin one over :class:`wm_planet.world_model.PlaNet` (the
world model, also importable from here, and the ``wm.world_models`` entry
point ``planet``): it returns the function of a :class:`PlaNet` made for
``model`` with the settings given.  State and predictions are
:class:`PlaNet`'s.  All functions of one model must be given the same
strategy (its variables live there).

Everything here is gin-configurable under the module ``planet``
(``planet.RecurrentStateSpaceModel``, ``planet.create_planet_train_fn`` ...);
``planet.MirroredStrategy`` (also ``tf.distribute.MirroredStrategy``, the
name the original library's configs use) is ``tf.distribute.MirroredStrategy``.
"""

from __future__ import annotations

from typing import Any

import gin
import tensorflow as tf

from wm_core.api.contracts import ObserveFn, PredictBatchFn, PredictFn, ResetFn, TrainFn
from wm_core.deprecation import renamed_parameters
from wm_planet.model import RecurrentStateSpaceModel
from wm_planet.world_model import PlaNet, train_loop

__all__ = [
    "PlaNet",
    "RecurrentStateSpaceModel",
    "create_planet_reset_fn",
    "create_planet_observe_fn",
    "create_planet_predict_fn",
    "create_planet_predict_batch_fn",
    "create_planet_train_fn",
]

gin.external_configurable(tf.distribute.MirroredStrategy, "MirroredStrategy", module="planet")
# The original library's configs name it as gin.tf did (gin.tf itself no longer imports).
gin.external_configurable(tf.distribute.MirroredStrategy, "MirroredStrategy", module="tf.distribute")


@gin.configurable(module="planet")
def create_planet_reset_fn(model: RecurrentStateSpaceModel) -> ResetFn:
    """``reset_fn(**kwargs) -> state``: the zero state; kwargs are ignored."""
    return PlaNet(model.task, model=model).reset_fn


@gin.configurable(module="planet")
def create_planet_observe_fn(
    model: RecurrentStateSpaceModel,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    sample: bool = True,
) -> ObserveFn:
    """``observe_fn(last_frames, last_actions, last_rewards, state) -> state``.

    Filters the ``T`` rows (``uint8 [T, 64, 64, C]``, ``float32 [T, A]``,
    ``[T]``) with the posterior, row by row, starting from ``state``; with
    ``sample``, the stochastic state is drawn.  Before filtering, restores
    the newest checkpoint in ``model_dir`` if a new one appeared.
    """
    return PlaNet(model.task, model_dir, model=model, strategy=strategy, sample=sample).build().observe_fn


@gin.configurable(module="planet")
def create_planet_predict_fn(
    model: RecurrentStateSpaceModel,
    strategy: tf.distribute.Strategy | None = None,
    return_frames: bool = False,
    sample: bool = True,
    jit_compile: bool = True,
) -> PredictFn:
    """``predict_fn(future_actions, state) -> {"reward": float32 [P, H]}``.

    Rolls the prior open-loop from ``state`` for all ``P`` proposals in one
    compiled call; with ``sample`` the stochastic states are drawn, as PlaNet
    plans, else the prior means are used (deterministic).  With
    ``return_frames``, also ``image uint8 [P, H, 64, 64, C]``.
    ``jit_compile``: compile the rollout with XLA.
    """
    return PlaNet(
        model.task, model=model, strategy=strategy, sample=sample, return_frames=return_frames,
        jit_compile=jit_compile,
    ).build().predict_fn


@gin.configurable(module="planet")
def create_planet_predict_batch_fn(
    model: RecurrentStateSpaceModel,
    strategy: tf.distribute.Strategy | None = None,
    return_frames: bool = False,
    sample: bool = True,
    jit_compile: bool = True,
) -> PredictBatchFn:
    """``predict_batch_fn(future_actions float32 [N, P, H, A], states) -> {"reward": float32 [N, P, H]}``.

    The batched form of :func:`create_planet_predict_fn` for ``N`` states:
    row ``i`` equals ``predict_fn(future_actions[i], states[i])`` (exactly
    with ``sample=False``; with sampling, another draw), computed as one
    rollout of ``N * P`` proposals.
    """
    return PlaNet(
        model.task, model=model, strategy=strategy, sample=sample, return_frames=return_frames,
        jit_compile=jit_compile,
    ).build().predict_batch_fn


@gin.configurable(module="planet")
@renamed_parameters(chunk_length="duration")
def create_planet_train_fn(
    model: RecurrentStateSpaceModel,
    train_steps: int,
    batch: int,
    duration: int,
    learning_rate: float,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    **settings: Any,
) -> TrainFn:
    """``train_fn(data_path) -> None``: :func:`wm_planet.world_model.train_loop`
    with these settings (``duration``: rows per training chunk; ``settings``:
    its other keyword arguments, e.g. ``clip_norm``, ``learning_rate_ramp``, ``seed``)."""
    return train_loop(
        model, model_dir, strategy, train_steps=train_steps, batch=batch, duration=duration,
        learning_rate=learning_rate, **settings,
    )
