"""wm-sv2p: the SV2P video prediction world model (Babaeizadeh et al. 2018).

Import :mod:`wm_sv2p.sv2p` for the model and the function factories of the original
World Models Library; the
gin configurables live under the module name ``sv2p``.
"""

from __future__ import annotations

from wm_core.onednn import prefer_onednn

prefer_onednn()  # before any module of this package imports TensorFlow

from wm_sv2p.latent import KLSchedule  # noqa: E402
from wm_sv2p.sv2p import (  # noqa: E402
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
