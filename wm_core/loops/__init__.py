"""The loops: collect, train and evaluate (:mod:`~wm_core.loops.train_eval`),
the training scaffold (:mod:`~wm_core.loops.training`), the learner process
that trains beside collection (:mod:`~wm_core.loops.learner`), loading a
run's gin config (:mod:`~wm_core.loops.config`) and evaluating a run's world
model from its directory (:mod:`~wm_core.loops.run_evaluation`)."""
