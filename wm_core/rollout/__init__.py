"""Running a planner in environments: episodes, one or many at once
(:mod:`~wm_core.rollout.simulate`)."""
