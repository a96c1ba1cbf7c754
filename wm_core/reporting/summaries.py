"""A small TensorBoard event-file writer that does not need TensorFlow.

Events are ``tensorboard.compat.proto`` protos framed as TFRecords by
TensorBoard's own pure-Python :class:`RecordWriter` (``uint64`` length,
masked CRC32C of the length, data, masked CRC32C of the data).  A file is
named ``events.out.tfevents.<time>.<host>.<pid>.<n>`` and starts with the
``brain.Event:2`` file-version event, as TensorFlow writes it.  TensorBoard
reads a directory's files in name order and drops events whose step goes
back, so a new file must sort after the older ones: ``<time>`` (seconds)
is raised past the newest file already in the directory when that one is
not older than now (e.g. a restart within the same second).  ``<n>`` counts
the files this process opened.

:func:`writer` keeps one open :class:`EventFileWriter` per summary directory
in a process, so repeated calls append to one file; a new process (a resumed
run) opens a new file in the same directory and TensorBoard merges them.
Whoever opened a directory's writer closes it with :func:`close`.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.record_writer import RecordWriter

__all__ = ["EventFileWriter", "writer", "close"]

_FILE_NUMBERS = itertools.count()
_FILE_TIME = re.compile(r"events\.out\.tfevents\.(\d+)\.")


def _file_time(summary_dir: str) -> int:
    """Now in whole seconds, or later than every event file in the directory."""
    times = [int(m.group(1)) for m in map(_FILE_TIME.match, os.listdir(summary_dir)) if m]
    return max([int(time.time())] + [t + 1 for t in times])


class EventFileWriter:
    """Appends summaries to one new event file in ``summary_dir``.

    Not thread-safe on its own; :func:`writer` hands out one per directory.
    """

    def __init__(self, summary_dir: str):
        os.makedirs(summary_dir, exist_ok=True)
        name = "events.out.tfevents.{:d}.{}.{:d}.{:d}".format(
            _file_time(summary_dir), socket.gethostname(), os.getpid(), next(_FILE_NUMBERS)
        )
        self.summary_dir = summary_dir
        self.path = os.path.join(summary_dir, name)
        self._records = RecordWriter(open(self.path, "wb"))
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def _write(self, event: event_pb2.Event) -> None:
        self._records.write(event.SerializeToString())

    def add_summary(self, summary: summary_pb2.Summary, step: int) -> None:
        """Write ``summary`` as one event at ``step``."""
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """A scalar (``simple_value``), shown in the scalars dashboard."""
        try:
            value = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"scalar summary {tag!r} must be a number, got {value!r}") from error
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        self.add_summary(summary, step)

    def add_image(self, tag: str, encoded: bytes, height: int, width: int, step: int) -> None:
        """An encoded PNG/GIF image (animated GIFs play in the images dashboard)."""
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=encoded
        )
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
        self.add_summary(summary, step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        """Markdown text, shown in the text dashboard."""
        self.add_summary(text_pb(tag, text), step)

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()

    @property
    def closed(self) -> bool:
        return self._records.closed


_WRITERS: dict[str, EventFileWriter] = {}
_WRITERS_LOCK = threading.Lock()


def writer(summary_dir: str | os.PathLike[str]) -> EventFileWriter:
    """The open writer of ``summary_dir`` in this process (created on first use)."""
    key = os.path.abspath(summary_dir)
    with _WRITERS_LOCK:
        if key not in _WRITERS:
            _WRITERS[key] = EventFileWriter(key)
        return _WRITERS[key]


def close(summary_dir: str | os.PathLike[str]) -> None:
    """Flush and close the open writer of ``summary_dir``, if any."""
    with _WRITERS_LOCK:
        event_writer = _WRITERS.pop(os.path.abspath(summary_dir), None)
    if event_writer is not None:
        event_writer.close()
