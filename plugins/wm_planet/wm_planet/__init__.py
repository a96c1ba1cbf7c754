"""wm-planet: PlaNet's recurrent state-space model as a wm world model.

The files every wm model plugin has, with the same roles:
:mod:`~wm_planet.networks` (the layers: encoder, decoder, reward head),
:mod:`~wm_planet.model` (the model assembled from them, and its loss),
:mod:`~wm_planet.training` (the training step: the
:class:`wm_core.loops.training.Trainer` that ``TrainLoop`` runs) and
:mod:`~wm_planet.world_model` (:class:`~wm_planet.world_model.PlaNet` on
:class:`wm_core.models.base.WorldModelBase`, and its training loop).
PlaNet's own: :mod:`~wm_planet.rssm` (the recurrent state-space cell),
:mod:`~wm_planet.noise` (random streams).  Frames are coded by
:mod:`wm_tf.images` (5 bits).

The functional API of the original World Models Library lives in :mod:`wm_planet.planet`::

    model = planet.RecurrentStateSpaceModel(task=task)
    reset_fn = planet.create_planet_reset_fn(model)
    observe_fn = planet.create_planet_observe_fn(model, model_dir)
    predict_fn = planet.create_planet_predict_fn(model)
    train_fn = planet.create_planet_train_fn(model, 100, 50, 50, 1e-3, model_dir)
"""

from __future__ import annotations

from wm_tf.onednn import prefer_onednn

prefer_onednn()  # before any module of this package imports TensorFlow

import wm_core  # noqa: E402,F401  (its import hook keeps this package's moved modules importable)

__version__ = "0.1.0"
