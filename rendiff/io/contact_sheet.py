"""Contact sheets: one labelled row per layer, a few frames per row, in one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path
from .png import png_bytes
from .video import to_uint8

__all__ = ["SHEET_COLUMNS", "contact_sheet", "pick_frames"]


#: frames per row of a run's contact sheet
SHEET_COLUMNS = 6


def pick_frames(total: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first to the last frame."""
    if total <= count:
        return list(range(total))
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def contact_sheet(
    rows: dict[str, torch.Tensor | np.ndarray],
    path: str | Path | None = None,
    columns: int = SHEET_COLUMNS,
    title: str | None = None,
    min_cell: int = 128,
    frame_numbers: list[int] | None = None,
    max_cell: int = 640,
) -> Image.Image:
    """Builds (and optionally writes, atomically) a grid image: one row per entry of ``rows``
    (name -> [T, H, W, 3] in [0, 1] or uint8), ``columns`` frames per row, a label at the left
    of each row and frame numbers on top. Small frames are scaled up to ``min_cell`` pixels
    (nearest neighbour); frames whose longer side passes ``max_cell`` are shrunk by the smallest
    whole factor that brings it within (box filter): a 1280x720 run's sheet is then 4k pixels
    wide rather than 8k (51 megapixels, most of a second to write as PNG). The videos keep every
    pixel.
    ``frame_numbers``: the rows hold only these frames of a longer clip (already picked, e.g.
    with :func:`pick_frames`), shown whole and labelled with these numbers."""
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    first = next(iter(rows.values()))
    T, H, W = first.shape[:3]
    if frame_numbers is not None and len(frame_numbers) != T:
        raise ValueError(f"frame_numbers: {len(frame_numbers)} numbers for {T} frames")
    idx = list(range(T)) if frame_numbers is not None else pick_frames(T, columns)
    scale = max(1, int(np.ceil(min_cell / max(H, W))))
    shrink = max(1, -(-max(H, W) // max_cell))
    cw, ch = (W * scale, H * scale) if shrink == 1 else (-(-W // shrink), -(-H // shrink))
    label_w, head_h, pad = 110, 22 + (24 if title else 0), 4
    sheet = Image.new("RGB", (label_w + len(idx) * (cw + pad) + pad,
                              head_h + len(rows) * (ch + pad) + pad), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    font, small = _font(14), _font(12)
    if title:
        draw.text((pad + 2, 4), title, fill=(235, 235, 235), font=font)
    for j, f in enumerate(idx):
        number = frame_numbers[f] if frame_numbers is not None else f
        draw.text((label_w + j * (cw + pad) + pad, head_h - 18), f"frame {number}",
                  fill=(200, 200, 200), font=small)
    for i, (name, frames) in enumerate(rows.items()):
        data = to_uint8(frames)
        y = head_h + i * (ch + pad) + pad
        draw.text((6, y + ch // 2 - 8), name, fill=(235, 235, 235), font=font)
        for j, f in enumerate(idx):
            tile = Image.fromarray(data[min(f, len(data) - 1)])
            if shrink > 1:
                tile = tile.reduce(shrink)
            elif scale > 1:
                tile = tile.resize((cw, ch), Image.NEAREST)
            sheet.paste(tile, (label_w + j * (cw + pad) + pad, y))
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(png_bytes(np.asarray(sheet)))  # 20x faster than Pillow's encoder
    return sheet
