"""Layer 0: the contracts between the core and its plugins, and the plugin machinery.

Contracts and their checks (:mod:`~wm_core.api.contracts`,
:mod:`~wm_core.api.checks`, :mod:`~wm_core.api.spaces`), the lifecycle hook
specifications and their runner (:mod:`~wm_core.api.hookspecs`,
:mod:`~wm_core.api.hooks`), the entry-point registry
(:mod:`~wm_core.api.registry`) and the gin configurables every config may use
(:mod:`~wm_core.api.configurables`).  Imports nothing else of ``wm_core``.
"""
