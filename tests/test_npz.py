"""Episode files (:mod:`wm_core.data.npz`) and the training batches sampled from them (:mod:`wm_core.data.sampling`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from wm_core.data import npz, sampling
from wm_core.api.contracts import ContractError
from wm_core.data.sampling import EpisodeReservoir


def encoded_episode(episode_id: int, rows: int, size: int = 4) -> dict[str, np.ndarray]:
    """An episode whose every row says which episode and which row it is."""
    t = np.arange(rows)
    image = np.zeros((rows, size, size, 3), np.uint8)
    image[:, 0, 0, 0] = episode_id
    image[:, 0, 0, 1] = t
    action = np.stack([np.full(rows, episode_id), t], axis=1).astype(np.float32)
    reward = (1000 * episode_id + t).astype(np.float32)
    return {"image": image, "action": action, "reward": reward}


def ids_and_steps(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids = (batch["reward"] // 1000).astype(int)
    return ids, batch["reward"].astype(int) - 1000 * ids


@pytest.fixture
def count_loads(monkeypatch):
    """Counts np.load calls made by wm_core.data.npz, per file name."""
    loads: list[str] = []
    real_load = np.load

    def counting_load(file, *args, **kwargs):
        loads.append(os.path.basename(getattr(file, "name", file)))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(npz.np, "load", counting_load)
    return loads


# --------------------------------------------------------------------------- files


def test_round_trip_keeps_arrays_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    episode = {
        "image": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        "action": rng.normal(size=(6, 2)).astype(np.float32),
        "reward": rng.normal(size=6).astype(np.float32),
        "state": rng.normal(size=(6, 5)),  # float64 extra
        "done": np.array([False] * 5 + [True]),
        "step": np.arange(6, dtype=np.int32),
    }
    npz.save_dictionaries([episode], str(tmp_path))
    (loaded,) = npz.load_dictionaries(str(tmp_path))
    assert sorted(loaded) == sorted(episode)
    for key, value in episode.items():
        assert loaded[key].dtype == value.dtype, key
        np.testing.assert_array_equal(loaded[key], value)


def test_names_sort_in_save_order_and_show_steps(tmp_path):
    first = npz.save_dictionaries([encoded_episode(i, rows) for i, rows in enumerate([3, 5, 2])],
                                  str(tmp_path))
    second = npz.save_dictionaries([encoded_episode(3, 4), encoded_episode(4, 9)], str(tmp_path))
    paths = first + second
    assert npz.episode_paths(str(tmp_path)) == paths
    assert [npz.episode_steps(p) for p in paths] == [2, 4, 1, 3, 8]
    for path in paths:
        assert re.fullmatch(r"\d{8}T\d{12}-[0-9a-f]{8}-len\d+\.npz", os.path.basename(path))
    loaded = npz.load_dictionaries(str(tmp_path))
    assert [int(e["reward"][0]) // 1000 for e in loaded] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "key, broken",
    [
        ("image", lambda e: {**e, "image": e["image"].astype(np.float32)}),
        ("image", lambda e: {**e, "image": e["image"][..., 0]}),
        ("action", lambda e: {**e, "action": e["action"][:-1]}),
        ("reward", lambda e: {k: v for k, v in e.items() if k != "reward"}),
        ("reward", lambda e: {**e, "reward": e["reward"].astype(np.float64)}),
        ("state", lambda e: {**e, "state": list(range(5))}),
    ],
)
def test_save_rejects_bad_episode_naming_key_and_writes_nothing(tmp_path, key, broken):
    episodes = [encoded_episode(0, 5), broken(encoded_episode(1, 5))]
    with pytest.raises(ContractError, match=rf"episode 1 .*'{key}'"):
        npz.save_dictionaries(episodes, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_save_rejects_a_single_episode_dict(tmp_path):
    with pytest.raises(TypeError, match="list of episodes"):
        npz.save_dictionaries(encoded_episode(0, 3), str(tmp_path))


def test_crash_mid_write_leaves_no_final_file(tmp_path, monkeypatch):
    visible_while_writing = []

    def half_write_then_crash(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        file.flush()
        visible_while_writing.extend(npz.episode_paths(str(tmp_path)))
        raise KeyboardInterrupt

    monkeypatch.setattr(npz.np, "savez_compressed", half_write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        npz.save_dictionaries([encoded_episode(0, 4)], str(tmp_path))
    assert visible_while_writing == []  # a writer killed here leaves nothing a loader reads
    assert os.listdir(tmp_path) == []


def test_loaders_ignore_temporary_files_of_killed_writers(tmp_path):
    (path,) = npz.save_dictionaries([encoded_episode(7, 4)], str(tmp_path))
    with open(path, "rb") as file:
        content = file.read()
    stray = tmp_path / f".{os.path.basename(path)[:-4]}x.npz.4242.tmp"
    stray.write_bytes(content[: len(content) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = npz.load_dictionaries(str(tmp_path))
    assert [int(e["reward"][0]) for e in loaded] == [7000]


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())


def _cut_in_half(path):
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def _missing_reward(path):
    episode = encoded_episode(1, 4)
    del episode["reward"]
    with open(path, "wb") as file:
        np.savez(file, **episode)


def _mismatched_lengths(path):
    episode = encoded_episode(1, 4)
    episode["action"] = episode["action"][:3]
    with open(path, "wb") as file:
        np.savez(file, **episode)


def _wrong_length_in_name(path):
    with open(path, "wb") as file:
        np.savez(file, **encoded_episode(1, 6))  # named len3, holds 6 rows


@pytest.mark.parametrize(
    "corrupt",
    [_random_bytes, _cut_in_half, _missing_reward, _mismatched_lengths, _wrong_length_in_name],
)
def test_unusable_file_is_skipped_with_a_warning_naming_it(tmp_path, corrupt):
    good, bad = npz.save_dictionaries([encoded_episode(0, 4), encoded_episode(1, 4)],
                                      str(tmp_path))
    corrupt(tmp_path / os.path.basename(bad))
    with pytest.warns(UserWarning, match=re.escape(os.path.basename(bad))):
        loaded = npz.load_dictionaries(str(tmp_path))
    assert [int(e["reward"][0]) for e in loaded] == [0]
    with pytest.raises(npz.EpisodeFileError, match=re.escape(os.path.basename(bad))):
        npz.load_episode(bad)


def test_iter_dictionaries_reads_lazily(tmp_path, count_loads):
    npz.save_dictionaries([encoded_episode(i, 3) for i in range(4)], str(tmp_path))
    episodes = npz.iter_dictionaries(str(tmp_path))
    assert count_loads == []
    assert int(next(episodes)["reward"][0]) == 0
    assert len(count_loads) == 1


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        npz.load_dictionaries(str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------- chunks


def test_chunks_are_contiguous_slices_with_kept_dtypes(tmp_path):
    rows = [10, 15, 7]
    npz.save_dictionaries([encoded_episode(i, n) for i, n in enumerate(rows)], str(tmp_path))
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=64, chunk_length=5, seed=1)
    for _, batch in zip(range(5), iterator):
        assert batch["image"].dtype == np.uint8 and batch["image"].shape == (64, 5, 4, 4, 3)
        assert batch["action"].dtype == np.float32 and batch["action"].shape == (64, 5, 2)
        assert batch["reward"].dtype == np.float32 and batch["reward"].shape == (64, 5)
        ids, steps = ids_and_steps(batch)
        np.testing.assert_array_equal(ids, ids[:, :1].repeat(5, axis=1))
        np.testing.assert_array_equal(steps, steps[:, :1] + np.arange(5))
        assert np.all(steps[:, -1] < np.array(rows)[ids[:, 0]])
        np.testing.assert_array_equal(batch["image"][..., 0, 0, 0], ids)
        np.testing.assert_array_equal(batch["image"][..., 0, 0, 1], steps)
        np.testing.assert_array_equal(batch["action"], np.stack([ids, steps], axis=-1))


def test_chunk_starts_are_uniform_over_all_episodes(tmp_path):
    # rows 5, 8, 12 with chunk_length 4: 2 + 5 + 9 = 16 equally likely (episode, start) pairs.
    npz.save_dictionaries([encoded_episode(i, n) for i, n in enumerate([5, 8, 12])],
                          str(tmp_path))
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=160, chunk_length=4, seed=3)
    counts: dict[tuple[int, int], int] = {}
    for _, batch in zip(range(100), iterator):
        ids, steps = ids_and_steps(batch)
        for pair in zip(ids[:, 0].tolist(), steps[:, 0].tolist()):
            counts[pair] = counts.get(pair, 0) + 1
    expected_pairs = {(0, s) for s in range(2)} | {(1, s) for s in range(5)} | {
        (2, s) for s in range(9)}
    assert set(counts) == expected_pairs
    observed = np.array(list(counts.values()))
    chi_square = np.sum((observed - 1000) ** 2 / 1000)
    assert chi_square < 44.3  # 15 degrees of freedom, p = 1e-4


def test_short_episodes_are_skipped_unread_with_one_warning(tmp_path, count_loads):
    paths = npz.save_dictionaries(
        [encoded_episode(0, 3), encoded_episode(1, 10), encoded_episode(2, 4)], str(tmp_path))
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=16, chunk_length=5)
    with pytest.warns(UserWarning) as caught:
        batches = [next(iterator) for _ in range(3)]
    assert len(caught) == 1
    assert os.path.basename(paths[0]) in str(caught[0].message)
    assert os.path.basename(paths[2]) in str(caught[0].message)
    assert count_loads == [os.path.basename(paths[1])]
    assert all(np.all(ids_and_steps(b)[0] == 1) for b in batches)


@pytest.mark.parametrize("rows, reason", [([], "0 file"), ([3], "1 shorter than")])
@pytest.mark.parametrize("prefetch", [0, 1])
def test_no_usable_episode_raises_saying_why(tmp_path, rows, reason, prefetch):
    npz.save_dictionaries([encoded_episode(i, n) for i, n in enumerate(rows)], str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sampling.ChunkIterator(str(tmp_path), 4, 5, prefetch=prefetch) as iterator:
            for _ in range(2):  # and again, instead of hanging
                with pytest.raises(ValueError, match=f"no usable episode.*{reason}"):
                    next(iterator)


def test_new_files_are_in_the_next_batch_and_every_file_read_once(tmp_path, count_loads):
    npz.save_dictionaries([encoded_episode(i, 6) for i in range(3)], str(tmp_path))
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=64, chunk_length=3)

    def episode_ids() -> set[int]:
        return {int(i) for i in ids_and_steps(next(iterator))[0][:, 0]}

    assert episode_ids() == {0, 1, 2}
    npz.save_dictionaries([encoded_episode(i, 6) for i in (3, 4)], str(tmp_path))
    assert episode_ids() == {0, 1, 2, 3, 4}  # 64 chunks miss one of 5 episodes w.p. < 1e-5
    assert sorted(count_loads) == sorted(os.path.basename(p) for p in npz.episode_paths(
        str(tmp_path)))


def test_memory_stays_bounded_by_max_episodes(tmp_path, count_loads):
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=8, chunk_length=2,
                                 max_episodes_in_memory=3)
    sampled = set()
    for episode_id in range(12):
        npz.save_dictionaries([encoded_episode(episode_id, 4)], str(tmp_path))
        sampled |= set(ids_and_steps(next(iterator))[0].ravel().tolist())
        assert iterator.episodes_in_memory == min(episode_id + 1, 3)
    assert iterator.files_seen == 12
    assert len(count_loads) == len(set(count_loads)) < 12  # not every file was even read
    held = set(ids_and_steps(next(iterator))[0].ravel().tolist())
    assert len(held) <= 3


def test_inconsistent_episode_is_skipped_with_a_warning(tmp_path):
    npz.save_dictionaries([encoded_episode(0, 6)], str(tmp_path))
    (other,) = npz.save_dictionaries([encoded_episode(1, 6, size=8)], str(tmp_path))
    iterator = sampling.ChunkIterator(str(tmp_path), batch_size=8, chunk_length=3)
    with pytest.warns(UserWarning, match=re.escape(os.path.basename(other))):
        batch = next(iterator)
    assert np.all(ids_and_steps(batch)[0] == 0)


def test_prefetch_gives_the_same_batches_as_synchronous(tmp_path):
    npz.save_dictionaries([encoded_episode(i, 9) for i in range(4)], str(tmp_path))
    synchronous = sampling.ChunkIterator(str(tmp_path), 8, 4, seed=5)
    with sampling.ChunkIterator(str(tmp_path), 8, 4, seed=5, prefetch=3) as prefetched:
        for _ in range(6):
            expected, actual = next(synchronous), next(prefetched)
            for key in expected:
                np.testing.assert_array_equal(actual[key], expected[key])
    assert not prefetched._thread.is_alive()


@pytest.mark.parametrize("name", ["batch_size", "chunk_length", "max_episodes_in_memory"])
def test_bad_iterator_argument_is_named(tmp_path, name):
    arguments = dict(batch_size=2, chunk_length=2, max_episodes_in_memory=2)
    arguments[name] = 0
    with pytest.raises(ValueError, match=name):
        sampling.ChunkIterator(str(tmp_path), **arguments)


# --------------------------------------------------------------------------- reservoir


def test_reservoir_holds_a_uniform_subset_and_loads_only_kept_episodes():
    runs, capacity, offered = 2000, 3, 10
    held_counts = np.zeros(offered)
    for seed in range(runs):
        reservoir = EpisodeReservoir(capacity, seed)
        loads = []
        for episode_id in range(offered):
            def load(episode_id=episode_id):
                loads.append(episode_id)
                return {"reward": np.full(2, episode_id, np.float32)}
            reservoir.offer(load)
        held = [int(e["reward"][0]) for e in reservoir.episodes]
        assert len(held) == capacity and set(held) <= set(loads)
        held_counts[held] += 1
    # each episode held with probability 3/10; 5 standard deviations = 0.051
    np.testing.assert_allclose(held_counts / runs, capacity / offered, atol=0.051)


def test_reservoir_does_not_count_unusable_episodes():
    reservoir = EpisodeReservoir(2, seed=0)
    assert not reservoir.offer(lambda: None)
    assert len(reservoir) == 0 and reservoir.offered == 0


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    (kept,) = npz.save_dictionaries([encoded_episode(0, 3)], str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".20260101T000000000000-abcd1234-len3.npz.{dead}.tmp"
    live = tmp_path / f".20260101T000000000001-abcd1234-len3.npz.{os.getpid()}.tmp"
    stale.write_bytes(b"half an episode")
    live.write_bytes(b"being written")
    assert npz.remove_stale_temporaries(str(tmp_path)) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(kept), live.name])
    assert npz.remove_stale_temporaries(str(tmp_path / "missing")) == []


def test_episodes_with_a_newer_extra_column_are_trained_on_without_it(tmp_path):
    npz.save_dictionaries([encoded_episode(0, 6)], str(tmp_path))  # written by older code
    newer = {**encoded_episode(1, 6), "seed": np.full(6, 7, np.int64)}
    npz.save_dictionaries([newer], str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped
        batch = next(sampling.ChunkIterator(str(tmp_path), batch_size=64, chunk_length=3))
    assert sorted(batch) == ["action", "image", "reward"]
    assert set(ids_and_steps(batch)[0][:, 0]) == {0, 1}
