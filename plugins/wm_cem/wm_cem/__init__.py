"""wm-cem: population-based search planners for wm (CEM, MPPI, iCEM).

Each planner is a :class:`wm_core.planning.planners.ModelPlanner` that evaluates all
proposals of an iteration in one ``predict_fn`` call.  Registered as entry
points ``cem``, ``mppi`` and ``icem`` in the group ``wm.planners``, and as gin
configurables ``cem.CEM``, ``mppi.MPPI`` and ``icem.ICEM``.
"""

from __future__ import annotations

from wm_cem.cem import CEM
from wm_cem.distributions import Categorical, Gaussian
from wm_cem.icem import ICEM
from wm_cem.mppi import MPPI
from wm_cem.noise import colored_noise
from wm_cem.search import PopulationSearch

__version__ = "0.1.0"

__all__ = [
    "CEM",
    "MPPI",
    "ICEM",
    "PopulationSearch",
    "Gaussian",
    "Categorical",
    "colored_noise",
    "__version__",
]
