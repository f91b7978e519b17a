"""MP4 in and out through imageio's bundled ffmpeg (no system ffmpeg needed)."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch

from .atomic import atomic_path

__all__ = ["read_video", "to_uint8", "write_video"]


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


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float,
                quality: int = 8) -> Path:
    """Writes [T, H, W, 3] frames as H.264 mp4, atomically, at exactly the given size.

    Even sizes use yuv420p (plays everywhere); odd sizes need yuv444p, which H.264 allows."""
    data = to_uint8(frames)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be [T, H, W, 3], got {tuple(data.shape)}")
    h, w = data.shape[1:3]
    pix = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", fps=float(fps), codec="libx264", quality=quality,
            macro_block_size=1, pixelformat=pix, ffmpeg_log_level="error",
            # x264's "veryfast" preset: 2.3x faster than its default ("medium") on a 720p clip,
            # at the same quality setting, files within 25% of the size (benchmarks/bench_save.py)
            ffmpeg_params=["-preset", "veryfast"],
        )
        try:
            for frame in data:
                writer.append_data(frame)
        finally:
            writer.close()
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
