"""rendiff.save writes its videos on other threads while it encodes the next map
(rendiff/io/outputs._VideoQueue): paths recorded in the order given, a bounded number held,
a writer's error raised, and an error in the encoding itself not hidden by the writers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rendiff.io import outputs


def test_videos_are_recorded_in_order_with_a_bounded_queue(monkeypatch):
    held, peak, lock = [0], [0], threading.Lock()

    def slow_write(path, frames, fps):
        time.sleep(0.02 if "a" in path.name else 0.0)
        with lock:
            held[0] -= 1
        return path

    monkeypatch.setattr(outputs, "write_video", slow_write)
    written: dict[str, Path] = {}
    with outputs._VideoQueue(10.0, written) as videos:
        for name in ("a1", "b2", "a3", "b4", "a5"):
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
            videos.write(name, Path(f"{name}.mp4"), None)
    assert list(written) == ["a1", "b2", "a3", "b4", "a5"]
    assert written["a3"] == Path("a3.mp4")
    # WORKERS + 1 in the queue plus the one being handed over
    assert peak[0] <= outputs._VideoQueue.WORKERS + 2


def test_a_writer_error_is_raised(monkeypatch):
    def failing(path, frames, fps):
        raise OSError(f"{path}: disk full")

    monkeypatch.setattr(outputs, "write_video", failing)
    with pytest.raises(OSError, match="disk full"), outputs._VideoQueue(10.0, {}) as videos:
        videos.write("x", Path("x.mp4"), None)


def test_an_encoding_error_is_not_hidden_by_the_writers(monkeypatch):
    def failing(path, frames, fps):
        raise OSError("writer")

    monkeypatch.setattr(outputs, "write_video", failing)
    with pytest.raises(ValueError, match="encoding"), outputs._VideoQueue(10.0, {}) as videos:
        videos.write("x", Path("x.mp4"), None)
        raise ValueError("encoding")
