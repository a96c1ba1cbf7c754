"""Training batches from episode files: chunks sampled from a bounded pool.

:class:`ChunkIterator` yields batches of fixed-length chunks sampled from the
``.npz`` episode files of a directory (format and file handling:
:mod:`wm_core.data.npz`), reading every file at most once over its whole life and
keeping at most ``max_episodes_in_memory`` episodes in memory.

The pool is an :class:`EpisodeReservoir`: it keeps a uniform random subset of
every episode offered to it (reservoir sampling, Vitter's "Algorithm R"):
after ``n`` offers each offered episode is held with probability
``min(1, capacity / n)``.  The decision is made *before* the episode is
loaded, so an episode that is not kept is never read.

:meth:`EpisodeReservoir.sample_chunks` draws fixed-length chunks uniformly over
every possible ``(episode, start)`` pair of the held episodes: an episode is
picked with probability proportional to its number of chunk starts
``rows - chunk_length + 1``, then the start uniformly.  Picking episodes
uniformly instead would over-sample the time steps of short episodes; this
way every held time step is (away from the episode ends) equally likely to be
trained on, whatever the episode lengths.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
import warnings
import weakref
from typing import Callable

import numpy as np

from wm_core.api.checks import check_int_at_least
from wm_core.api.contracts import Episode
from wm_core.data.npz import EpisodeFileError, episode_paths, episode_steps, load_episode

__all__ = ["ChunkIterator", "EpisodeReservoir"]

_MTIME_GRANULARITY = 2.0  # seconds; covers file systems with coarse timestamps



class EpisodeReservoir:
    """At most ``capacity`` episodes, a uniform sample of all those offered.

    The reservoir owns the episodes it holds; batches returned by
    :meth:`sample_chunks` are fresh copies the caller owns.
    """

    def __init__(self, capacity: int, seed: int | np.random.SeedSequence = 0) -> None:
        self.capacity = check_int_at_least("capacity", capacity)
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


class _ChunkSource:
    """The synchronous part of :class:`ChunkIterator`: scan, load, sample."""

    def __init__(
        self,
        directory: str,
        batch_size: int,
        chunk_length: int,
        seed: int,
        max_episodes_in_memory: int,
    ) -> None:
        self.directory = directory
        self.batch_size = batch_size
        self.chunk_length = chunk_length
        reservoir_seed, sample_seed = np.random.SeedSequence(seed).spawn(2)
        self.reservoir = EpisodeReservoir(max_episodes_in_memory, reservoir_seed)
        self._rng = np.random.default_rng(sample_seed)
        self.seen: set[str] = set()
        self.short: list[str] = []
        self.rejected: list[str] = []
        self._layout: dict[str, tuple[np.dtype, tuple[int, ...]]] | None = None
        self._scanned_mtime: int | None = None

    def next_batch(self) -> dict[str, np.ndarray]:
        if self._directory_changed():
            self.refresh()
        if not len(self.reservoir):
            raise ValueError(
                f"no usable episode in {self.directory!r}: {len(self.seen)} file(s) seen, "
                f"{len(self.short)} shorter than chunk_length={self.chunk_length} rows, "
                f"{len(self.rejected)} unreadable or inconsistent"
            )
        return self.reservoir.sample_chunks(self._rng, self.batch_size, self.chunk_length)

    def _directory_changed(self) -> bool:
        """Whether files may have appeared since the last scan (one ``os.stat``).

        A file renamed into the directory changes its mtime.  Directories
        changed in the last ``_MTIME_GRANULARITY`` seconds are rescanned on
        every batch, for file systems whose mtime ticks coarsely.
        """
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return True  # refresh() finds no file and next_batch says so
        recent = time.time_ns() - mtime < _MTIME_GRANULARITY * 1e9
        changed = mtime != self._scanned_mtime or recent
        self._scanned_mtime = mtime
        return changed

    def refresh(self) -> None:
        """Offers every file not seen before to the reservoir."""
        short_before = len(self.short)
        for path in episode_paths(self.directory):
            name = os.path.basename(path)
            if name in self.seen:
                continue
            self.seen.add(name)
            steps = episode_steps(path)
            if steps is not None and steps + 1 < self.chunk_length:
                self.short.append(name)  # known from the name: never read
                continue
            self.reservoir.offer(functools.partial(self._load_usable, path))
        if len(self.short) > short_before:
            skipped = self.short[short_before:]
            warnings.warn(
                f"skipping {len(skipped)} episode file(s) in {self.directory!r} with fewer than "
                f"chunk_length={self.chunk_length} rows: {', '.join(skipped)}",
                stacklevel=2,
            )

    def _load_usable(self, path: str) -> Episode | None:
        name = os.path.basename(path)
        try:
            episode = load_episode(path)
        except EpisodeFileError as error:
            self.rejected.append(name)
            warnings.warn(f"skipping {error}", stacklevel=2)
            return None
        if len(episode["reward"]) < self.chunk_length:
            self.short.append(name)
            return None
        layout = {key: (value.dtype, value.shape[1:]) for key, value in episode.items()}
        if self._layout is None:
            self._layout = layout
        # Keys the first episode lacks (e.g. a column newer code records) are dropped, so a
        # run resumed under newer code keeps training on its old and new episodes alike.
        common = {key: layout.get(key) for key in self._layout}
        if common != self._layout:
            self.rejected.append(name)
            warnings.warn(
                f"skipping episode file {path}: its keys/dtypes/shapes {layout} differ from "
                f"the first episode's {self._layout}",
                stacklevel=2,
            )
            return None
        return {key: episode[key] for key in self._layout}


def _produce(source: _ChunkSource, batches: queue.Queue, stop: threading.Event) -> None:
    """Background loop: fills ``batches``; an exception is handed over and ends it."""
    while not stop.is_set():
        try:
            item: object = source.next_batch()
        except Exception as error:  # handed to the consumer, which raises it
            item = error
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if isinstance(item, Exception):
            return


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class ChunkIterator:
    """Endless batches of fixed-length chunks from the episode files of ``directory``.

    Each ``next()`` returns ``{key: array [batch_size, chunk_length, ...]}``
    for every key of the episodes (``image`` uint8, ``action`` float32,
    ``reward`` float32, extras), each row block a contiguous slice of one
    episode; dtypes are kept.  The caller owns the returned arrays.

    * The directory is scanned on the first batch and again whenever it
      changed (one ``os.stat`` per batch tells): an episode saved between two
      ``train_fn`` calls is in the very next batch sampled (with ``prefetch``,
      after the at most ``prefetch + 1`` batches drawn before it appeared).
      Every file is read at most once over the iterator's life (an index of
      seen names is kept), so reuse one iterator across ``train_fn`` calls.
    * At most ``max_episodes_in_memory`` episodes are held, a uniform random
      subset of all usable files (:class:`EpisodeReservoir`);
      chunks are uniform over every ``(episode, start)`` of the held episodes.
    * Files with fewer than ``chunk_length`` rows are skipped with one warning
      per scan; unreadable ones with a warning naming the file.  With no
      usable episode, ``next()`` raises ``ValueError`` saying why.
    * ``prefetch > 0`` loads files and assembles batches in a background
      thread, up to ``prefetch`` batches ahead, so the trainer only waits when
      the sampler is slower than it.  Call :meth:`close` (or use ``with``) to
      stop the thread; it also stops when the iterator is garbage collected.
      ``prefetch=0`` does everything in ``next()``, deterministically.
    """

    def __init__(
        self,
        directory: str,
        batch_size: int,
        chunk_length: int,
        *,
        seed: int = 0,
        max_episodes_in_memory: int = 1000,
        prefetch: int = 0,
    ) -> None:
        self._source = _ChunkSource(
            directory=os.fspath(directory),
            batch_size=_positive_int("batch_size", batch_size),
            chunk_length=_positive_int("chunk_length", chunk_length),
            seed=seed,
            max_episodes_in_memory=_positive_int("max_episodes_in_memory", max_episodes_in_memory),
        )
        self.prefetch = _positive_int("prefetch", prefetch, minimum=0)
        self._batches: queue.Queue = queue.Queue(maxsize=max(self.prefetch, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None
        weakref.finalize(self, self._stop.set)

    @property
    def episodes_in_memory(self) -> int:
        """How many episodes are held now (at most ``max_episodes_in_memory``)."""
        return len(self._source.reservoir)

    @property
    def files_seen(self) -> int:
        """How many distinct episode files were scanned so far (read or not)."""
        return len(self._source.seen)

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.prefetch == 0:
            return self._source.next_batch()
        if self._error is not None:
            raise self._error
        if self._stop.is_set():
            raise RuntimeError("ChunkIterator was closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=_produce,
                args=(self._source, self._batches, self._stop),
                name=f"ChunkIterator({self._source.directory})",
                daemon=True,
            )
            self._thread.start()
        item = self._batches.get()
        if isinstance(item, Exception):
            self._error = item
            raise item
        return item

    def close(self) -> None:
        """Stops the background thread, if any, and waits for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ChunkIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
