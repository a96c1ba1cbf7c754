"""Judging world models and agents.

:mod:`~wm_core.evaluation.planning_quality`: how well a world model ranks
action sequences against the task's simulator (its public names are
re-exported here); :mod:`~wm_core.evaluation.scoring`: an agent's score
between the random planner and the oracle.
"""

from __future__ import annotations

from wm_core.evaluation.planning_quality import *  # noqa: F401,F403 (the package's API)
from wm_core.evaluation.planning_quality import __all__
