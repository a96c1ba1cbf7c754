"""wm-example-world-model: a complete tiny world-model plugin (NumPy only).

The same files with the same roles as every wm model plugin:
:mod:`~wm_linear.networks` (the model's functions: frame features and the
linear maps), :mod:`~wm_linear.training` (the training step that
:class:`wm_core.loops.training.TrainLoop` runs) and :mod:`~wm_linear.world_model`
(the world model on :class:`wm_core.models.base.WorldModelBase`, registered
as the ``wm.world_models`` entry point ``linear``).
"""

from __future__ import annotations

from wm_linear.world_model import LinearWorldModel

__version__ = "0.1.0"

__all__ = ["LinearWorldModel", "__version__"]
