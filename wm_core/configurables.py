"""Gin glue: hand a world model object's functions to configs.

Gin cannot read attributes, so a config that builds a world model once
(``MODEL = @model/singleton()``) passes its parts to a planner with::

    cem.CEM.predict_fn = @wm.predict_fn()
    wm.predict_fn.model = %MODEL

Each function returns the bound method of the model (see
:class:`wm_core.contracts.WorldModel`).
"""

from __future__ import annotations

import gin

from wm_core.contracts import ObserveFn, PredictBatchFn, PredictFn, ResetFn, TrainFn, WorldModel

__all__ = ["reset_fn", "observe_fn", "predict_fn", "train_fn"]


@gin.configurable(module="wm")
def reset_fn(model: WorldModel) -> ResetFn:
    return model.reset_fn


@gin.configurable(module="wm")
def observe_fn(model: WorldModel) -> ObserveFn:
    return model.observe_fn


@gin.configurable(module="wm")
def predict_fn(model: WorldModel) -> PredictFn:
    return model.predict_fn


@gin.configurable(module="wm")
def predict_batch_fn(model: WorldModel) -> PredictBatchFn:
    return model.predict_batch_fn


@gin.configurable(module="wm")
def train_fn(model: WorldModel) -> TrainFn:
    return model.train_fn
