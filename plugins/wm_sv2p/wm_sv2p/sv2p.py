"""SV2P's public module: the world model and its factories, as configs import them.

``import wm_sv2p.sv2p`` (the gin configs' import line) registers the gin
configurables ``sv2p.SV2P``, ``sv2p.create_train_fn`` ...; the
``wm.world_models`` entry point ``sv2p`` is ``wm_sv2p.sv2p:SV2P``.  They are
defined in :mod:`wm_sv2p.world_model`.
"""

from __future__ import annotations

from wm_sv2p import world_model
from wm_sv2p.world_model import (  # noqa: F401  (re-exported)
    SV2P,
    create_observe_fn,
    create_predict_fn,
    create_reset_fn,
    create_train_fn,
)

__all__ = list(world_model.__all__)
