"""Reporting plugins: what a run shows while it goes and leaves behind.

Each is a ``wm.plugins`` entry point implementing hooks of
:mod:`wm_core.api.hookspecs`:

* :mod:`~wm_core.reporting.visualize` — TensorBoard scalars, episode videos
  and open-loop predictions (``tensorboard``), written with
  :mod:`~wm_core.reporting.summaries`;
* :mod:`~wm_core.reporting.progress` — a progress line per phase (``progress``);
* :mod:`~wm_core.reporting.metrics_log` — ``metrics.jsonl`` rows (``metrics``).
"""
