"""wm-tdmpc: TD-MPC2's decoder-free latent world model with learned values (Hansen et al. 2024).

:class:`wm_tdmpc.world_model.TDMPC` is the world model (entry point
``tdmpc``): a conv encoder over the last few frames into a SimNorm latent,
latent dynamics, a reward head and a Q-ensemble predicting two-hot
distributions over symlog bins, and a squashed-Gaussian policy prior whose
action sequences planners can mix into their populations (``propose_fn``).
It never reconstructs frames: it learns from latent consistency, rewards and
TD values.

Modules, one job each: :mod:`~wm_tdmpc.networks` (the networks and their
arithmetic), :mod:`~wm_tdmpc.training` (one update, checkpoints),
:mod:`~wm_tdmpc.world_model` (the contract's functions).
"""

from __future__ import annotations

from wm_tf.onednn import prefer_onednn

prefer_onednn()  # before any module of this package imports TensorFlow

__version__ = "0.1.0"
