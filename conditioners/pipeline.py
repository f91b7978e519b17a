"""``RendiffVideoPipeline``: paint an RGB video over rendered control maps.

A diffusers ``DiffusionPipeline`` with components ``vae`` (per-frame ``AutoencoderKL``), ``unet``
(``SpatioTemporalUNet``), ``scheduler`` (any diffusers scheduler with ``set_timesteps`` /
``scale_model_input`` / ``step``; DDIM, Euler and DPM-Solver++ are tested), and the optional
conditioners ``guidance_encoder`` (pixel-space, features added after ``conv_in``) and
``latent_encoder`` (latent-space, concatenated with the noisy latents). The reference image's
latent is concatenated as well (SVD-style) when the UNet has reference channels.

Long clips are denoised in overlapping temporal windows: at every denoising step each window's
prediction is weighted by a linear ramp over the frames it shares with its neighbours and the
weighted predictions are summed, so the scheduler steps one seamless latent video. Guidance
encoding and VAE coding run ``chunk_size`` frames at a time, so memory does not grow with the
clip's length beyond the latents themselves.

Saved and loaded with ``save_pretrained`` / ``from_pretrained`` on a local folder.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from tqdm.auto import tqdm

from rendiff import defaults
from rendiff.conditioners.guidance import GuidanceEncoder, MapWeight, resolve_control_weights
from rendiff.conditioners.latent import LatentControlEncoder, concat_conditions, encode_reference
from rendiff.conditioners.models import (
    SpatioTemporalUNet,
    build_vae,
    vae_decode_video,
    vae_downsample_factor,
)
from rendiff.conditioners.refiner import MapRefiner

__all__ = [
    "INJECTIONS",
    "PRESETS",
    "RendiffVideoPipeline",
    "RendiffVideoPipelineOutput",
    "blend_weights",
    "build_pipeline",
    "default_scheduler_config",
    "keep_static_pixels",
    "temporal_windows",
]

INJECTIONS = ("pixel", "latent", "both", "none")
"""Where control maps enter the UNet: guidance encoder, latent concatenation, both, or nowhere."""

PRESETS: dict[str, dict] = {
    "default": dict(
        vae=dict(block_out_channels=(32, 64, 128), latent_channels=4, norm_num_groups=16),
        unet=dict(
            block_out_channels=(32, 64, 128),
            layers_per_block=1,
            norm_num_groups=16,
            attention_head_dim=32,
        ),
        guidance=dict(block_out_channels=(16, 32, 96, 128)),
        latent=dict(block_out_channels=(16, 32, 32), channels_per_map=4),
    ),
    "large": dict(
        vae=dict(block_out_channels=(32, 64, 128), latent_channels=4, norm_num_groups=16),
        unet=dict(
            block_out_channels=(128, 256, 512),
            layers_per_block=2,
            norm_num_groups=32,
            attention_head_dim=64,
        ),
        guidance=dict(block_out_channels=(16, 32, 96, 256)),
        latent=dict(block_out_channels=(16, 32, 64), channels_per_map=4),
    ),
    "tiny": dict(
        vae=dict(block_out_channels=(16, 32), latent_channels=4, norm_num_groups=8),
        unet=dict(
            block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, attention_head_dim=8
        ),
        guidance=dict(block_out_channels=(8, 16)),
        latent=dict(block_out_channels=(8, 16), channels_per_map=2),
    ),
    "small": dict(
        vae=dict(block_out_channels=(32, 64, 128), latent_channels=4, norm_num_groups=16),
        unet=dict(
            block_out_channels=(16, 32, 64),
            layers_per_block=1,
            norm_num_groups=8,
            attention_head_dim=16,
        ),
        guidance=dict(block_out_channels=(8, 16, 32, 64)),
        latent=dict(block_out_channels=(8, 16, 16), channels_per_map=4),
    ),
}
"""Model sizes. "default": 4x VAE (128x128 -> 32x32x4 latents), UNet widths (32, 64, 128) —
the shipped model, sized for 16 frames at 128x128 in under a minute on 2 CPU cores and for
training on a CPU in hours. "large": the same VAE (latents are interchangeable) and a GPU-sized
UNet (128, 256, 512), two blocks per level. "tiny": 2x VAE, widths (16, 32), for tests.
"small": the default VAE (its weights can be reused) and a quarter-width UNet (16, 32, 64),
0.76M parameters: the ablations' model (benchmarks/ablate_default_model.py). "default16": the
default with a 16-channel VAE latent (the 48 values of 4x4 pixels kept as 16 instead of 4), the
shipped model since session 7 (the 4-channel VAE limited the colour and detail); "small16" the
ablations' UNet on that VAE."""
PRESETS["default16"] = {**PRESETS["default"], "vae": dict(
    block_out_channels=(32, 64, 128), latent_channels=16, norm_num_groups=16)}
# the shipped model's sizes (session 7 on) and the ablations' model on its VAE
PRESETS["small16"] = {**PRESETS["small"], "vae": PRESETS["default16"]["vae"]}


def default_scheduler_config(prediction_type: str = "v_prediction") -> dict:
    """The noise schedule the default model trains and samples with.

    SD's scaled-linear betas; with v-prediction the schedule is rescaled to zero terminal SNR
    (the last step is pure noise, so sampling starts where training ended) and timesteps are
    spaced "trailing" so the first sampling step is that pure-noise step.
    """
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(
            f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}"
        )
    zero_snr = prediction_type == "v_prediction"
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        rescale_betas_zero_snr=zero_snr,
        timestep_spacing="trailing",
        clip_sample=False,
    )


def build_pipeline(
    maps: tuple[str, ...] = ("depth", "normal", "semantic"),
    injection: str = "pixel",
    preset: str = "default",
    temporal_layers: str = "conv",
    reference: bool = True,
    prediction_type: str = "v_prediction",
    vae_maps: tuple[str, ...] = (),
) -> RendiffVideoPipeline:
    """A randomly initialised pipeline of a preset size (what training starts from).

    Args:
        maps: control map names the model takes.
        injection: one of ``INJECTIONS``.
        preset: a key of ``PRESETS``.
        temporal_layers: "conv", "attention" or "none".
        reference: whether the UNet takes a reference-image latent.
        prediction_type: "v_prediction" or "epsilon".
        vae_maps: maps also brought to latent resolution through the VAE itself and concatenated
            with the noisy latents (image-like maps such as albedo and shading), whatever
            ``injection`` is; each must be one of ``maps``.
    """
    vae_maps = tuple(vae_maps)
    stray = sorted(set(vae_maps) - set(maps))
    if stray:
        raise ValueError(f"vae_maps {stray} are not among the maps {list(maps)}")
    if injection not in INJECTIONS:
        raise ValueError(f"injection must be one of {INJECTIONS}, got {injection!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    sizes = PRESETS[preset]
    maps = tuple(maps)
    if not maps:
        injection = "none"
    vae = build_vae(**sizes["vae"])
    factor = vae_downsample_factor(vae)
    latent_channels = vae.config.latent_channels
    c0 = sizes["unet"]["block_out_channels"][0]
    guidance = latent = None
    if injection in ("pixel", "both"):
        guidance = GuidanceEncoder(
            map_names=maps, out_channels=c0, downsample_factor=factor, **sizes["guidance"]
        )
    learned = maps if injection in ("latent", "both") else ()
    learned = tuple(m for m in learned if m not in vae_maps)
    if learned or vae_maps:
        latent = LatentControlEncoder(
            map_names=learned,
            downsample_factor=factor,
            vae_map_names=vae_maps,
            vae_latent_channels=latent_channels,
            **sizes["latent"],
        )
    unet = SpatioTemporalUNet(
        in_channels=latent_channels,
        out_channels=latent_channels,
        reference_channels=latent_channels if reference else 0,
        control_channels=latent.out_channels if latent is not None else 0,
        temporal_layers=temporal_layers,
        **sizes["unet"],
    )
    scheduler = DDIMScheduler(**default_scheduler_config(prediction_type))
    return RendiffVideoPipeline(
        vae=vae, unet=unet, scheduler=scheduler, guidance_encoder=guidance, latent_encoder=latent
    )


def temporal_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of length ``window`` covering ``num_frames``.

    Consecutive windows share ``overlap`` frames; the last window is moved back to end at the last
    frame (it may then share more). A clip no longer than ``window`` is one window.
    """
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    if num_frames <= window:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - window + 1, window - overlap))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [(s, s + window) for s in starts]


#: Two control images differ at a pixel when a channel differs by more than this (1.5 levels of
#: 8 bits: the maps are exact, so only real changes exceed it).
STATIC_TOLERANCE = 1.5 / 255


def keep_static_pixels(
    frames: Tensor,  # [T, H, W, 3] generated
    controls: Mapping[str, Tensor],  # name -> [T, H, W, 3] control images
    references: Tensor,  # [T, H, W, 3] the engine's frames
    windows: list[tuple[int, int]],
    tolerance: float = STATIC_TOLERANCE,
) -> tuple[Tensor, Tensor]:
    """Pixels the simulator says did not change keep the engine's own frame.

    Frame t belongs to the last window that starts at or before it, whose reference is the
    engine's frame s at that start. Where every control map at t equals the one at s (within
    ``tolerance``), and so does every pixel next to it (a one-pixel margin keeps the seam off
    moving edges), nothing in view changed since s -- geometry, materials, lighting and shadows
    are all in the maps -- and the frame takes the engine's frame s there. Returns the frames and
    the [T, H, W] bool mask of pixels kept."""
    T = frames.shape[0]
    starts = [s for s, _ in windows]
    owner = [max(s for s in starts if s <= t) for t in range(T)]
    changed = torch.zeros(frames.shape[:3], dtype=torch.bool, device=frames.device)
    for c in controls.values():
        c = c.to(frames.device, torch.float32)
        changed |= (c - c[owner]).abs().amax(-1) > tolerance
    changed = F.max_pool2d(changed[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
    kept = ~changed
    out = torch.where(kept[..., None], references[owner].to(frames.device, frames.dtype), frames)
    return out, kept


def blend_weights(num_frames: int, windows: list[tuple[int, int]]) -> Tensor:  # [N, T]
    """Per-window, per-frame blending weights that sum to 1 over windows at every frame.

    Inside the frames a window shares with a neighbour its weight ramps linearly,
    (k + 1) / (n + 1) for the k-th of n shared frames, towards the neighbour; elsewhere it is 1.
    """
    w = torch.zeros(len(windows), num_frames)
    for i, (s, e) in enumerate(windows):
        ramp = torch.ones(e - s)
        if i > 0:
            n = max(0, windows[i - 1][1] - s)
            ramp[:n] = torch.minimum(ramp[:n], torch.arange(1, n + 1) / (n + 1))
        if i < len(windows) - 1:
            n = max(0, e - windows[i + 1][0])
            if n:
                ramp[-n:] = torch.minimum(ramp[-n:], torch.arange(n, 0, -1) / (n + 1))
        w[i, s:e] = ramp
    return w / w.sum(0, keepdim=True)


@dataclass
class RendiffVideoPipelineOutput(BaseOutput):
    """Output of ``RendiffVideoPipeline``.

    Attributes:
        frames: the video, ``[T, H, W, 3]`` float32 in [0, 1] (numpy for ``output_type="np"``,
            torch for ``"pt"``), or the denoised latents ``[1, C, T, h, w]`` for ``"latent"``
            (of the frame size padded to ``size_multiple``).
    """

    frames: np.ndarray | Tensor


def _to_tensor(x: np.ndarray | Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(device, dtype)


class RendiffVideoPipeline(DiffusionPipeline):
    """Generates a video from control maps and an optional reference image.

    Components: ``vae``, ``unet``, ``scheduler``, the optional ``guidance_encoder`` and
    ``latent_encoder`` (at least one of them for a model that takes maps), and the optional
    ``refiner`` (:class:`~rendiff.conditioners.refiner.MapRefiner`: the decoded frames corrected
    at full resolution from the maps).
    """

    model_cpu_offload_seq = "guidance_encoder->latent_encoder->unet->vae->refiner"
    _optional_components = ["guidance_encoder", "latent_encoder", "refiner"]

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: SpatioTemporalUNet,
        scheduler: SchedulerMixin,
        guidance_encoder: GuidanceEncoder | None = None,
        latent_encoder: LatentControlEncoder | None = None,
        default_guidance_scale: float = 1.0,
        refiner: MapRefiner | None = None,
    ):
        super().__init__()
        if not 1.0 <= float(default_guidance_scale) <= 20.0:
            raise ValueError(f"default_guidance_scale must be in [1, 20], got "
                             f"{default_guidance_scale}")
        expected = latent_encoder.out_channels if latent_encoder is not None else 0
        if unet.config.control_channels != expected:
            raise ValueError(
                f"unet takes {unet.config.control_channels} latent control channels but the latent "
                f"encoder gives {expected}"
            )
        c0 = unet.config.block_out_channels[0]
        if guidance_encoder is not None and guidance_encoder.config.out_channels != c0:
            raise ValueError(
                f"guidance encoder gives {guidance_encoder.config.out_channels} channels, the "
                "unet's "
                f"first width is {c0}"
            )
        if (
            latent_encoder is not None
            and latent_encoder.config.vae_map_names
            and latent_encoder.config.vae_latent_channels != vae.config.latent_channels
        ):
            raise ValueError(
                f"the latent encoder expects {latent_encoder.config.vae_latent_channels} VAE "
                f"latent channels, the VAE has {vae.config.latent_channels}"
            )
        if unet.config.reference_channels not in (0, vae.config.latent_channels):
            raise ValueError("unet reference_channels must be 0 or the VAE's latent channels")
        self.register_modules(
            vae=vae,
            unet=unet,
            scheduler=scheduler,
            guidance_encoder=guidance_encoder,
            latent_encoder=latent_encoder,
            refiner=refiner,
        )
        if refiner is not None:
            stray = [m for m in refiner.map_names if m not in self.map_names]
            if stray:
                raise ValueError(f"the refiner reads maps {stray} the model does not take "
                                 f"({list(self.map_names) or 'no maps'})")
        # the guidance a model was evaluated with (model_index.json), what __call__ uses unless
        # told otherwise
        self.register_to_config(default_guidance_scale=float(default_guidance_scale))

    @property
    def map_names(self) -> tuple[str, ...]:
        """Control maps the model was trained with (guidance encoder's, then latent encoder's)."""
        names: list[str] = []
        for enc in (self.guidance_encoder, self.latent_encoder):
            if enc is not None:
                names += [n for n in enc.map_names if n not in names]
        return tuple(names)

    @property
    def size_multiple(self) -> int:
        """Frame height and width are padded to a multiple of this (VAE factor x UNet levels)."""
        return vae_downsample_factor(self.vae) * self.unet.latent_multiple

    def check_inputs(
        self,
        controls: Mapping[str, np.ndarray | Tensor],
        reference_image: np.ndarray | Tensor | None,
        num_frames: int | None,
        control_weights: Mapping[str, MapWeight] | None,
        window: int,
        overlap: int,
        output_type: str,
        guidance_scale: float,
        num_inference_steps: int,
    ) -> tuple[int, int, int]:
        """Validate the inputs and return the clip's (T, H, W); raise ``ValueError`` if wrong."""
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if guidance_scale < 1:
            raise ValueError(
                f"guidance_scale must be >= 1 (1 disables guidance), got {guidance_scale}"
            )
        if guidance_scale > 1 and self.unet.config.reference_channels == 0:
            raise ValueError(
                "guidance_scale > 1 guides on the reference image; this model takes none"
            )
        temporal_windows(1, window, overlap)
        known = self.map_names
        unknown = sorted(set(controls) - set(known))
        if unknown:
            raise ValueError(
                f"control maps {unknown} are not ones the model was trained with; it takes "
                f"{list(known) or 'no maps'}"
            )
        shape = None
        for name, img in controls.items():
            s = tuple(img.shape)
            if len(s) != 4 or s[-1] != 3:
                raise ValueError(f"control {name!r} must be [T, H, W, 3], got shape {list(s)}")
            if shape is not None and s != shape:
                raise ValueError(f"control {name!r} has shape {list(s)}, others {list(shape)}")
            shape = s
            arr = _to_tensor(img, torch.device("cpu"), torch.float32)
            if not torch.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
                raise ValueError(f"control {name!r} must be float values in [0, 1]")
        if shape is None:
            if reference_image is None or num_frames is None:
                raise ValueError("without control maps, give reference_image and num_frames")
            shape = (num_frames, *tuple(reference_image.shape)[:2], 3)
        elif num_frames is not None and num_frames != shape[0]:
            raise ValueError(f"num_frames={num_frames} but the controls have {shape[0]} frames")
        t, h, w = shape[:3]
        if t < 1 or h < 1 or w < 1:
            raise ValueError(f"empty clip: T, H, W = {t}, {h}, {w}")
        if reference_image is not None:
            if tuple(reference_image.shape) not in ((h, w, 3), (t, h, w, 3)):
                raise ValueError(
                    f"reference_image must be [H, W, 3] = [{h}, {w}, 3] or one per frame "
                    f"[T, H, W, 3] = [{t}, {h}, {w}, 3], got {list(reference_image.shape)}"
                )
            if self.unet.config.reference_channels == 0:
                raise ValueError("this model takes no reference image")
        resolve_control_weights(known, list(controls), control_weights, t, h, w)
        return t, h, w

    def prepare_latents(
        self,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | None,
        latents: Tensor | None = None,
    ) -> Tensor:  # [1, C, T, height / f, width / f]
        """Initial noise scaled by the scheduler's ``init_noise_sigma``."""
        f = vae_downsample_factor(self.vae)
        shape = (1, self.vae.config.latent_channels, num_frames, height // f, width // f)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {list(shape)}, got {list(latents.shape)}")
        return latents.to(device, dtype) * self.scheduler.init_noise_sigma

    def encode_conditions(
        self,
        video: dict[str, Tensor],  # name -> [1, 3, T, H, W] in [0, 1], padded
        weights: Tensor,  # [1, M, T, H, W] resolved weights, padded
        reference_image: np.ndarray | Tensor | None,  # [h, w, 3] unpadded
        num_frames: int,
        pad_h: int,
        pad_w: int,
        chunk_size: int,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """Guidance features ``[1, C0, T, h, w]``, latent maps ``[1, Cc, T, h, w]``, and the
        reference latent and its unconditional (zero) stand-in ``[1, Cr, 1, h, w]``; ``None``
        for what the model does not take."""
        device, dtype = self._execution_device, self.unet.dtype
        f = vae_downsample_factor(self.vae)
        _, _, _, height, width = weights.shape
        latent_hw = (height // f, width // f)
        features = control = reference = uncond = None
        if video and self.guidance_encoder is not None:
            names = self.guidance_encoder.map_names
            sub = {k: v for k, v in video.items() if k in names}
            idx = [self.map_names.index(n) for n in names]
            if sub:
                features = self.guidance_encoder(sub, weights[:, idx], chunk_size=chunk_size)
        if self.latent_encoder is not None:
            names = self.latent_encoder.map_names
            sub = {k: v for k, v in video.items() if k in names}
            idx = [self.map_names.index(n) for n in names]
            if sub:
                control = self.latent_encoder(
                    sub, weights[:, idx], chunk_size=chunk_size, vae=self.vae
                )
            else:
                shape = (1, self.latent_encoder.out_channels, num_frames, *latent_hw)
                control = torch.zeros(shape, device=device, dtype=dtype)
        if self.unet.config.reference_channels:
            shape = (1, self.unet.config.reference_channels, 1, *latent_hw)
            uncond = reference = torch.zeros(shape, device=device, dtype=dtype)
            if reference_image is not None:  # [h, w, 3], or [K, h, w, 3]: one per window
                img = _to_tensor(reference_image, device, dtype)
                img = (img[None] if img.dim() == 3 else img).permute(0, 3, 1, 2)
                img = F.pad(img, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else img
                reference = torch.cat([encode_reference(self.vae, im[None]) for im in img])
        return features, control, reference, uncond

    def _step_kwargs(self, generator: torch.Generator | None) -> dict:
        params = set(inspect.signature(self.scheduler.step).parameters)
        return {"generator": generator} if "generator" in params else {}

    @torch.no_grad()
    def __call__(
        self,
        controls: Mapping[str, np.ndarray | Tensor] | None = None,
        reference_image: np.ndarray | Tensor | None = None,
        num_inference_steps: int = defaults.STEPS_TRAINED,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        control_weights: Mapping[str, MapWeight] | None = None,
        window: int = defaults.WINDOW,
        overlap: int = defaults.OVERLAP,
        output_type: str = "np",
        progress: bool = True,
        guidance_scale: float | None = None,
        num_frames: int | None = None,
        chunk_size: int = 8,
        latents: Tensor | None = None,
        keep_static: bool = False,
        refine: bool = True,
    ) -> RendiffVideoPipelineOutput:
        """Generate a video.

        Args:
            controls: map name -> control image ``[T, H, W, 3]`` in [0, 1], any subset of
                ``map_names`` (absent maps are treated as dropped, weight 0).
            reference_image: ``[H, W, 3]`` in [0, 1], the appearance to follow (typically the
                engine's first RGB frame), or one per frame ``[T, H, W, 3]`` (the engine's
                frames), of which each temporal window takes the one at its first frame, so a
                long clip's later windows follow where things are then, not where they were at
                frame 0; ``None`` uses the model's "no reference" input.
            num_inference_steps: denoising steps.
            generator, seed: randomness; ``generator`` wins, else ``seed`` (default 0).
            control_weights: map name -> scalar in [0, 1] or ``[T, H, W]`` weight map; where the
                weights at a pixel sum above 1 they are normalised to sum to 1.
            window, overlap: temporal window length and frames shared by neighbours.
            output_type: "np", "pt" (``[T, H, W, 3]`` in [0, 1]) or "latent" (``[1, C, T, h, w]``).
            progress: show a progress bar.
            guidance_scale: classifier-free guidance on the reference image (1 = off; > 1 costs a
                second UNet pass per step); None: the model's ``default_guidance_scale`` (its
                folder's model_index.json; 1 unless it was exported with another).
            num_frames: clip length when no control maps are given.
            chunk_size: frames per chunk in guidance encoding and VAE coding.
            latents: initial noise ``[1, C, T, h, w]`` (unscaled); drawn from the generator if None.
            keep_static: where the control maps show that nothing changed since a window's
                reference frame, keep that frame's pixels (:func:`keep_static_pixels`); needs the
                engine's frames as ``reference_image`` ``[T, H, W, 3]`` and control maps.
            refine: pass the decoded frames through the model's ``refiner`` (when it has one);
                False gives the VAE decoder's frames (the refiner's ablation).

        Returns:
            ``RendiffVideoPipelineOutput`` with ``frames``.
        """
        controls = dict(controls or {})
        if guidance_scale is None:
            guidance_scale = float(getattr(self.config, "default_guidance_scale", 1.0))
        # 1. Check inputs
        t, h, w = self.check_inputs(
            controls,
            reference_image,
            num_frames,
            control_weights,
            window,
            overlap,
            output_type,
            guidance_scale,
            num_inference_steps,
        )
        if keep_static and (not controls or reference_image is None
                            or len(tuple(reference_image.shape)) != 4):
            raise ValueError("keep_static needs control maps and the engine's frames as "
                             "reference_image [T, H, W, 3]")
        device = self._execution_device
        dtype = self.unet.dtype
        if generator is None:
            generator = torch.Generator(device="cpu").manual_seed(0 if seed is None else seed)
        all_references = reference_image

        # 2. Pad frames to a size the VAE and UNet take (cropped back after decoding)
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        H, W = h + ph, w + pw

        def pad(x: Tensor) -> Tensor:  # [B, C, T, h, w] -> [B, C, T, H, W]
            return F.pad(x, (0, pw, 0, ph, 0, 0), mode="replicate") if ph or pw else x

        video = {
            k: pad(_to_tensor(v, device, dtype).permute(3, 0, 1, 2)[None])
            for k, v in controls.items()
        }
        weights = resolve_control_weights(self.map_names, list(controls), control_weights, t, h, w)
        weights = pad(weights[None].to(device, dtype))

        # 3. Encode the conditions: guidance features, latent maps, reference latent(s): one per
        # frame given -> each window takes the one at its first frame
        windows = temporal_windows(t, window, overlap)
        if reference_image is not None and len(tuple(reference_image.shape)) == 4:
            reference_image = reference_image[[s for s, _ in windows]]
        features, control, reference, uncond = self.encode_conditions(
            video, weights, reference_image, t, ph, pw, chunk_size
        )
        use_cfg = guidance_scale > 1

        # 4. Timesteps and initial latents
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = self.prepare_latents(t, H, W, dtype, device, generator, latents)
        blend = blend_weights(t, windows).to(device, dtype)
        step_kwargs = self._step_kwargs(generator)

        # 5. Denoising loop over overlapping temporal windows
        bar = tqdm(
            total=len(self.scheduler.timesteps),
            **{**getattr(self, "_progress_bar_config", {}), "disable": not progress},
        )
        for step_t in self.scheduler.timesteps:
            model_in = self.scheduler.scale_model_input(latents, step_t)
            pred = torch.zeros_like(latents)
            for i, ((s, e), bw) in enumerate(zip(windows, blend, strict=True)):
                ctrl = control[:, :, s:e] if control is not None else None
                feats = features[:, :, s:e] if features is not None else None
                ref = None if reference is None else reference[min(i, len(reference) - 1)][None]
                x = concat_conditions(model_in[:, :, s:e], ref, ctrl)
                if use_cfg:
                    x_u = concat_conditions(model_in[:, :, s:e], uncond, ctrl)
                    x = torch.cat([x_u, x])
                    feats = torch.cat([feats, feats]) if feats is not None else None
                out = self.unet(x, step_t, feats)
                if use_cfg:
                    out_u, out_c = out.chunk(2)
                    out = out_u + guidance_scale * (out_c - out_u)
                pred[:, :, s:e] += out * bw[s:e].view(1, 1, -1, 1, 1)
            latents = self.scheduler.step(pred, step_t, latents, **step_kwargs).prev_sample
            bar.update()
        bar.close()

        # 6. Decode in chunks, crop the padding, return frames [T, H, W, 3]
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return RendiffVideoPipelineOutput(frames=latents)
        video_out = vae_decode_video(self.vae, latents, chunk_size=chunk_size)
        if refine and self.refiner is not None:
            # each map's own weight (not normalised against the others): how far to trust it
            own = resolve_control_weights(self.map_names, list(controls), control_weights, t, h,
                                          w, normalise=False)
            idx = [self.map_names.index(n) for n in self.refiner.map_names]
            own = pad(own[idx][None].to(device, dtype))
            video_out = self.refiner.refine_video(video_out, video, own, chunk_size)
        frames = (video_out[0, :, :, :h, :w].permute(1, 2, 3, 0).float() / 2 + 0.5).clamp(0, 1)
        if keep_static:
            maps = {k: _to_tensor(v, frames.device, torch.float32) for k, v in controls.items()}
            refs = _to_tensor(all_references, frames.device, torch.float32)
            frames, _ = keep_static_pixels(frames, maps, refs, windows)
        self.maybe_free_model_hooks()
        return RendiffVideoPipelineOutput(
            frames=frames.cpu().numpy() if output_type == "np" else frames
        )
