"""Latent-space conditioning: inputs concatenated with the noisy latents along channels.

Two things enter the UNet this way (MIMO and SVD do the same):

- the reference image (appearance): its VAE latent ``[B, C, 1, h, w]`` (posterior mode, scaled),
  broadcast over the frames, as Stable Video Diffusion concatenates its image latent;
- control maps brought to latent resolution (``LatentControlEncoder``), each either by a small
  learned per-map downsampler or through the model's own frozen VAE encoder (``vae_map_names``:
  for maps that are images in the VAE's colour space, such as albedo and shading, whose latents
  then live in the same space as the latents being denoised), multiplied by the resolved
  control weights.

The UNet's ``conv_in`` reads ``[noisy latents, reference latent, map latents]`` in that order
(``concat_conditions``). New input channels of a trained UNet start at zero weight
(``SpatioTemporalUNet.widen_control_channels``), so the downsampler's own output convolution
is *not* zero-initialised: with both at zero neither would receive a gradient.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from rendiff.conditioners.guidance import MapEncoder, encode_frames, resize_weights
from rendiff.conditioners.models import vae_encode_video

__all__ = [
    "LatentControlEncoder",
    "concat_conditions",
    "encode_reference",
]


class LatentControlEncoder(ModelMixin, ConfigMixin):
    """Brings each control map to latent resolution for concatenation with the noisy latents.

    Args:
        map_names: the map types with a learned downsampler each.
        conditioning_channels: channels of a control image (3).
        block_out_channels: downsampler widths.
        channels_per_map: latent channels each learned downsampler contributes.
        downsample_factor: pixels per latent cell (the VAE's factor).
        vae_map_names: map types encoded by the pipeline's frozen VAE instead (posterior mode,
            scaled, like the reference image); they come after ``map_names`` in the output.
        vae_latent_channels: the VAE's latent channels (what each of those maps contributes).
    """

    @register_to_config
    def __init__(
        self,
        map_names: tuple[str, ...] = ("depth", "normal", "semantic"),
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 32),
        channels_per_map: int = 4,
        downsample_factor: int = 4,
        vae_map_names: tuple[str, ...] = (),
        vae_latent_channels: int = 4,
    ):
        super().__init__()
        both = sorted(set(map_names) & set(vae_map_names))
        if both:
            raise ValueError(f"maps {both} are in both map_names and vae_map_names")
        # an encoder of VAE maps alone has no parameters, but diffusers reads a module's device
        # and dtype from its first parameter or buffer and saves no file for an empty state:
        # such an encoder keeps one (saved) scalar buffer
        self.register_buffer("vae_anchor", torch.zeros(()), persistent=bool(vae_map_names))
        self.encoders = nn.ModuleDict(
            {
                name: MapEncoder(
                    conditioning_channels,
                    block_out_channels,
                    channels_per_map,
                    downsample_factor,
                    False,
                )
                for name in map_names
            }
        )

    @property
    def map_names(self) -> tuple[str, ...]:
        """Every map this encoder takes: the learned ones, then the VAE-encoded ones."""
        return tuple(self.config.map_names) + tuple(self.config.vae_map_names)

    @property
    def out_channels(self) -> int:
        """Channels this encoder adds to the UNet's input."""
        return (
            len(self.config.map_names) * self.config.channels_per_map
            + len(self.config.vae_map_names) * self.config.vae_latent_channels
        )

    def forward(
        self,
        controls: Mapping[str, Tensor],  # name -> [B, 3, T, H, W] in [0, 1]
        weights: Tensor,  # [B, M, T, H, W] resolved weights, M = len(map_names)
        chunk_size: int | None = None,
        vae: AutoencoderKL | None = None,
    ) -> Tensor:  # [B, out_channels, T, H / f, W / f]
        """Weighted per-map latents in ``map_names`` order; absent maps are zeros.

        ``vae`` (the pipeline's VAE) is needed when a VAE-encoded map is present; it is run
        without gradients (it is frozen while the denoiser trains)."""
        if not controls:
            raise ValueError("LatentControlEncoder needs at least one control map")
        f = self.config.downsample_factor
        ref = next(iter(controls.values()))
        b, _, t, h, w = ref.shape
        lw = resize_weights(weights.to(ref.dtype), h // f, w // f)
        learned = set(self.config.map_names)
        parts = []
        for i, name in enumerate(self.map_names):
            channels = (
                self.config.channels_per_map if name in learned else self.config.vae_latent_channels
            )
            if name not in controls:
                parts.append(ref.new_zeros(b, channels, t, h // f, w // f))
                continue
            if name in learned:
                feats = encode_frames(self.encoders[name], controls[name] * 2 - 1, chunk_size)
            else:
                if vae is None:
                    raise ValueError(f"map {name!r} is encoded by the VAE: pass vae=")
                with torch.no_grad():
                    feats = vae_encode_video(vae, controls[name] * 2 - 1, chunk_size or b * t)
            parts.append(feats * lw[:, i : i + 1])
        return torch.cat(parts, dim=1)


def encode_reference(
    vae: AutoencoderKL,
    image: Tensor,  # [B, 3, H, W] in [0, 1]
) -> Tensor:  # [B, C, 1, h, w]
    """The reference image's scaled VAE latent (posterior mode), one frame to broadcast."""
    return vae_encode_video(vae, image[:, :, None] * 2 - 1)


def concat_conditions(
    latents: Tensor,  # [B, C, T, h, w] noisy latents
    reference: Tensor | None = None,  # [B, Cr, 1, h, w] or [B, Cr, T, h, w]
    control: Tensor | None = None,  # [B, Cc, T, h, w]
) -> Tensor:  # [B, C + Cr + Cc, T, h, w]
    """The UNet's input: noisy latents, then the reference latent over all frames, then maps."""
    parts = [latents]
    if reference is not None:
        parts.append(reference.expand(-1, -1, latents.shape[2], -1, -1))
    if control is not None:
        parts.append(control)
    return torch.cat(parts, dim=1)
