"""Collecting episodes with Ray actors, on one machine or a Ray cluster (``pip install 'wm-core[ray]'``).

::

    from wm_core import ray_collect

    ray_collect.collect(
        ray_collect.RunComponents("runs/x/operative_config.gin", "runs/x"),  # or Components(task, planner)
        "runs/x/episodes/train", num_episodes=100, seed=0, num_actors=8,
        address="head-node:6379",   # None: the Ray instance already initialised, else a local one
    )

``K`` actors each build the task and the planner once, from a picklable
factory: :class:`Components` (the objects themselves, pickled into each
actor: plain tasks and planners) or :class:`RunComponents` (a run's gin
config, replayed in each actor: what a learned model's planner needs, its
``observe_fn`` picking up the newest checkpoint in the run's ``model_dir``).
Episode ``i`` is reset with seed ``seed + i`` (as ``simulate`` and
``train_eval_loop`` do); the missing episodes ``0 .. num_episodes - 1`` are
dealt round-robin to the actors, and each actor writes its episodes itself
with :func:`wm_core.data.npz.save_dictionaries` (atomic: a reader sees a whole
file or none).

Which episodes a directory holds is read from the files' ``seed`` column, so
a collection started again — after a crash, a lost node, Ctrl-C — tops up
exactly the missing ones.  Episodes are also saved in episode order (an actor
that finished episode ``i`` waits until ``0 .. i-1`` are on disk): the files
are always episodes ``0 .. k-1``, the invariant ``train_eval_loop``'s own
collection resumes from.  An actor holds at most one finished episode while
it waits; the lowest missing episode is never waiting, so the wait ends.

Errors are clear instead of hangs: without Ray, :class:`RayNotInstalledError`
names the extra to install; a cluster address that does not accept a
connection within ``connect_timeout_s`` raises
:class:`wm_core.peers.PeerUnreachableError` (``ray.init`` alone would keep
retrying a dead address: docs/multi_machine.md); an actor that fails or dies
stops the others and re-raises its error.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

from wm_core.data import npz
from wm_core.ownership import RUN, DirectoryLock
from wm_core.peers import parse_address, wait_until_reachable

__all__ = [
    "Components",
    "RayNotInstalledError",
    "RunComponents",
    "collect",
    "connect",
    "import_ray",
    "missing_episodes",
    "saved_episode_indices",
]

INSTALL_HINT = "pip install 'wm-core[ray]'  (or: pip install 'ray>=2.9')"


class RayNotInstalledError(ImportError):
    """Ray is not installed (it is the optional extra ``wm-core[ray]``)."""


def import_ray():
    """The ``ray`` module; :class:`RayNotInstalledError` naming the extra when it is missing."""
    try:
        import ray
    except ImportError as error:
        raise RayNotInstalledError(
            f"collecting with Ray actors needs Ray, which is not installed ({error}): {INSTALL_HINT}"
        ) from error
    return ray


def _gcs_address(address: str) -> str | None:
    """The ``host:port`` to check before ``ray.init(address)``; ``None`` for
    ``auto``/``local`` (Ray answers those at once)."""
    if address in ("auto", "local"):
        return None
    return address.removeprefix("ray://")


def connect(address: str | None = None, connect_timeout_s: float = 30.0, **init_kwargs: Any):
    """The ``ray`` module, initialised: the running session if there is one,
    else ``ray.init(address, **init_kwargs)`` (``address`` default: the
    ``RAY_ADDRESS`` environment variable, else a new local instance).

    A ``host:port`` or ``ray://host:port`` address must accept a TCP
    connection within ``connect_timeout_s``, else
    :class:`~wm_core.peers.PeerUnreachableError`.
    """
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    checked = _gcs_address(address) if address else None
    if checked is not None:
        parse_address(checked)  # ValueError for a malformed address
    if ray.is_initialized():
        return ray
    if checked is not None:
        wait_until_reachable(
            [checked], connect_timeout_s, what="Ray cluster",
            hint=f"no Ray head answers at {address!r}; start it with `ray start --head` "
            f"there, or check the address, port and firewall (ray.init would keep retrying)",
        )
    init_kwargs.setdefault("log_to_driver", False)
    if not address:
        init_kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, **init_kwargs)
    return ray


class Components:
    """A factory that returns the given ``(task, planner)`` (pickled into each actor)."""

    def __init__(self, task: Any, planner: Any):
        self.task, self.planner = task, planner

    def __call__(self) -> tuple[Any, Any]:
        return self.task, self.planner


class RunComponents:
    """A factory that replays a run's gin config in the actor and returns
    ``(task, planner)`` of its ``wm.train_eval_loop``.

    :param config: a gin file (e.g. the run's ``operative_config.gin``); its
        text is read here and travels with the factory, so the actors need
        no copy of it.
    :param output_dir: the run directory (fills the ``model_dir``,
        ``episodes_dir`` and ``output_dir`` macros, as ``wm-run`` does): it
        must be the same path on every machine (a shared file system).
    :param planner: ``"train_planner"`` or ``"eval_planner"``.
    :param bindings: extra gin bindings.
    """

    def __init__(
        self, config: str, output_dir: str, planner: str = "train_planner",
        bindings: Sequence[str] = (),
    ):
        if planner not in ("train_planner", "eval_planner"):
            raise ValueError(f"planner must be 'train_planner' or 'eval_planner', got {planner!r}")
        with open(config) as file:
            self.config_text = file.read()
        self.config_name = os.path.basename(config)
        self.output_dir = os.path.abspath(output_dir)
        self.planner = planner
        self.bindings = list(bindings)

    def __call__(self) -> tuple[Any, Any]:
        from wm_core.loops.config import configure_run, loop_setting

        with tempfile.TemporaryDirectory(prefix="wm-ray-config-") as directory:
            path = os.path.join(directory, self.config_name)
            with open(path, "w") as file:
                file.write(self.config_text)
            configure_run(path, self.output_dir, self.bindings)
        return loop_setting("task"), loop_setting(self.planner)


# --------------------------------------------------------------------------- which episodes exist


class _EpisodeIndex:
    """Episode indices of a directory's files, from their ``seed`` column (each file read once)."""

    def __init__(self, directory: str, seed: int):
        self.directory, self.seed = directory, seed
        self._seeds: dict[str, int] = {}

    def indices(self) -> set[int]:
        paths = npz.episode_paths(self.directory) if os.path.isdir(self.directory) else []
        for path in paths:
            if path not in self._seeds:
                self._seeds[path] = _episode_seed(path)
        return {self._seeds[path] - self.seed for path in paths}


def _episode_seed(path: str) -> int:
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            if "seed" not in archive.files:
                raise npz.EpisodeFileError(
                    f"episode file {path} has no 'seed' column (saved before episodes carried "
                    f"their seed), so it cannot be matched to an episode number; collect into "
                    f"a directory without such files"
                )
            return int(archive["seed"][0])
    except npz.EpisodeFileError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise npz.EpisodeFileError(f"cannot read the seed of episode file {path}: {error!r}") from error


def saved_episode_indices(directory: str, seed: int = 0) -> set[int]:
    """The episode numbers ``i`` (files with seed ``seed + i``) saved in ``directory``."""
    return _EpisodeIndex(directory, seed).indices()


def missing_episodes(directory: str, num_episodes: int, seed: int = 0) -> list[int]:
    """The episode numbers in ``0 .. num_episodes - 1`` that ``directory`` lacks, in order."""
    saved = saved_episode_indices(directory, seed)
    return [index for index in range(num_episodes) if index not in saved]


# --------------------------------------------------------------------------- the actors


class _Collector:
    """One actor's state: its task, planner and environment, built once."""

    def __init__(self, factory: Callable[[], tuple[Any, Any]], directory: str, seed: int,
                 phase: str, poll_s: float):
        self.task, self.planner = factory()
        self.directory, self.seed, self.phase, self.poll_s = directory, seed, phase, poll_s
        self.index = _EpisodeIndex(directory, seed)

    def run(self, indices: list[int]) -> list[str]:
        """Collect and save episodes ``indices`` (ascending), each after its predecessors."""
        from wm_core.rollout.simulate import run_episode

        env = self.task.create_env()
        paths = []
        try:
            for index in indices:
                episode, _ = run_episode(
                    env, self.planner, self.seed + index, phase=self.phase, episode_index=index,
                )
                while not set(range(index)) <= self.index.indices():
                    time.sleep(self.poll_s)
                paths += npz.save_dictionaries([episode], self.directory)
        finally:
            env.close()
        return paths


def collect(
    factory: Callable[[], tuple[Any, Any]],
    directory: str,
    num_episodes: int,
    seed: int = 0,
    num_actors: int = 2,
    phase: str = "train",
    address: str | None = None,
    connect_timeout_s: float = 30.0,
    actor_options: dict | None = None,
    poll_s: float = 0.2,
) -> list[str]:
    """Top ``directory`` up to episodes ``0 .. num_episodes - 1`` with ``num_actors``
    Ray actors (see module docs); the paths written, in episode order.

    :param factory: picklable, returns ``(task, planner)`` in each actor.
    :param actor_options: ``ray.remote`` options of each actor (default
        ``{"num_cpus": 1}``; e.g. ``{"num_gpus": 0.25}`` for a model on GPU).
    :param address: see :func:`connect`.

    The collection holds the ``run`` lock (:mod:`wm_core.ownership`) of the
    run directory of a :class:`RunComponents` factory, else of
    ``directory``: a run or collection writing there already makes it raise
    :class:`~wm_core.ownership.DirectoryInUseError`.
    """
    if num_episodes < 0 or num_actors < 1:
        raise ValueError(f"need num_episodes >= 0 and num_actors >= 1, got {num_episodes}, {num_actors}")
    owned = factory.output_dir if isinstance(factory, RunComponents) else directory
    with DirectoryLock(owned, RUN):
        os.makedirs(directory, exist_ok=True)
        npz.remove_stale_temporaries(directory)
        missing = missing_episodes(directory, num_episodes, seed)
        if not missing:
            return []
        ray = connect(address, connect_timeout_s)
        remote = ray.remote(**(actor_options or {"num_cpus": 1}))(_Collector)
        count = min(num_actors, len(missing))
        actors = [remote.remote(factory, os.path.abspath(directory), seed, phase, poll_s)
                  for _ in range(count)]
        pending = [actor.run.remote(missing[k::count]) for k, actor in enumerate(actors)]
        written: list[str] = []
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                written += ray.get(ready[0])  # an actor's error (or death) is raised here
        finally:
            for actor in actors:
                ray.kill(actor)  # the others may wait for an episode that will never come
        return sorted(written)
