"""Test order for the whole tree: the longest files first.

``scripts/test.sh`` runs two workers that take one file at a time in
collection order; starting the few long files first keeps both busy to the end.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = (
    "plugins/wm_tdmpc/tests/test_learning.py",
    "plugins/wm_sv2p/tests/test_learning.py",
    "plugins/wm_planet/tests/test_learning.py",
    "plugins/wm_planet/tests/test_multi_worker.py",
    "tests/test_ownership.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
