"""rendiff.io.contact_sheet: rows of picked frames, small frames scaled up by whole factors,
large ones shrunk by whole factors (box filter), checked pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest

from rendiff.io.contact_sheet import contact_sheet, pick_frames

LABEL_W, PAD = 110, 4


def _frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _cell(sheet: np.ndarray, row: int, col: int, cw: int, ch: int, head: int) -> np.ndarray:
    y = head + row * (ch + PAD) + PAD
    x = LABEL_W + col * (cw + PAD) + PAD
    return sheet[y:y + ch, x:x + cw]


def test_pick_frames_spreads_from_first_to_last():
    assert pick_frames(16, 6) == [0, 3, 6, 9, 12, 15]
    assert pick_frames(4, 6) == [0, 1, 2, 3]


def test_small_frames_are_scaled_up_by_a_whole_factor():
    rows = {"a": _frames(3, 20, 30, 1), "b": _frames(3, 20, 30, 2)}
    sheet = np.asarray(contact_sheet(rows, columns=3))
    scale = 128 // 30 + 1  # ceil(128 / 30) = 5
    for r, frames in enumerate(rows.values()):
        for c in range(3):
            expect = frames[c].repeat(scale, 0).repeat(scale, 1)
            np.testing.assert_array_equal(_cell(sheet, r, c, 30 * scale, 20 * scale, 22), expect)


@pytest.mark.parametrize(("h", "w", "shrink"), [(720, 1280, 2), (1080, 1920, 3), (601, 643, 2)])
def test_large_frames_are_shrunk_by_a_whole_factor(h, w, shrink):
    frames = _frames(2, h, w)
    sheet = np.asarray(contact_sheet({"a": frames}, columns=2))
    ch, cw = -(-h // shrink), -(-w // shrink)
    cell = _cell(sheet, 0, 1, cw, ch, 22).astype(np.float64)
    # box filter over whole shrink x shrink blocks (the last row and column: what is left)
    full_h, full_w = (h // shrink) * shrink, (w // shrink) * shrink
    blocks = frames[1, :full_h, :full_w].reshape(h // shrink, shrink, w // shrink, shrink, 3)
    mean = blocks.astype(np.float64).mean(axis=(1, 3))
    assert np.abs(cell[:h // shrink, :w // shrink] - mean).max() <= 1.0
    assert max(cw, ch) <= 640
    assert sheet.shape[1] == LABEL_W + 2 * (cw + PAD) + PAD
