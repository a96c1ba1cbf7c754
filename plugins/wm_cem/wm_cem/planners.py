"""The original World Models Library's ``planners`` module, for code written against it.

``from wm_cem import planners`` gives the names its notebook uses:
``planners.CEM`` (continuous and discrete actions), ``planners.MPPI``,
``planners.ICEM`` from this plugin, beside the core's exploration wrappers
``planners.RandomColdStart``, ``planners.GaussianRandomNoise``,
``planners.EpsilonGreedy`` and the ``planners.Random`` planner.  New code may
import each from its own module; these are the same objects.
"""

from __future__ import annotations

from wm_cem.cem import CEM
from wm_cem.icem import ICEM
from wm_cem.mppi import MPPI
from wm_core.planning.planners import EpsilonGreedy, GaussianRandomNoise, Random, RandomColdStart

__all__ = ["CEM", "MPPI", "ICEM", "Random", "RandomColdStart", "GaussianRandomNoise", "EpsilonGreedy"]
