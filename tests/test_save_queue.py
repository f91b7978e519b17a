"""rendiff.save writes its videos in batches, one ffmpeg process per batch on a writer thread,
while it encodes the next maps (rendiff/io/outputs._VideoQueue): paths recorded in the order
given, batches of the set size, at most two held, a writer's error raised, and an error in the
encoding itself not hidden by the writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rendiff.io import outputs


def test_batches_keep_the_order_and_at_most_two_are_held(monkeypatch):
    monkeypatch.setattr(outputs._VideoQueue, "BATCH_BYTES", 250)
    batches, held, peak, lock = [], [0], [0], threading.Lock()

    def slow_write(jobs, fps):
        time.sleep(0.02)
        with lock:
            batches.append([p.name for p, _ in jobs])
            held[0] -= len(jobs)
        return [p for p, _ in jobs]

    monkeypatch.setattr(outputs, "write_videos", slow_write)
    written: dict[str, Path] = {}
    with outputs._VideoQueue(10.0, written) as videos:
        for i in range(7):
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
            videos.write(f"k{i}", Path(f"v{i}.mp4"), np.zeros(100, np.uint8))
    assert list(written) == [f"k{i}" for i in range(7)]
    assert written["k3"] == Path("v3.mp4")
    # 100 bytes each, a batch as soon as it reaches 250: three, three, then the last one
    assert batches == [["v0.mp4", "v1.mp4", "v2.mp4"], ["v3.mp4", "v4.mp4", "v5.mp4"],
                       ["v6.mp4"]]
    assert peak[0] <= 7  # two batches of three, plus the one being handed over


def test_a_writer_error_is_raised(monkeypatch):
    def failing(jobs, fps):
        raise OSError(f"{jobs[0][0]}: disk full")

    monkeypatch.setattr(outputs, "write_videos", failing)
    with pytest.raises(OSError, match="disk full"), outputs._VideoQueue(10.0, {}) as videos:
        videos.write("x", Path("x.mp4"), np.zeros(4, np.uint8))


def test_an_encoding_error_is_not_hidden_by_the_writer(monkeypatch):
    monkeypatch.setattr(outputs._VideoQueue, "BATCH_BYTES", 1)

    def failing(jobs, fps):
        raise OSError("writer")

    monkeypatch.setattr(outputs, "write_videos", failing)
    with pytest.raises(ValueError, match="encoding"), outputs._VideoQueue(10.0, {}) as videos:
        videos.write("x", Path("x.mp4"), np.zeros(4, np.uint8))
        raise ValueError("encoding")
