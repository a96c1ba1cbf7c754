"""Episode data: ``.npz`` episode files (:mod:`~wm_core.data.npz`), sampling
training chunks from them (:mod:`~wm_core.data.sampling`), atomic file writes
(:mod:`~wm_core.data.atomic`)."""
