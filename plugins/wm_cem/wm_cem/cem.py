"""Cross-entropy method (CEM): refit to the elites, each weighted equally."""

from __future__ import annotations

import gin
import numpy as np

from wm_cem.distributions import Distribution
from wm_cem.search import PopulationSearch

__all__ = ["CEM"]


@gin.configurable(module="cem")
class CEM(PopulationSearch):
    """CEM over action sequences (PlaNet's planner; seed name ``CEM``).

    Each iteration refits the per-step distribution — Gaussian mean and
    stdev for ``Box`` actions, categorical action frequencies for
    ``Discrete`` ones — to the top ``round(fraction * proposals)`` proposals,
    all weighted equally.  Arguments: see :class:`wm_cem.search.PopulationSearch`.
    """

    def refit(
        self, distribution: Distribution, elites: np.ndarray, scores: np.ndarray
    ) -> Distribution:
        return distribution.fit(elites, np.ones(len(elites), np.float32))
