"""``MapRefiner``: the decoded frames corrected in pixel space from the control maps.

The default model's diffusion runs on latents 4x smaller than the frame, so what one latent cell
cannot hold -- a small object's colour, an edge a pixel wide -- is lost however good the UNet is
(the VAE's own round trip keeps 90% of the colour). The maps themselves are exact at every pixel.
The refiner is a small per-frame convolutional network at full resolution that reads the decoded
frame beside the maps it was given (each map times its weight, and the weight itself, so a
dropped map reads as "not given" rather than as black) and adds a correction to the frame:

    frame' = frame + f(frame, map_1 * w_1, w_1, ..., map_M * w_M, w_M)

Two resolution levels (full and half), diffusers ``ResnetBlock2D`` blocks, a skip connection at
full resolution, and beside them a per-pixel linear path from the inputs (the blocks' GroupNorms
normalise over a whole frame, which would hide a colour shared by a large area); both outputs
start at zero, so an untrained refiner returns the frame unchanged. It is the last stage of
:class:`~rendiff.conditioners.pipeline.RendiffVideoPipeline` (after the VAE decoder, before
cropping) and is trained on the pipeline's
own generated frames (``tools/train_refiner.py``), so it corrects the errors the diffusion makes,
not only the VAE's. Maps it was not trained with are ignored; those it was trained with but that
are not given count as dropped (weight 0), as in the UNet's encoders.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from torch import Tensor

__all__ = ["APPEARANCE_MAPS", "MapRefiner"]

#: The maps that carry appearance rather than geometry: the lambertian input's two factors, the
#: shipped refiner's required maps, what the evaluation's geometry-only row withholds.
APPEARANCE_MAPS = ("albedo", "shading")


class MapRefiner(ModelMixin, ConfigMixin):
    """Adds a per-pixel correction to decoded frames from the control maps.

    Args:
        map_names: the maps it reads, in order (each a 3-channel image in [0, 1]).
        block_out_channels: widths at full and half resolution.
        norm_num_groups: GroupNorm groups (must divide both widths).
    """

    @register_to_config
    def __init__(
        self,
        map_names: tuple[str, ...] = ("albedo", "shading"),
        block_out_channels: tuple[int, int] = (32, 64),
        norm_num_groups: int = 8,
        lambertian: bool = False,
        required_maps: tuple[str, ...] = (),
    ):
        super().__init__()
        if len(block_out_channels) != 2:
            raise ValueError(f"block_out_channels must be two widths, got {block_out_channels}")
        if not map_names:
            raise ValueError("a refiner needs at least one map")
        stray = [m for m in required_maps if m not in map_names]
        if stray:
            raise ValueError(f"required_maps {stray} are not among the map_names {list(map_names)}")
        if lambertian and not set(APPEARANCE_MAPS) <= set(map_names):
            raise ValueError("lambertian needs the albedo and shading maps among map_names")
        c0, c1 = block_out_channels
        g = norm_num_groups
        cin = 3 + 4 * len(map_names) + (4 if lambertian else 0)
        self.conv_in = nn.Conv2d(cin, c0, 3, padding=1)
        self.block_in = ResnetBlock2D(in_channels=c0, out_channels=c0, temb_channels=None,
                                      groups=g)
        self.down = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(
            ResnetBlock2D(in_channels=c1, out_channels=c1, temb_channels=None, groups=g)
            for _ in range(2))
        self.up = nn.Conv2d(c1, c0, 3, padding=1)
        self.block_out = ResnetBlock2D(in_channels=2 * c0, out_channels=c0, temb_channels=None,
                                       groups=g)
        self.conv_out = nn.Conv2d(c0, 3, 3, padding=1)
        # a per-pixel linear path from the inputs: the blocks' GroupNorms see a whole frame, so
        # a colour shared by a large area would reach the output only through their residuals
        self.direct = nn.Conv2d(cin, 3, 1)
        for layer in (self.conv_out, self.direct):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def map_names(self) -> tuple[str, ...]:
        return tuple(self.config.map_names)

    def _resolve(
        self,
        frames: Tensor,  # [N, 3, H, W]
        maps: Mapping[str, Tensor],
        weights: Tensor | None,  # [N, M, H, W]; None: 1 where given
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Each map's image [N, 3, H, W] (zeros where not given) and weight [N, 1, H, W] (0
        where not given)."""
        n, _, h, w = frames.shape
        images, wts = {}, {}
        for i, name in enumerate(self.map_names):
            image = maps.get(name)
            if image is None:
                images[name] = frames.new_zeros((n, 3, h, w))
                wts[name] = frames.new_zeros((n, 1, h, w))
                continue
            images[name] = image.to(frames.dtype)
            wts[name] = (weights[:, i : i + 1].to(frames.dtype) if weights is not None
                         else frames.new_ones((n, 1, h, w)))
        return images, wts

    def _stack(self, frames: Tensor, images: dict[str, Tensor],
               wts: dict[str, Tensor]) -> Tensor:  # [N, 3 + 4M (+ 4), H, W]
        parts = [frames]
        for name in self.map_names:
            parts += [(images[name] * 2 - 1) * wts[name], wts[name]]
        if self.config.lambertian:
            a, s = APPEARANCE_MAPS
            both = wts[a] * wts[s]
            parts += [(images[a] * images[s] * 2 - 1) * both, both]
        return torch.cat(parts, dim=1)

    def inputs(
        self,
        frames: Tensor,  # [N, 3, H, W] in [-1, 1]
        maps: Mapping[str, Tensor],  # name -> [N, 3, H, W] in [0, 1]
        weights: Tensor | None = None,  # [N, M, H, W], M = len(map_names); None: 1 where given
    ) -> Tensor:  # [N, 3 + 4M (+ 4), H, W]
        """The network's input: the frame, then each map (scaled to [-1, 1]) times its weight
        and the weight; with ``lambertian``, last albedo times shading (a diffuse surface's
        colour, scaled to [-1, 1]) times both weights, and that weight."""
        return self._stack(frames, *self._resolve(frames, maps, weights))

    def forward(
        self,
        frames: Tensor,  # [N, 3, H, W] in [-1, 1]
        maps: Mapping[str, Tensor],  # name -> [N, 3, H, W] in [0, 1]
        weights: Tensor | None = None,  # [N, M, H, W]
    ) -> Tensor:  # [N, 3, H, W] in [-1, 1] (not clamped)
        """The frames plus the correction, scaled at each pixel by the smallest weight of the
        ``required_maps`` (none required: 1): where one of them is not given the frame is
        returned unchanged. H and W must be even."""
        h, w = frames.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"the refiner needs an even frame size, got {h}x{w}")
        images, wts = self._resolve(frames, maps, weights)
        gate = None
        for name in self.config.required_maps:
            gate = wts[name] if gate is None else torch.minimum(gate, wts[name])
        if gate is not None and not gate.any():
            return frames
        inputs = self._stack(frames, images, wts)
        x = self.conv_in(inputs)
        skip = self.block_in(x, None)
        x = self.down(skip)
        for block in self.mid:
            x = block(x, None)
        x = self.up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        x = self.block_out(torch.cat([x, skip], dim=1), None)
        correction = self.conv_out(F.silu(x)) + self.direct(inputs)
        return frames + (correction if gate is None else gate * correction)

    def refine_video(
        self,
        frames: Tensor,  # [1, 3, T, H, W] in [-1, 1]
        video: Mapping[str, Tensor],  # name -> [1, 3, T, H, W] in [0, 1]
        weights: Tensor,  # [1, M, T, H, W], M = len(map_names)
        chunk_size: int = 8,
    ) -> Tensor:  # [1, 3, T, H, W]
        """:meth:`forward` over a clip, ``chunk_size`` frames at a time."""
        def flat(x: Tensor, s: int) -> Tensor:  # frames s.. of a chunk, as a batch
            return x[0, :, s : s + chunk_size].transpose(0, 1)

        out = []
        for s in range(0, frames.shape[2], chunk_size):
            maps = {k: flat(v, s) for k, v in video.items() if k in self.map_names}
            out.append(self(flat(frames, s), maps, flat(weights, s)))
        return torch.cat(out).transpose(0, 1)[None]
