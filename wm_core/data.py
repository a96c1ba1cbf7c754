"""A bounded in-memory pool of episodes and the chunk sampling over it.

:class:`EpisodeReservoir` holds at most ``capacity`` episodes (see
:mod:`wm_core.contracts` for the episode format).  It keeps a uniform random
subset of every episode offered to it (reservoir sampling, Vitter's
"Algorithm R"): after ``n`` offers each offered episode is held with
probability ``min(1, capacity / n)``.  The decision is made *before* the
episode is loaded, so an episode that is not kept is never read.

:meth:`EpisodeReservoir.sample_chunks` draws fixed-length chunks uniformly over
every possible ``(episode, start)`` pair of the held episodes: an episode is
picked with probability proportional to its number of chunk starts
``rows - chunk_length + 1``, then the start uniformly.  Picking episodes
uniformly instead would over-sample the time steps of short episodes; this
way every held time step is (away from the episode ends) equally likely to be
trained on, whatever the episode lengths.

File handling lives in :mod:`wm_core.npz`; this module never touches disk.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from wm_core.contracts import Episode

__all__ = ["EpisodeReservoir"]


class EpisodeReservoir:
    """At most ``capacity`` episodes, a uniform sample of all those offered.

    The reservoir owns the episodes it holds; batches returned by
    :meth:`sample_chunks` are fresh copies the caller owns.
    """

    def __init__(self, capacity: int, seed: int | np.random.SeedSequence = 0) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity = capacity
        self.offered = 0
        self._episodes: list[Episode] = []
        self._rows = np.zeros(0, dtype=np.int64)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._episodes)

    @property
    def episodes(self) -> tuple[Episode, ...]:
        """The held episodes (read-only view; do not mutate the arrays)."""
        return tuple(self._episodes)

    def offer(self, load: Callable[[], Episode | None]) -> bool:
        """Offers one episode; calls ``load`` only if the episode is kept.

        ``load`` returns the episode, or ``None`` when it turns out unusable;
        an unusable episode does not count as offered.  Returns whether the
        episode is now held.
        """
        self.offered += 1
        if len(self._episodes) < self.capacity:
            slot = len(self._episodes)
        else:
            slot = int(self._rng.integers(self.offered))
            if slot >= self.capacity:
                return False
        episode = load()
        if episode is None:
            self.offered -= 1
            return False
        rows = len(next(iter(episode.values())))
        if slot == len(self._episodes):
            self._episodes.append(episode)
            self._rows = np.append(self._rows, rows)
        else:
            self._episodes[slot] = episode
            self._rows[slot] = rows
        return True

    def sample_chunks(
        self, rng: np.random.Generator, batch_size: int, chunk_length: int
    ) -> dict[str, np.ndarray]:
        """``batch_size`` chunks of ``chunk_length`` contiguous rows.

        Returns ``{key: array [batch_size, chunk_length, ...]}`` with the keys
        and dtypes of the held episodes.  Every held episode must have at
        least ``chunk_length`` rows and the same keys.
        """
        if not self._episodes:
            raise ValueError("the reservoir holds no episode to sample from")
        starts = self._rows - chunk_length + 1
        if starts.min() < 1:
            raise ValueError(
                f"an episode has {self._rows.min()} rows, fewer than "
                f"chunk_length={chunk_length}"
            )
        ends = np.cumsum(starts)
        flat = rng.integers(ends[-1], size=batch_size)
        index = np.searchsorted(ends, flat, side="right")
        offset = flat - (ends[index] - starts[index])
        picked = [(self._episodes[i], o) for i, o in zip(index, offset)]
        return {
            key: np.stack([episode[key][o : o + chunk_length] for episode, o in picked])
            for key in self._episodes[0]
        }
