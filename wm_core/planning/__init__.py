"""Planners (:mod:`~wm_core.planning.planners`) and the objectives they
maximize (:mod:`~wm_core.planning.objectives`)."""
