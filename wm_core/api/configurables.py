"""Gin glue: hand a world model object's functions to configs.

Gin cannot read attributes, so a config that builds a world model once
(``MODEL = @model/singleton()``) passes its parts to a planner with::

    cem.CEM.predict_fn = @wm.predict_fn()
    wm.predict_fn.model = %MODEL

Each function returns the bound method of the model (see
:class:`wm_core.api.contracts.WorldModel`); ``wm.propose_fn`` only for a
model that has the optional ``propose_fn``.
"""

from __future__ import annotations

from typing import Any, Callable

import gin

from wm_core.api.contracts import (
    ObserveFn,
    PredictBatchFn,
    PredictFn,
    ProposeFn,
    ResetFn,
    TrainFn,
    WorldModel,
)

__all__ = ["reset_fn", "observe_fn", "predict_fn", "predict_batch_fn", "propose_fn", "train_fn"]


def _model_function(attribute: str, returns: Any) -> Callable[[WorldModel], Any]:
    """A gin configurable ``wm.<attribute>(model)`` that returns ``model.<attribute>``."""

    def read(model: WorldModel) -> Any:
        return getattr(model, attribute)

    read.__name__ = read.__qualname__ = attribute
    read.__doc__ = f"``model.{attribute}``: the bound method a config hands to a planner or loop."
    read.__annotations__ = {"model": WorldModel, "return": returns}
    return gin.configurable(attribute, module="wm")(read)


reset_fn = _model_function("reset_fn", ResetFn)
observe_fn = _model_function("observe_fn", ObserveFn)
predict_fn = _model_function("predict_fn", PredictFn)
predict_batch_fn = _model_function("predict_batch_fn", PredictBatchFn)
propose_fn = _model_function("propose_fn", ProposeFn)  # optional: models that propose
train_fn = _model_function("train_fn", TrainFn)
