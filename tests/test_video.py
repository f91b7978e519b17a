"""rendiff.io.video: mp4 written straight through ffmpeg's pipe, against imageio's own writer
(the same bytes for the same settings) and read back."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from rendiff.io import video
from rendiff.io.video import read_video, write_video, write_videos


def _clip(t: int, h: int, w: int) -> np.ndarray:
    v, u = np.mgrid[0:h, 0:w]
    frames = [np.stack([(u * 4 + 9 * k) % 256, (v * 3) % 256, ((u + v) * 2 + 5 * k) % 256], -1)
              for k in range(t)]
    return np.stack(frames).astype(np.uint8)


@pytest.mark.parametrize(("h", "w", "pix"), [(48, 64, "yuv420p"), (37, 50, "yuv444p")])
def test_same_bytes_as_imageios_writer(tmp_path, h, w, pix):
    frames = _clip(6, h, w)
    write_video(tmp_path / "ours.mp4", frames, 24.0)
    ref = imageio.get_writer(tmp_path / "imageio.mp4", format="FFMPEG", fps=24.0,
                             codec="libx264", quality=8, macro_block_size=1, pixelformat=pix,
                             ffmpeg_log_level="error", ffmpeg_params=list(video.X264_PARAMS))
    for f in frames:
        ref.append_data(f)
    ref.close()
    assert (tmp_path / "ours.mp4").read_bytes() == (tmp_path / "imageio.mp4").read_bytes()


def test_round_trip_float_frames_and_fractional_rate(tmp_path):
    frames = _clip(5, 40, 48).astype(np.float32) / 255.0
    path = write_video(tmp_path / "a.mp4", frames, 30000 / 1001)
    back, fps = read_video(path)
    assert back.shape == (5, 40, 48, 3) and back.dtype == np.uint8
    assert fps == pytest.approx(29.97, abs=0.01)
    err = back.astype(np.float64) - np.round(frames * 255)
    assert 10 * np.log10(255**2 / np.mean(err**2)) > 35  # CRF 10: near lossless
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_several_videos_in_one_process_are_the_single_files(tmp_path):
    clips = [_clip(5, 48, 64), _clip(7, 37, 50), _clip(3, 16, 16).astype(np.float32) / 255]
    paths = write_videos([(tmp_path / f"m{i}.mp4", c) for i, c in enumerate(clips)], 12.0)
    assert paths == [tmp_path / f"m{i}.mp4" for i in range(3)]
    for i, c in enumerate(clips):
        write_video(tmp_path / f"s{i}.mp4", c, 12.0)
        assert (tmp_path / f"m{i}.mp4").read_bytes() == (tmp_path / f"s{i}.mp4").read_bytes()
    assert write_videos([], 12.0) == []


def test_an_ffmpeg_failure_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(video.imageio_ffmpeg, "get_ffmpeg_exe", lambda: "false")
    with pytest.raises(OSError, match=r"b\.mp4: ffmpeg could not write the video \(exit"):
        write_video(tmp_path / "b.mp4", _clip(2, 8, 8), 10.0)
    with pytest.raises(OSError, match=r"c\.mp4, .*d\.mp4: ffmpeg could not write"):
        write_videos([(tmp_path / "c.mp4", _clip(2, 8, 8)), (tmp_path / "d.mp4", _clip(2, 8, 8))],
                     10.0)
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_quality_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"c\.mp4: frames must be \[T, H, W, 3\]"):
        write_video(tmp_path / "c.mp4", np.zeros((2, 8, 8), np.uint8), 10.0)
    with pytest.raises(ValueError, match="quality must be 1-10, got 0"):
        write_video(tmp_path / "c.mp4", _clip(2, 8, 8), 10.0, quality=0)
