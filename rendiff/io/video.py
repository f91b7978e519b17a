"""MP4 in and out through imageio's bundled ffmpeg (no system ffmpeg needed)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import torch

from .atomic import atomic_path

__all__ = ["X264_PARAMS", "read_video", "to_uint8", "write_video", "write_videos"]


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] (or uint8) to uint8."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if frames.dtype == np.uint8:
        return frames
    # a few frames at a time: the float temporaries of a whole 720p clip are ~0.5 GB
    out = np.empty(frames.shape, dtype=np.uint8)
    for a in range(0, frames.shape[0], 4):
        part = frames[a:a + 4]
        if np.isnan(part).any():
            part = np.nan_to_num(part)
        scaled = np.clip(part, 0.0, 1.0)
        scaled *= 255.0
        scaled += 0.5
        out[a:a + 4] = scaled  # truncates like astype(uint8)
    return out


#: x264's "veryfast" preset: 2.3x faster than its default ("medium") on a 720p clip at the same
#: quality setting, files within 25% of the size (benchmarks/bench_save.py). One thread: the same
#: bytes on every machine (x264's output depends on its thread count), and a quarter less CPU
#: time than its automatic threads on a 720p clip; ffmpeg runs the encoders of several videos
#: side by side (:func:`write_videos`).
X264_PARAMS = ("-preset", "veryfast", "-threads", "1")


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float,
                quality: int = 8) -> Path:
    """Writes [T, H, W, 3] frames as H.264 mp4, atomically, at exactly the given size.

    Even sizes use yuv420p (plays everywhere); odd sizes need yuv444p, which H.264 allows.
    ``quality`` 1-10 maps to x264's constant rate factor as imageio does (8: CRF 10): the same
    bytes as imageio's writer with :data:`X264_PARAMS`, which sends frames one at a time and
    polls for ffmpeg's exit (1.3-1.7x slower for rendiff's clips)."""
    return write_videos([(path, frames)], fps, quality)[0]


def _feed(fd: int, data: np.ndarray) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(memoryview(data).cast("B"))
    except BrokenPipeError:
        pass  # ffmpeg stopped early: its exit status and message say why


def write_videos(jobs: Sequence[tuple[str | Path, torch.Tensor | np.ndarray]], fps: float,
                 quality: int = 8) -> list[Path]:
    """Writes several videos as :func:`write_video` does (the same bytes), in one ffmpeg process:
    each clip reaches it through its own pipe, fed by its own thread, and ffmpeg encodes them
    side by side. On a 256x256 run's eleven maps: a third less CPU time than one process each
    (ffmpeg's start-up is about half of such a clip's cost) and less than half the wall time.
    Every file is written under a temporary name and renamed once all are done; on an error
    none is."""
    if not 1 <= quality <= 10:
        raise ValueError(f"{jobs[0][0] if jobs else 'write_videos'}: quality must be 1-10, got "
                         f"{quality}")
    clips = []
    for path, frames in jobs:
        data = np.ascontiguousarray(to_uint8(frames))
        if data.ndim != 4 or data.shape[-1] != 3:
            raise ValueError(f"{path}: frames must be [T, H, W, 3], got {tuple(data.shape)}")
        clips.append(data)
    if not clips:
        return []
    rate = str(Fraction(float(fps)).limit_denominator())
    crf = str(int((1 - quality / 10) * 51))
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(path)) for path, _ in jobs]
        err = stack.enter_context(tempfile.TemporaryFile())
        pipes = [os.pipe() for _ in clips]
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error"]
        for (read, _), data in zip(pipes, clips, strict=True):
            h, w = data.shape[1:3]
            cmd += ["-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{w}x{h}", "-pix_fmt",
                    "rgb24", "-r", rate, "-i", f"pipe:{read}"]
        for i, (data, tmp) in enumerate(zip(clips, tmps, strict=True)):
            h, w = data.shape[1:3]
            pix = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
            cmd += ["-map", f"{i}:v", "-an", "-vcodec", "libx264", "-pix_fmt", pix, "-crf", crf,
                    *X264_PARAMS, str(tmp)]
        try:
            proc = subprocess.Popen(cmd, pass_fds=[read for read, _ in pipes],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err)
        except BaseException:
            for fds in pipes:
                for fd in fds:
                    os.close(fd)
            raise
        for read, _ in pipes:
            os.close(read)
        feeders = [threading.Thread(target=_feed, args=(write, data), daemon=True)
                   for (_, write), data in zip(pipes, clips, strict=True)]
        try:
            for t in feeders:
                t.start()
            for t in feeders:
                t.join()
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while writing
                proc.kill()
                proc.wait()
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            names = ", ".join(str(path) for path, _ in jobs)
            raise OSError(f"{names}: ffmpeg could not write the video (exit status {code}): "
                          f"{lines[-1] if lines else 'no message'}")
    return [Path(path) for path, _ in jobs]


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Reads an mp4 as uint8 [T, H, W, 3] and its frame rate."""
    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        fps = float(reader.get_meta_data().get("fps", 0.0))
        frames = np.stack([f[..., :3] for f in reader])
    finally:
        reader.close()
    return frames, fps
