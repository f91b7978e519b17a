"""Pixel-space conditioning: per-map control weights and a Champ-style guidance encoder.

Every control map (depth, normal, semantic, shading, pose, flow, ...) arrives as a control image
``[T, H, W, 3]`` in [0, 1]. The ``GuidanceEncoder`` gives each map type its own small convolutional
encoder, applied to every frame on its own (Champ's "inflated" 3D convolution: a 2D kernel over
each frame), going 3 -> 16 -> 32 -> 96 -> C channels with stride-2 steps down to the latent
resolution, and ending in a zero-initialised convolution to the UNet's first width. The features of
the maps are multiplied by their control weights and summed; the UNet adds the sum right after
its ``conv_in``. Because the last convolution starts at zero, an untrained encoder leaves the UNet's
output unchanged, so the encoder can be added to a trained UNet and learned on top of it.

Control weights follow Cosmos-Transfer: each map has a weight in [0, 1], either one scalar or a
per-pixel, per-frame map ``[T, H, W]``; wherever the weights at a pixel sum above 1 they are
divided by their sum. ``resolve_control_weights`` does that once, and the same resolved weights
scale both the pixel-space features and the latent-space maps (``rendiff.conditioners.latent``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

__all__ = [
    "GuidanceEncoder",
    "MapWeight",
    "resize_weights",
    "resolve_control_weights",
]

MapWeight = float | np.ndarray | Tensor
"""A control weight: a scalar in [0, 1] or a per-pixel, per-frame map ``[T, H, W]``."""


def resolve_control_weights(
    names: Sequence[str],
    present: Sequence[str],
    weights: Mapping[str, MapWeight] | None,
    num_frames: int,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    normalise: bool = True,
) -> Tensor:  # [M, T, H, W] float32
    """Per-map weights for the maps ``names`` (in that order), normalised where they sum above 1.

    Args:
        names: every map the model knows, in the model's order.
        present: the maps actually given; the others get weight 0.
        weights: optional per-map weight (scalar or ``[T, H, W]``); a present map without an
            entry gets 1.
        num_frames, height, width: the clip's size (per-pixel weights must match it).
        normalise: False returns each map's own weight, without the normalisation (what the
            refiner reads: how far to trust each map, whatever the others' weights).

    Returns:
        ``[M, T, H, W]`` weights in [0, 1] whose sum over maps is at most 1 at every pixel.

    Raises:
        ValueError: a weight for a map that is not present, a weight outside [0, 1], or a weight
            map of the wrong shape.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(present))
    if unknown:
        raise ValueError(f"control weights given for maps that are not in the controls: {unknown}")
    out = torch.zeros(len(names), num_frames, height, width, device=device)
    for i, name in enumerate(names):
        if name not in present:
            continue
        w = weights.get(name, 1.0)
        w = torch.as_tensor(np.asarray(w) if not isinstance(w, Tensor) else w, dtype=torch.float32)
        if w.ndim != 0 and tuple(w.shape) != (num_frames, height, width):
            raise ValueError(
                f"control weight for {name!r} must be a scalar or [T, H, W] = "
                f"[{num_frames}, {height}, {width}], got shape {list(w.shape)}"
            )
        if not torch.isfinite(w).all() or w.min() < 0 or w.max() > 1:
            raise ValueError(f"control weight for {name!r} must lie in [0, 1]")
        out[i] = w.to(device)
    if not normalise:
        return out
    total = out.sum(0, keepdim=True)
    return torch.where(total > 1, out / total.clamp_min(1e-12), out)


def resize_weights(
    weights: Tensor,  # [B, M, T, H, W]
    height: int,
    width: int,
) -> Tensor:  # [B, M, T, height, width]
    """Average-pool weight maps to a feature resolution (area resampling keeps sums <= 1)."""
    b, m, t, h, w = weights.shape
    if (h, w) == (height, width):
        return weights
    flat = weights.reshape(b * m * t, 1, h, w)
    return F.interpolate(flat, size=(height, width), mode="area").reshape(b, m, t, height, width)


class MapEncoder(nn.Module):
    """Per-frame convolutional encoder of one control image to latent resolution.

    3 -> block_out_channels[0] -> ... -> block_out_channels[-1] -> out_channels, with a stride-2
    step in each of the first ``log2(downsample_factor)`` transitions (ControlNet's conditioning
    embedding shape, which Champ's guidance encoder follows).
    """

    def __init__(
        self,
        in_channels: int,
        block_out_channels: Sequence[int],
        out_channels: int,
        downsample_factor: int,
        zero_init_out: bool,
    ):
        super().__init__()
        steps = int(round(math.log2(downsample_factor)))
        if 2**steps != downsample_factor or steps > len(block_out_channels) - 1:
            raise ValueError(
                "downsample_factor must be a power of two at most "
                f"2 ** (len(block_out_channels) - 1)"
                f" = {2 ** (len(block_out_channels) - 1)}, got {downsample_factor}"
            )
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1),
            nn.SiLU(),
        ]
        for i, (c_in, c_out) in enumerate(itertools.pairwise(block_out_channels)):
            stride = 2 if i < steps else 1
            layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.SiLU()]
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, stride=stride), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(block_out_channels[-1], out_channels, 3, padding=1)
        if zero_init_out:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor) -> Tensor:  # [N, 3, H, W] -> [N, out, H / f, W / f]
        return self.conv_out(self.body(x))


def encode_frames(
    encoder: nn.Module,
    video: Tensor,  # [B, 3, T, H, W]
    chunk_size: int | None,
) -> Tensor:  # [B, C, T, h, w]
    """Run a per-frame encoder over a video, ``chunk_size`` frames at a time."""
    b, c, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    step = chunk_size or b * t
    out = torch.cat([encoder(frames[s : s + step]) for s in range(0, b * t, step)])
    return out.reshape(b, t, *out.shape[1:]).permute(0, 2, 1, 3, 4)


class GuidanceEncoder(ModelMixin, ConfigMixin):
    """Encodes control images to weighted, summed features added after the UNet's ``conv_in``.

    Args:
        map_names: the map types, one encoder each (the model's map order).
        conditioning_channels: channels of a control image (3).
        block_out_channels: encoder widths (Champ: 16, 32, 96, 256).
        out_channels: the UNet's first width ``C0``.
        downsample_factor: pixels per latent cell (the VAE's factor).
    """

    @register_to_config
    def __init__(
        self,
        map_names: tuple[str, ...] = ("depth", "normal", "semantic"),
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 96, 128),
        out_channels: int = 32,
        downsample_factor: int = 4,
    ):
        super().__init__()
        self.encoders = nn.ModuleDict(
            {
                name: MapEncoder(
                    conditioning_channels, block_out_channels, out_channels, downsample_factor, True
                )
                for name in map_names
            }
        )

    @property
    def map_names(self) -> tuple[str, ...]:
        return tuple(self.config.map_names)

    def forward(
        self,
        controls: Mapping[str, Tensor],  # name -> [B, 3, T, H, W] in [0, 1]
        weights: Tensor,  # [B, M, T, H, W] resolved weights, M = len(map_names)
        chunk_size: int | None = None,
    ) -> Tensor:  # [B, out_channels, T, H / f, W / f]
        """Sum of each present map's features times its (resized) weight.

        Maps absent from ``controls`` contribute nothing; ``chunk_size`` frames are encoded at a
        time (the encoder is per-frame, so chunking does not change the result).
        """
        if not controls:
            raise ValueError("GuidanceEncoder needs at least one control map")
        f = self.config.downsample_factor
        ref = next(iter(controls.values()))
        b, _, t, h, w = ref.shape
        out = torch.zeros(
            b, self.config.out_channels, t, h // f, w // f, device=ref.device, dtype=ref.dtype
        )
        lw = resize_weights(weights.to(ref.dtype), h // f, w // f)
        for i, name in enumerate(self.map_names):
            if name not in controls:
                continue
            feats = encode_frames(self.encoders[name], controls[name] * 2 - 1, chunk_size)
            out = out + feats * lw[:, i : i + 1]
        return out
