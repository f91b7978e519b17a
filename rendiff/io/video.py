"""MP4 in and out through imageio's bundled ffmpeg (no system ffmpeg needed)."""

from __future__ import annotations

import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import torch

from .atomic import atomic_path

__all__ = ["X264_PARAMS", "read_video", "to_uint8", "write_video"]


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
#: time than its automatic threads on a 720p clip; rendiff.save runs two writers at a time.
X264_PARAMS = ("-preset", "veryfast", "-threads", "1")


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float,
                quality: int = 8) -> Path:
    """Writes [T, H, W, 3] frames as H.264 mp4, atomically, at exactly the given size.

    Even sizes use yuv420p (plays everywhere); odd sizes need yuv444p, which H.264 allows.
    ``quality`` 1-10 maps to x264's constant rate factor as imageio does (8: CRF 10). The
    frames go to imageio's bundled ffmpeg in one write through a pipe (imageio's writer sends
    them a frame at a time and polls for ffmpeg's exit: 1.3-1.7x slower for rendiff's clips)."""
    data = to_uint8(frames)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be [T, H, W, 3], got {tuple(data.shape)}")
    if not 1 <= quality <= 10:
        raise ValueError(f"{path}: quality must be 1-10, got {quality}")
    h, w = data.shape[1:3]
    pix = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
    rate = Fraction(float(fps)).limit_denominator()
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as err:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-f", "rawvideo", "-vcodec", "rawvideo",
               "-s", f"{w}x{h}", "-pix_fmt", "rgb24", "-r", str(rate), "-i", "-", "-an",
               "-vcodec", "libx264", "-pix_fmt", pix, "-crf", str(int((1 - quality / 10) * 51)),
               "-v", "error",
               *X264_PARAMS, str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err)
        try:
            try:
                proc.stdin.write(memoryview(np.ascontiguousarray(data)).cast("B"))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped early: its exit status and message say why
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while writing
                proc.kill()
                proc.wait()
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise OSError(f"{path}: ffmpeg could not write the video (exit status {code}): "
                          f"{lines[-1] if lines else 'no message'}")
    return Path(path)


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Reads an mp4 as uint8 [T, H, W, 3] and its frame rate."""
    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        fps = float(reader.get_meta_data().get("fps", 0.0))
        frames = np.stack([f[..., :3] for f in reader])
    finally:
        reader.close()
    return frames, fps
