"""Fitting a clip to what a pretrained video model takes, and back: the size it generates at
(scaled up towards the area it was trained at), frame counts of 4k + 1 and sizes that are
multiples of its token size (padded by repeating the last frame and the edges, then cropped
back). Shared by :mod:`.wan_vace` and :mod:`.cosmos_transfer`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["generation_size", "pad_clip", "padded_frames", "resize_clip"]


def generation_size(height: int, width: int, multiple: int,
                    area: int | None) -> tuple[int, int, int, int]:
    """(Hs, Ws, Hp, Wp): the size a ``height`` x ``width`` clip is generated at -- scaled up to
    about ``area`` pixels (aspect kept, multiples of ``multiple``) when smaller, else its own --
    and that size padded up to multiples of ``multiple``."""
    Hs, Ws = height, width
    if area is not None and width * height < area:
        scale = math.sqrt(area / (width * height))
        Hs = max(multiple, round(height * scale / multiple) * multiple)
        Ws = max(multiple, round(width * scale / multiple) * multiple)
    return Hs, Ws, math.ceil(Hs / multiple) * multiple, math.ceil(Ws / multiple) * multiple


def padded_frames(frames: int, temporal: int) -> int:
    """The fewest frames of the form ``temporal * k + 1`` (a causal video VAE packs the first
    frame alone, then ``temporal`` at a time) that hold ``frames``."""
    return (frames - 1 + temporal - 1) // temporal * temporal + 1


def pad_clip(x: Tensor, frames: int, height: int, width: int) -> Tensor:
    """[T, H, W, C] -> [frames, height, width, C]: the last frame repeated, edges repeated."""
    T, H, W = x.shape[:3]
    if frames > T:
        x = torch.cat([x, x[-1:].expand(frames - T, *x.shape[1:])])
    if height > H or width > W:
        x = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (0, width - W, 0, height - H),
                                    mode="replicate").permute(0, 2, 3, 1)
    return x.contiguous()


def resize_clip(frames: Tensor, height: int, width: int, mode: str) -> Tensor:
    """[T, h, w, C] -> [T, height, width, C] (antialiased when shrinking bilinearly)."""
    x = frames.permute(0, 3, 1, 2).float()
    kw = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
    x = torch.nn.functional.interpolate(x, size=(height, width), mode=mode, **kw)
    return x.permute(0, 2, 3, 1).contiguous()
