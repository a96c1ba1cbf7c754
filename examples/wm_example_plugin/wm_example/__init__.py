"""An example third-party wm plugin (see docs/plugins.md).

Importing the package registers its gin configurables (module ``example``).
"""

from wm_example.objectives import RewardAbove
from wm_example.score_log import ScoreLog

__all__ = ["RewardAbove", "ScoreLog"]
