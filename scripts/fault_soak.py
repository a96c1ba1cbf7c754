"""Throw random faults at a multi-environment asynchronous run; print what survived.

Run by hand (not a test: it takes minutes)::

    .venv/bin/python scripts/fault_soak.py --faults 30

Each run is ``wm-run --gin_file configs/tests/planet_tiny.gin`` with
``num_envs`` environment workers and a learner process
(``async_training = True``).  At a random moment of an attempt one fault is
thrown, drawn evenly from:

* ``parent``: SIGKILL the ``wm-run`` process alone (not its group);
* ``worker``: SIGKILL one environment worker (``wm_core.tasks.worker``);
* ``learner``: SIGKILL the learner (``wm-run learn``);
* ``disk-full``: the attempt's episode saves (``numpy.savez_compressed``)
  see a disk with ``--disk_bytes`` bytes free: the first save that needs
  more writes what fits and fails with ``ENOSPC`` (injected by a
  ``sitecustomize`` module on the attempt's ``PYTHONPATH``).

After the attempt's ``wm-run`` ends (killed, or stopped by the fault), every
process it had started must end within ``--grace_s`` seconds: those still
running are counted as orphans (and killed).  Then the run is started again
on the same ``--output_dir`` until it completes; its episodes are checked
against the ones the config asks for (by their ``seed`` column): lost,
duplicated, unexpected.  An attempt that exits with an error should say it
in one line: those whose output holds a Python traceback are counted.  Runs
follow each other until ``--faults`` faults were thrown.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from wm_core.ownership import descendants, is_running

FAULTS = ("parent", "worker", "learner", "disk-full")

# sitecustomize.py of a disk-full attempt: numpy.savez_compressed writes into
# a file that takes WM_SOAK_DISK_BYTES bytes in all, then raises ENOSPC.
DISK_FULL = """
import errno, os
import numpy

_free = [int(os.environ["WM_SOAK_DISK_BYTES"])]
_savez_compressed = numpy.savez_compressed


class _FullDisk:
    def __init__(self, file):
        self._file = file

    def write(self, data):
        data = bytes(data)
        if len(data) > _free[0]:
            self._file.write(data[:_free[0]])
            _free[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _free[0] -= len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


def savez_compressed(file, *args, **kwargs):
    return _savez_compressed(_FullDisk(file) if hasattr(file, "write") else file, *args, **kwargs)


numpy.savez_compressed = savez_compressed
"""
EVAL_SEED_OFFSET = 1_000_000  # wm_core.loops.train_eval's


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--config", default="configs/tests/planet_tiny.gin")
    parser.add_argument("--num_envs", type=int, default=2)
    parser.add_argument("--ratio", type=float, default=0.2, help="train_steps_per_env_step")
    parser.add_argument("--num_iterations", type=int, default=4)
    parser.add_argument("--seed_episodes", type=int, default=2)
    parser.add_argument("--work_dir", help="where the runs go (default: a new temporary directory)")
    parser.add_argument("--grace_s", type=float, default=10.0)
    parser.add_argument("--hang_s", type=float, default=180.0,
                        help="an attempt still running this long after its fault counts as a hang")
    parser.add_argument("--fault_window_s", type=float, nargs=2, default=(4.0, 40.0),
                        help="the fault comes this many seconds after an attempt's start")
    parser.add_argument("--disk_bytes", type=int, default=1000,
                        help="free space the disk-full fault leaves for episode saves")
    parser.add_argument("--seed", type=int, default=0, help="of the fault schedule")
    parser.add_argument("--kinds", nargs="+", choices=FAULTS, default=list(FAULTS),
                        help="the faults drawn from")
    return parser


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.counts: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        # printed even when none
        self.counts.update(dict.fromkeys(("orphans", "hangs", "error exits with a traceback"), 0))
        self.work_dir = args.work_dir or tempfile.mkdtemp(prefix="wm-fault-soak-")
        self.inject_dir = os.path.join(self.work_dir, "inject")
        os.makedirs(self.inject_dir, exist_ok=True)
        with open(os.path.join(self.inject_dir, "sitecustomize.py"), "w") as file:
            file.write(DISK_FULL)
        self.expected = {  # episode seeds (the run's seed is 0)
            "train": list(range(args.seed_episodes + args.num_iterations)),
            "eval": [EVAL_SEED_OFFSET + i for i in range(args.num_iterations // 2)],
        }

    def command(self, output_dir: str) -> list[str]:
        a = self.args
        params = {
            "num_envs": a.num_envs, "async_training": True, "train_steps_per_env_step": a.ratio,
            "num_iterations": a.num_iterations, "seed_episodes": a.seed_episodes,
            "num_train_episodes_per_iteration": 1, "eval_every_n_iterations": 2,
            "num_eval_episodes": 1,
        }
        command = [sys.executable, "-m", "wm_core.cli", "--gin_file", a.config, "--output_dir", output_dir]
        for name, value in params.items():
            command += ["--gin_param", f"wm.train_eval_loop.{name} = {value!r}"]
        return command

    # ------------------------------------------------------------------- one attempt

    def attempt(self, output_dir: str, fault: str | None) -> int:
        """One ``wm-run`` on ``output_dir``, with ``fault`` thrown at a random moment; its status."""
        environment = dict(os.environ)
        if fault == "disk-full":
            environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [self.inject_dir, environment.get("PYTHONPATH")]))
            environment["WM_SOAK_DISK_BYTES"] = str(self.args.disk_bytes)
        log_path = output_dir + ".log"
        log_start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        process = subprocess.Popen(
            self.command(output_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env=environment,
        )
        log = threading.Thread(target=_copy_output, args=(process.stdout, log_path))
        log.start()
        started, seen = time.monotonic(), set()
        fault_at = started + self.rng.uniform(*self.args.fault_window_s)
        thrown = fault in (None, "disk-full")  # the disk-full attempt's fault is its disk
        while process.poll() is None:
            seen.update(descendants(process.pid))
            if not thrown and time.monotonic() >= fault_at:
                thrown = self.throw(fault, process)
                fault_at = time.monotonic() + 1.0  # its target not up yet: try again in a second
            if thrown and time.monotonic() - started > self.args.hang_s + self.args.fault_window_s[1]:
                self.counts["hangs"] += 1
                process.kill()
            time.sleep(0.1)
        log.join()
        if fault == "disk-full" and process.returncode != 0:  # else it saved nothing: no fault
            self.counts["fault disk-full"] += 1
        if process.returncode not in (0, -signal.SIGKILL):
            self.errors[self.last_error(output_dir)] += 1
            with open(log_path, "rb") as file:
                file.seek(log_start)
                self.counts["error exits with a traceback"] += b"Traceback" in file.read()
        self.count_orphans(seen)
        self.counts["partial episode files visible"] += _partial_episode_files(output_dir)
        return process.returncode

    def throw(self, fault: str, process: subprocess.Popen) -> bool:
        """SIGKILL ``fault``'s target; ``False`` if it is not running yet."""
        if fault == "parent":
            target = process.pid
            if any(_is_ours(pid, "wm_core.cli learn") for pid in descendants(process.pid)):
                self.counts["parent kills while the learner ran"] += 1
        else:
            marker = "wm_core.tasks.worker" if fault == "worker" else "wm_core.cli learn"
            targets = [pid for pid in descendants(process.pid) if _is_ours(pid, marker)]
            if not targets:
                return False
            target = self.rng.choice(targets)
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.counts[f"fault {fault}"] += 1
        return True

    def count_orphans(self, pids: set[int]) -> None:
        deadline = time.monotonic() + self.args.grace_s
        alive = [pid for pid in pids if is_running(pid)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [pid for pid in alive if is_running(pid)]
        for pid in alive:
            if _is_ours(pid, "wm_core"):  # not a new process that reused the pid
                self.counts["orphans"] += 1
                print(f"  orphan: {pid} {_command_line(pid)}", flush=True)
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def last_error(output_dir: str) -> str:
        with open(output_dir + ".log") as log:  # the exception's line, not gin's "In call to ..."
            lines = [line.strip() for line in log if line.strip() and not line.startswith(" ")]
        return lines[-1][:160] if lines else "(no output)"

    # ------------------------------------------------------------------- runs

    def faults_thrown(self) -> int:
        return sum(count for name, count in self.counts.items() if name.startswith("fault "))

    def run(self, index: int) -> None:
        """One run: faulty attempts until the faults are thrown or it completes, then clean ones."""
        output_dir = os.path.join(self.work_dir, f"run-{index}")
        status = None
        while status != 0:
            fault = self.rng.choice(self.args.kinds) if self.faults_thrown() < self.args.faults else None
            if status is not None:
                self.counts["restarts"] += 1
            status = self.attempt(output_dir, fault)
            print(f"run {index}: fault {fault or '-'}: status {status}", flush=True)
        self.counts["runs completed"] += 1
        for phase, expected in self.expected.items():
            seeds = _episode_seeds(os.path.join(output_dir, "episodes", phase))
            self.counts["episodes lost"] += len(set(expected) - set(seeds))
            self.counts["episodes duplicated"] += len(seeds) - len(set(seeds))
            self.counts["episodes unexpected"] += len(set(seeds) - set(expected))
            self.counts["episodes checked"] += len(expected)


def _copy_output(pipe, path: str) -> None:
    with pipe, open(path, "ab") as log:
        for line in pipe:
            log.write(line)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_ours(pid: int, marker: str) -> bool:
    return marker in _command_line(pid)


def _episode_files(directory: str) -> list[str]:
    """The episode files a reader sees (temporaries are hidden)."""
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.endswith(".npz") and not name.startswith(".")]


def _episode_seeds(directory: str) -> list[int]:
    seeds = []
    for path in _episode_files(directory):
        with np.load(path) as archive:
            seeds.append(int(archive["seed"][0]))
    return seeds


def _partial_episode_files(output_dir: str) -> int:
    partial = 0
    for phase in ("train", "eval"):
        for path in _episode_files(os.path.join(output_dir, "episodes", phase)):
            try:
                with np.load(path) as archive:
                    archive["reward"]
            except (OSError, ValueError, KeyError, EOFError):
                partial += 1
    return partial


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    soak = Soak(args)
    start = time.monotonic()
    index = 0
    try:
        while soak.faults_thrown() < args.faults:
            soak.run(index)
            index += 1
    except KeyboardInterrupt:  # the figures so far (the run in progress is not checked)
        print("interrupted")
    print(f"\nfault soak: {args.num_envs} environments, asynchronous training (ratio {args.ratio}), "
          f"{args.config}; runs in {soak.work_dir}")
    for name in sorted(soak.counts):
        print(f"  {name}: {soak.counts[name]}")
    for message, count in soak.errors.most_common():
        print(f"  error exit x{count}: {message}")
    print(f"  wall time: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
