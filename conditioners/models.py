"""The learned modules of rendiff's default video diffusion model: a per-frame VAE and a small
spatio-temporal UNet that denoises video latents.

Both are diffusers models (``ModelMixin`` + ``ConfigMixin``), so ``save_pretrained`` /
``from_pretrained`` work on a local folder and a pipeline can hold them as components.

- The VAE is diffusers' ``AutoencoderKL`` with small widths, applied frame by frame: video latents
  are ``[B, C, T, h, w]`` and each frame is encoded on its own (``vae_encode_video`` /
  ``vae_decode_video`` flatten the frames and run them in chunks, so long clips fit in memory).
- ``SpatioTemporalUNet`` is a 2D UNet (diffusers ``ResnetBlock2D`` / ``Downsample2D`` /
  ``Upsample2D`` / ``UNetMidBlock2D``) whose every block is followed by a temporal layer: a
  temporal convolution (``TemporalConv``, identity at initialisation), temporal self-attention
  (diffusers ``TransformerTemporalModel``, AnimateDiff's motion-module shape, with a
  zero-initialised output so it also starts as the identity), or nothing (the per-frame ablation).
  ``TemporalConv`` has the shape of diffusers' ``TemporalConvLayer`` but is not that class: a
  (3, 1, 1) ``Conv3d`` runs on PyTorch's slow non-oneDNN path on CPU (6x slower than the same
  convolution written as a (3, 1) ``Conv2d`` over ``[B, C, T, h * w]``, measured), and two
  convolutions instead of four halve its cost.
  It has no text encoder. Conditioning enters two ways:

  * latent-space concatenation: ``conv_in`` reads the noisy latents followed by
    ``reference_channels`` (the reference image's latent, broadcast over frames) and
    ``control_channels`` (control maps brought to latent resolution) channels;
    ``widen_control_channels`` adds input channels later with zero weights, so a trained model
    is unchanged until the new channels are learned;
  * an additive feature input, ``added_features`` ``[B, C0, T, h, w]``, summed with the output of
    ``conv_in`` (where Champ adds its guidance encoder's features).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import Tensor

__all__ = [
    "TEMPORAL_LAYERS",
    "SpatioTemporalUNet",
    "TemporalConv",
    "build_vae",
    "vae_decode_video",
    "vae_downsample_factor",
    "vae_encode_video",
]

TEMPORAL_LAYERS = ("conv", "attention", "none")


def build_vae(
    block_out_channels: tuple[int, ...] = (32, 64, 128),
    latent_channels: int = 4,
    layers_per_block: int = 1,
    norm_num_groups: int = 32,
    sample_size: int = 128,
    mid_block_add_attention: bool = False,
) -> AutoencoderKL:
    """A small per-frame ``AutoencoderKL``, downsampling by ``2 ** (len(block_out_channels) - 1)``.

    The default (32, 64, 128) gives 4x downsampling: 128x128 RGB -> 32x32x4 latents. The attention
    block in the VAE's middle is off by default: at 32x32 latents it costs more than it brings.
    """
    n = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        latent_channels=latent_channels,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
        mid_block_add_attention=mid_block_add_attention,
    )


def vae_downsample_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along each side."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _scale_shift(vae: AutoencoderKL) -> tuple[float, float]:
    shift = vae.config.shift_factor if vae.config.shift_factor is not None else 0.0
    return float(vae.config.scaling_factor), float(shift)


def vae_encode_video(
    vae: AutoencoderKL,
    video: Tensor,  # [B, 3, T, H, W] in [-1, 1]
    chunk_size: int = 8,
    generator: torch.Generator | None = None,
    sample: bool = False,
) -> Tensor:  # [B, C, T, h, w]
    """Encode a video frame by frame, ``chunk_size`` frames at a time, into scaled latents.

    Returns the posterior mode (``sample=False``, what conditioning and inference use) or a sample
    of the posterior (``sample=True``), times the VAE's ``scaling_factor``.
    """
    b, c, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    scale, shift = _scale_shift(vae)
    out = []
    for start in range(0, b * t, chunk_size):
        dist = vae.encode(frames[start : start + chunk_size]).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        out.append((z - shift) * scale)
    z = torch.cat(out)
    return z.reshape(b, t, *z.shape[1:]).permute(0, 2, 1, 3, 4)


def vae_decode_video(
    vae: AutoencoderKL,
    latents: Tensor,  # [B, C, T, h, w] scaled latents
    chunk_size: int = 8,
) -> Tensor:  # [B, 3, T, H, W] in [-1, 1] (not clamped)
    """Decode scaled latents frame by frame, ``chunk_size`` frames at a time."""
    b, c, t, h, w = latents.shape
    scale, shift = _scale_shift(vae)
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w) / scale + shift
    out = [vae.decode(z[s : s + chunk_size]).sample for s in range(0, b * t, chunk_size)]
    x = torch.cat(out)
    return x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)


class TemporalConv(nn.Module):
    """Residual temporal convolution over frames flattened into the batch; identity at init.

    GroupNorm, SiLU, a kernel-3 convolution along time, twice; the second convolution starts at
    zero. Frames at the ends see zero padding.
    """

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(
        self,
        x: Tensor,  # [B * T, C, h, w]
        num_frames: int,
    ) -> Tensor:  # [B * T, C, h, w]
        bt, c, h, w = x.shape
        y = x.reshape(bt // num_frames, num_frames, c, h * w).transpose(1, 2)  # [B, C, T, h * w]
        y = self.conv1(F.silu(self.norm1(y)))
        y = self.conv2(F.silu(self.norm2(y)))
        return x + y.transpose(1, 2).reshape(bt, c, h, w)


def _temporal_layer(
    kind: str, channels: int, groups: int, head_dim: int, max_frames: int
) -> nn.Module | None:
    """A residual layer mixing information across frames that is the identity at initialisation."""
    if kind == "conv":
        return TemporalConv(channels, groups)
    if kind == "attention":
        layer = TransformerTemporalModel(
            num_attention_heads=max(1, channels // head_dim),
            attention_head_dim=min(head_dim, channels),
            in_channels=channels,
            norm_num_groups=groups,
            positional_embeddings="sinusoidal",
            num_positional_embeddings=max_frames,
        )
        nn.init.zeros_(layer.proj_out.weight)
        nn.init.zeros_(layer.proj_out.bias)
        return layer
    return None


class _Stage(nn.Module):
    """ResNet blocks, each followed by a temporal layer, on frames flattened into the batch."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        temb_channels: int,
        groups: int,
        temporal: str,
        head_dim: int,
        max_frames: int,
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=c, out_channels=out_channels, temb_channels=temb_channels, groups=groups
            )
            for c in in_channels
        )
        layers = [
            _temporal_layer(temporal, out_channels, groups, head_dim, max_frames)
            for _ in in_channels
        ]
        self.temporal = nn.ModuleList(layers) if layers[0] is not None else None

    def forward_one(self, i: int, x: Tensor, temb: Tensor, num_frames: int) -> Tensor:
        x = self.resnets[i](x, temb)
        if self.temporal is None:
            return x
        layer = self.temporal[i]
        if isinstance(layer, TransformerTemporalModel):
            return layer(x, num_frames=num_frames, return_dict=False)[0]
        return layer(x, num_frames=num_frames)


class SpatioTemporalUNet(ModelMixin, ConfigMixin):
    """Denoises video latents ``[B, C, T, h, w]`` at a timestep, with optional conditioning.

    Args:
        in_channels: channels of the noisy latents (the VAE's latent channels).
        out_channels: channels predicted (epsilon or v, same as ``in_channels``).
        reference_channels: channels of the reference-image latent concatenated after the noisy
            latents (0: no reference input).
        control_channels: channels of latent-space control maps concatenated after the reference.
        block_out_channels: widths of the resolution levels; the first is ``C0``, the width of
            ``added_features``. Latent sides must be divisible by ``2 ** (levels - 1)``.
        layers_per_block: ResNet blocks per level going down (one more going up).
        temporal_layers: "conv", "attention" or "none" (per-frame ablation).
        mid_attention: spatial self-attention in the middle block.
        norm_num_groups: GroupNorm groups (must divide every width).
        attention_head_dim: channels per attention head.
        max_frames: longest window the temporal attention's positional embedding covers.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        reference_channels: int = 4,
        control_channels: int = 0,
        block_out_channels: tuple[int, ...] = (64, 128, 128),
        layers_per_block: int = 1,
        temporal_layers: str = "conv",
        mid_attention: bool = True,
        norm_num_groups: int = 32,
        attention_head_dim: int = 32,
        max_frames: int = 32,
    ):
        super().__init__()
        if temporal_layers not in TEMPORAL_LAYERS:
            raise ValueError(
                f"temporal_layers must be one of {TEMPORAL_LAYERS}, got {temporal_layers!r}"
            )
        widths = list(block_out_channels)
        c0 = widths[0]
        temb = 4 * c0
        groups = norm_num_groups
        args = dict(
            groups=groups,
            temporal=temporal_layers,
            head_dim=attention_head_dim,
            max_frames=max_frames,
        )

        self.time_proj = Timesteps(c0, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(c0, temb)
        self.conv_in = nn.Conv2d(
            in_channels + reference_channels + control_channels, c0, 3, padding=1
        )

        self.down_stages = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_channels = [c0]
        prev = c0
        for level, width in enumerate(widths):
            ins = [prev] + [width] * (layers_per_block - 1)
            self.down_stages.append(_Stage(ins, width, temb, **args))
            skip_channels += [width] * layers_per_block
            prev = width
            if level < len(widths) - 1:
                self.downsamplers.append(
                    Downsample2D(width, use_conv=True, out_channels=width, name="op")
                )
                skip_channels.append(width)

        self.mid_block = UNetMidBlock2D(
            in_channels=prev,
            temb_channels=temb,
            num_layers=1,
            resnet_groups=groups,
            add_attention=mid_attention,
            attention_head_dim=attention_head_dim,
        )
        self.mid_temporal = _temporal_layer(
            temporal_layers, prev, groups, attention_head_dim, max_frames
        )

        self.up_stages = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            ins = []
            for _ in range(layers_per_block + 1):
                ins.append(prev + skip_channels.pop())
                prev = width
            self.up_stages.append(_Stage(ins, width, temb, **args))
            if level > 0:
                self.upsamplers.append(Upsample2D(width, use_conv=True, out_channels=width))

        self.conv_norm_out = nn.GroupNorm(groups, c0, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(c0, out_channels, 3, padding=1)

    @property
    def latent_multiple(self) -> int:
        """Latent height and width must be multiples of this."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def widen_control_channels(self, extra: int) -> None:
        """Add ``extra`` latent-space control channels at the end of ``conv_in``'s input.

        The new input weights are zero, so the model's output is unchanged until they are trained.
        """
        old = self.conv_in
        new = nn.Conv2d(old.in_channels + extra, old.out_channels, 3, padding=1)
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, : old.in_channels] = old.weight
            new.bias.copy_(old.bias)
        self.conv_in = new
        self.register_to_config(control_channels=self.config.control_channels + extra)

    def forward(
        self,
        sample: Tensor,  # [B, in + reference + control channels, T, h, w]
        timestep: Tensor | float | int,  # scalar or [B]
        added_features: Tensor | None = None,  # [B, C0, T, h, w]
    ) -> Tensor:  # [B, out_channels, T, h, w]
        """Predict the noise (or v) for ``sample`` at ``timestep``."""
        b, c, t, h, w = sample.shape
        m = self.latent_multiple
        if h % m or w % m:
            raise ValueError(f"latent height and width must be multiples of {m}, got {h}x{w}")
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)

        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        timesteps = timesteps.expand(b).repeat_interleave(t)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))

        x = self.conv_in(x)
        if added_features is not None:
            x = x + added_features.permute(0, 2, 1, 3, 4).reshape(b * t, -1, h, w)

        skips = [x]
        for level, stage in enumerate(self.down_stages):
            for i in range(len(stage.resnets)):
                x = stage.forward_one(i, x, emb, t)
                skips.append(x)
            if level < len(self.downsamplers):
                x = self.downsamplers[level](x)
                skips.append(x)

        x = self.mid_block(x, emb)
        if isinstance(self.mid_temporal, TransformerTemporalModel):
            x = self.mid_temporal(x, num_frames=t, return_dict=False)[0]
        elif self.mid_temporal is not None:
            x = self.mid_temporal(x, num_frames=t)

        for level, stage in enumerate(self.up_stages):
            for i in range(len(stage.resnets)):
                x = stage.forward_one(i, torch.cat([x, skips.pop()], dim=1), emb, t)
            if level < len(self.upsamplers):
                x = self.upsamplers[level](x)

        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(b, t, -1, h, w).permute(0, 2, 1, 3, 4)
