"""Entry point of an environment worker: ``python -m wm_core.tasks.worker <socket fd>``.

Started by :class:`wm_core.tasks.process.ProcessEnv`; see there.  The worker
ends when that process dies (:func:`wm_core.ownership.die_with_parent`).
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from wm_core.ownership import die_with_parent
from wm_core.tasks.process import serve

if __name__ == "__main__":
    die_with_parent()
    serve(Connection(int(sys.argv[1])))
