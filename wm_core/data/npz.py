"""Episodes on disk: one ``.npz`` file per episode, and training batches from them.

Files
-----
:func:`save_dictionaries` writes each episode (format in
:mod:`wm_core.api.contracts`) to ``<directory>/<stamp>-<id>-len<T>.npz``:

* ``stamp`` — UTC time of the save, ``YYYYmmddTHHMMSSffffff``, strictly
  increasing within a process, so names sort in save order across calls and
  (up to clock resolution) across processes;
* ``id`` — 8 random hex digits, so two writers never pick the same name;
* ``T`` — the number of steps, i.e. the episode has ``T + 1`` rows.

A file appears under its final name only once it is complete: it is written
to a hidden temporary file ``.<name>.<pid>.tmp`` in the same directory,
flushed to disk, then renamed.  A crash leaves at most a temporary file, which
the loaders ignore (they read ``*.npz`` files whose names do not start with
a dot) and :func:`remove_stale_temporaries` deletes (``train_eval_loop``
calls it when a run starts).  A failed write removes its temporary file; a
full disk raises :class:`wm_core.data.atomic.DiskFullError` naming the file.

Files are compressed (``np.savez_compressed``; the trade-off in disk and
time is in docs/design.md, "Episode files are compressed").

Files are loaded with ``allow_pickle=False``.  The bulk loaders
(:func:`load_dictionaries`, :func:`iter_dictionaries`, :class:`wm_core.data.sampling.ChunkIterator`)
skip unreadable, truncated or malformed files with a warning naming the file.

Training batches from these files: :mod:`wm_core.data.sampling`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import threading
import time
import uuid
import warnings
import zipfile
import zlib
from typing import Iterable, Iterator, Mapping

import numpy as np

from wm_core.api.checks import REQUIRED_EPISODE_KEYS, check_episode
from wm_core.api.contracts import ContractError, Episode
from wm_core.data.atomic import writing_atomically

__all__ = [
    "EpisodeFileError",
    "environment_steps",
    "episode_paths",
    "episode_steps",
    "iter_dictionaries",
    "load_dictionaries",
    "load_episode",
    "remove_stale_temporaries",
    "save_dictionaries",
    "validate_episode",
]

#: Keys every episode has: dtype and number of dimensions (see :mod:`wm_core.api.checks`).
REQUIRED_KEYS = REQUIRED_EPISODE_KEYS
_NAME = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{8}-len(\d+)\.npz$")
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


class EpisodeFileError(ValueError):
    """An episode file that cannot be read back as a valid episode."""


# --------------------------------------------------------------------------- checks


def validate_episode(episode: Mapping[str, np.ndarray], where: str = "episode") -> int:
    """Checks ``episode`` against the format of :mod:`wm_core.api.contracts`
    (:func:`wm_core.api.checks.check_episode`).

    Returns the number of rows ``T + 1``; raises :class:`ContractError` naming
    ``where`` and the offending key otherwise.
    """
    return check_episode(episode, where) + 1


def episode_steps(path: str) -> int | None:
    """The ``T`` in a file name ``...-len<T>.npz``; ``None`` for other names."""
    match = _NAME.match(os.path.basename(path))
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- saving

_clock = threading.Lock()
_last_stamp_us = 0


def _stamp() -> str:
    """UTC time in microseconds, strictly increasing within this process."""
    global _last_stamp_us
    with _clock:
        _last_stamp_us = max(time.time_ns() // 1000, _last_stamp_us + 1)
        stamp_us = _last_stamp_us
    seconds, micros = divmod(stamp_us, 10**6)
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{when:%Y%m%dT%H%M%S}{micros:06d}"


def _episode_name(steps: int) -> str:
    return f"{_stamp()}-{uuid.uuid4().hex[:8]}-len{steps}.npz"


def _write_atomically(directory: str, name: str, episode: Mapping[str, np.ndarray]) -> str:
    final = os.path.join(directory, name)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    with writing_atomically(final, temporary, "episode", "xb") as file:
        np.savez_compressed(file, **episode)
    return final


_TEMPORARY = re.compile(r"^\..+\.npz\.(\d+)\.tmp$")


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Deletes the temporary files that killed writers left in ``directory``.

    A temporary file (``.<name>.<pid>.tmp``) is stale when no process with
    its writer's pid runs on this machine; those of live writers are kept.
    Returns the removed paths.  A missing directory has none.
    """
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        match = _TEMPORARY.match(name)
        if match and not _process_is_alive(int(match.group(1))):
            path = os.path.join(directory, name)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


def _fsync_directory(directory: str) -> None:
    """Makes the renames durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def save_dictionaries(episodes: Iterable[Mapping[str, np.ndarray]], directory: str) -> list[str]:
    """Writes each episode to its own ``.npz`` file in ``directory``.

    Every episode is validated before anything is written.  Creates
    ``directory`` if needed; returns the new files' paths in save order.
    """
    if isinstance(episodes, Mapping):
        raise TypeError(
            "save_dictionaries takes a list of episodes; wrap a single episode in a list"
        )
    episodes = list(episodes)
    rows = [validate_episode(episode, f"episode {i}") for i, episode in enumerate(episodes)]
    os.makedirs(directory, exist_ok=True)
    paths = [
        _write_atomically(directory, _episode_name(count - 1), episode)
        for episode, count in zip(episodes, rows)
    ]
    _fsync_directory(directory)
    return paths


# --------------------------------------------------------------------------- loading


def episode_paths(directory: str) -> list[str]:
    """The episode files in ``directory``, in save order (sorted by name).

    Temporary files of unfinished writes are not listed.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"episode directory {directory!r} does not exist")
    with os.scandir(directory) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if entry.name.endswith(".npz") and not entry.name.startswith(".") and entry.is_file()
        )
    return [os.path.join(directory, name) for name in names]


def environment_steps(directory: str) -> int:
    """Steps of all episode files in ``directory``, counted from their
    ``len<T>`` names without reading them; 0 for a missing directory."""
    if not os.path.isdir(directory):
        return 0
    return sum(episode_steps(path) or 0 for path in episode_paths(directory))


def load_episode(path: str) -> Episode:
    """Reads one episode file; raises :class:`EpisodeFileError` naming it if
    the file is unreadable, truncated, or not a valid episode."""
    try:
        # Opened here, not by np.load, which leaks the handle when the archive is truncated.
        with open(path, "rb") as file:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise EpisodeFileError(f"episode file {path} is a .npy array, not an .npz archive")
            with archive:
                episode = {key: archive[key] for key in archive.files}
    except EpisodeFileError:
        raise
    except _READ_ERRORS as error:
        raise EpisodeFileError(f"cannot read episode file {path}: {error!r}") from error
    try:
        rows = validate_episode(episode, f"episode file {path}")
    except ContractError as error:
        raise EpisodeFileError(str(error)) from error
    steps = episode_steps(path)
    if steps is not None and steps + 1 != rows:
        raise EpisodeFileError(f"episode file {path} is named len{steps} but has {rows} rows")
    return episode


def iter_dictionaries(directory: str) -> Iterator[Episode]:
    """Yields the episodes of ``directory`` one at a time, in save order,
    skipping unusable files with a warning naming them."""
    for path in episode_paths(directory):
        try:
            yield load_episode(path)
        except EpisodeFileError as error:
            warnings.warn(f"skipping {error}", stacklevel=2)


def load_dictionaries(directory: str) -> list[Episode]:
    """All episodes of ``directory`` in save order (see :func:`iter_dictionaries`)."""
    return list(iter_dictionaries(directory))
