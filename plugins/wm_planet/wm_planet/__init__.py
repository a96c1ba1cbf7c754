"""wm-planet: PlaNet's recurrent state-space model as a wm world model.

The functional API of the original World Models Library lives in :mod:`wm_planet.planet`::

    model = planet.RecurrentStateSpaceModel(task=task)
    reset_fn = planet.create_planet_reset_fn(model)
    observe_fn = planet.create_planet_observe_fn(model, model_dir)
    predict_fn = planet.create_planet_predict_fn(model)
    train_fn = planet.create_planet_train_fn(model, 100, 50, 50, 1e-3, model_dir)

Modules, one job each: :mod:`~wm_planet.preprocess` (5-bit images),
:mod:`~wm_planet.networks` (encoder, decoder, reward head),
:mod:`~wm_planet.rssm` (the recurrent state-space cell),
:mod:`~wm_planet.model` (the model and its loss), :mod:`~wm_planet.training`
(distributed optimisation and checkpoints), :mod:`~wm_planet.checkpoints`
(observe picks up new checkpoints).
"""

from __future__ import annotations

from wm_core.onednn import prefer_onednn

prefer_onednn()  # before any module of this package imports TensorFlow

__version__ = "0.1.0"
