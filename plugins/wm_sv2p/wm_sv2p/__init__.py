"""wm-sv2p: the SV2P video prediction world model (Babaeizadeh et al. 2018).

The files every wm model plugin has, with the same roles:
:mod:`~wm_sv2p.networks` (the layers: conv-LSTM, CDNA, compositing),
:mod:`~wm_sv2p.model` (the frame and reward predictor assembled from them,
and its loss), :mod:`~wm_sv2p.training` (the training step: the
:class:`wm_core.loops.training.Trainer` that ``TrainLoop`` runs) and
:mod:`~wm_sv2p.world_model` (:class:`~wm_sv2p.world_model.SV2P` on
:class:`wm_core.models.base.WorldModelBase`, and its factories).  SV2P's own:
:mod:`~wm_sv2p.latent` (the latent tower and its KL schedule).  Configs
import :mod:`wm_sv2p.sv2p`; the gin configurables live under the module
name ``sv2p``.
"""

from __future__ import annotations

from wm_tf.onednn import prefer_onednn

prefer_onednn()  # before any module of this package imports TensorFlow

import wm_core  # noqa: E402,F401  (its import hook keeps this package's moved modules importable)

from wm_sv2p.latent import KLSchedule  # noqa: E402
from wm_sv2p.world_model import (  # noqa: E402
    SV2P,
    create_observe_fn,
    create_predict_fn,
    create_reset_fn,
    create_train_fn,
)

__version__ = "0.1.0"

__all__ = [
    "SV2P",
    "KLSchedule",
    "create_reset_fn",
    "create_observe_fn",
    "create_predict_fn",
    "create_train_fn",
    "__version__",
]
