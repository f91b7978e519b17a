"""NVIDIA Cosmos-Transfer2.5 from local folders, driven by several of rendiff's maps at once.

Cosmos-Transfer2.5 (diffusers' ``Cosmos2_5_TransferPipeline`` + ``CosmosControlNetModel``) turns
control videos -- depth, segmentation, edges, a blurred render -- into photoreal video. Its
released weights are a base pipeline folder and one ControlNet per modality; diffusers runs one
ControlNet per call, so rendiff runs its own denoising loop that adds several ControlNets'
weighted block outputs, each weight a number or a per-token map made from the scene's own
entities. The setup is written in a ``rendiff_pretrained.yaml`` whose paths are relative to the
file::

    kind: cosmos_transfer
    model: Cosmos-Transfer2.5-2B/base          # Cosmos2_5_TransferPipeline folder (no ControlNet)
    controls:                                  # CosmosControlNetModel folders, one per modality
      depth: Cosmos-Transfer2.5-2B/depth
      edge: Cosmos-Transfer2.5-2B/edge
    weights: {depth: 0.6, edge: 0.4}           # per modality in [0, 1]; above 1 in sum: scaled
    weight_masks: {depth: "instance:robot"}    # optional: where a weight applies (else 0)
    guardrail: true                            # NVIDIA's guardrail (cosmos_guardrail) runs
    prompt: a robot arm stacking wooden blocks on a workbench, photoreal

Control videos, in the encodings the released weights were trained on (:func:`cosmos_control`):

- ``depth``: inverse depth, one min-max over the whole clip to [0, 1], grey, near = bright, the
  empty background 0 (:func:`cosmos_depth`). Cosmos' preprocessor estimates relative inverse
  depth (Video Depth Anything) and min-max normalises it over the clip; rendiff's is exact, with
  the same range, polarity, normalisation and channels.
- ``seg``: every entity in its own colour on black (the instance layer in rendiff's palette);
  Cosmos' preprocessor colours SAM2 masks the same way.
- ``edge``: OpenCV's Canny on the uint8 RGB render (thresholds ``edge_thresholds``, default
  the preset 100 / 200), white on black.
- ``vis``: the RGB render blurred as Cosmos' ``vis`` augmentor does it (:func:`blur_control`).

Weights follow Cosmos' multi-control semantics: each modality's ControlNet output is scaled by
its weight and the outputs are added; where the weights sum to more than 1 they are divided by
their sum. A ``weight_masks`` entry restricts a modality to some of the scene (``instance:NAME
[,NAME...]``, ``foreground``, ``background``; ``{where: ..., outside: 0.2}`` keeps a loose weight
elsewhere); the mask is averaged over each token's pixels (16 x 16, and the frames a latent frame
covers), so the weight reaches the model at its own token grid.

Any frame count and size: a clip goes in as the model's 4k + 1 frames and multiples of 16,
padded (last frame, edges) and cropped back; clips longer than ``chunk_frames`` are generated in
chunks, each conditioned on the last ``chunk_context`` frames the previous one generated, as
Cosmos' own long-video inference does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor

from rendiff.engine.layers import Layer, Layers

from .framing import generation_size, pad_clip, padded_frames, resize_clip
from .token_weights import (
    WeightMask,
    check_region,
    checked_weight_map,
    combine_weights,
    parse_region,
    pool_to_tokens,
    weight_map,
)

__all__ = ["COSMOS_CONTROLS", "EDGE_PRESETS", "CosmosTransferSpec", "blur_control",
           "canny_edges", "check_cosmos_folders", "check_cosmos_inputs", "control_videos",
           "cosmos_control",
           "cosmos_depth", "generate_cosmos_transfer", "generate_from_cosmos_spec",
           "load_cosmos_transfer"]

#: The control branches Cosmos-Transfer2.5 was released with that rendiff renders exactly.
COSMOS_CONTROLS = ("depth", "seg", "edge", "vis")
#: The layer each control is made from.
_SOURCE = {"depth": Layer.DEPTH, "seg": Layer.INSTANCE, "edge": Layer.RGB, "vis": Layer.RGB}
#: Cosmos' Canny presets (low, high) on 0-255 images; the default is ``medium``.
EDGE_PRESETS = {"very_low": (20, 50), "low": (50, 100), "medium": (100, 200),
                "high": (200, 300), "very_high": (300, 400)}
#: Cosmos' default negative prompt is the pipeline's own (None here means: use it).
_AREA_720P = 704 * 1280


class CosmosTransferSpec(BaseModel):
    """A Cosmos-Transfer2.5 setup (see the module docstring). Paths are absolute once loaded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["cosmos_transfer"] = "cosmos_transfer"
    model: Path  # Cosmos2_5_TransferPipeline folder, saved without a ControlNet
    controls: dict[Literal["depth", "seg", "edge", "vis"], Path]
    weights: dict[str, float] = Field(default_factory=dict)  # default 1 each (then scaled)
    weight_masks: dict[str, WeightMask | str] = Field(default_factory=dict)
    guardrail: bool = True  # NVIDIA's guardrail (cosmos_guardrail), from the local HF cache
    edge_thresholds: tuple[int, int] | Literal["very_low", "low", "medium", "high",
                                               "very_high"] = "medium"
    prompt: str = ""
    negative_prompt: str | None = None  # None: the pipeline's own
    guidance_scale: float = Field(3.0, ge=0.0, le=100.0)
    steps: int | None = Field(None, ge=1, le=1000)  # None: 36
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_sequence_length: int = Field(512, ge=1, le=4096)
    area: int | None = Field(_AREA_720P, ge=256, le=4096 * 4096)  # None: the clip's size
    chunk_frames: int = Field(93, ge=5, le=1025)  # frames per chunk (4k + 1)
    chunk_context: int = Field(1, ge=0, le=1024)  # frames a chunk takes from the one before
    conditional_frame_timestep: float = Field(0.1, ge=0.0, le=1.0)

    @field_validator("controls")
    @classmethod
    def _some(cls, v: dict) -> dict:
        if not v:
            raise ValueError("name at least one ControlNet folder (depth, seg, edge or vis)")
        return v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"{name}: weight {w} is outside [0, 1]")
        return v

    @field_validator("weight_masks")
    @classmethod
    def _masks(cls, v: dict) -> dict:
        return {k: WeightMask(where=m) if isinstance(m, str) else m for k, m in v.items()}

    @model_validator(mode="after")
    def _consistent(self) -> CosmosTransferSpec:
        for field in ("weights", "weight_masks"):
            stray = sorted(set(getattr(self, field)) - set(self.controls))
            if stray:
                raise ValueError(f"{field}: {stray[0]!r} has no ControlNet under controls "
                                 f"(controls: {sorted(self.controls)})")
        for name, m in self.weight_masks.items():
            parse_region(m.where, f"weight_masks.{name}")
        if (self.chunk_frames - 1) % 4:
            raise ValueError(f"chunk_frames: {self.chunk_frames} is not 4k + 1 (the VAE packs 4 "
                             "frames into one latent frame after the first): 93, 61, 29, 17 ...")
        if self.chunk_context >= self.chunk_frames:
            raise ValueError(f"chunk_context: {self.chunk_context} must be below chunk_frames "
                             f"({self.chunk_frames})")
        if isinstance(self.edge_thresholds, tuple):
            lo, hi = self.edge_thresholds
            if not 0 <= lo <= hi:
                raise ValueError(f"edge_thresholds: need 0 <= low <= high, got {lo}, {hi}")
        return self

    def resolved(self, root: Path) -> CosmosTransferSpec:
        """A copy with every path absolute, relative ones taken against ``root``."""
        from .loading import absolute_path

        return self.model_copy(update={
            "model": absolute_path(self.model, root),
            "controls": {k: absolute_path(p, root) for k, p in self.controls.items()}})

    def check_folders(self) -> None:
        """The base and ControlNet folders, and the guardrail (:func:`check_cosmos_folders`)."""
        check_cosmos_folders(self)

    def check_run(self, maps: Sequence[str] | None, entities: Sequence[str] | None) -> None:
        """What a run with ``maps`` on a scene of ``entities`` needs
        (:func:`check_cosmos_inputs`)."""
        check_cosmos_inputs(self, list(maps) if maps else list(self.controls), entities)

    def thresholds(self) -> tuple[int, int]:
        t = self.edge_thresholds
        return EDGE_PRESETS[t] if isinstance(t, str) else (int(t[0]), int(t[1]))


# ---------------------------------------------------------------- encodings (frozen)


def canny_edges(frames: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] -> OpenCV's Canny edges, white on black, [T, H, W, 3] uint8.

    ``cv2.Canny`` on the three-channel RGB image (aperture 3, L1 gradient), as Cosmos'
    preprocessor calls it on the frames it reads: on a colour image OpenCV takes, at each pixel,
    the channel with the strongest gradient, so the channel order matters only where two
    channels tie (diffusers' example, which converts to BGR first, differs there)."""
    import cv2

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        out[i] = cv2.Canny(f, int(low), int(high))[..., None]
    return out


#: Cosmos' ``vis`` control, its default ("medium") blur preset: shrink by ``_BLUR_DOWN`` (area),
#: one bilateral filter, back up (linear); then shrink by ``_BLUR_RESAMPLE`` and back (bicubic,
#: antialiased).
_BLUR_DOWN = 2
_BLUR_RESAMPLE = 10
_BILATERAL = dict(d=30, sigmaColor=150, sigmaSpace=100)


def blur_control(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] -> Cosmos' ``vis`` control [T, H, W, 3] uint8, as its blur
    augmentor makes it: each frame shrunk by 2 (``cv2.INTER_AREA``), bilateral-filtered (d 30,
    sigma colour 150, sigma space 100), enlarged back (``cv2.INTER_LINEAR``), then shrunk to a
    tenth and enlarged back (bicubic, antialiased, rounded to uint8 each time)."""
    import cv2

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    T, H, W = frames.shape[:3]
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        small = cv2.resize(f, (max(1, W // _BLUR_DOWN), max(1, H // _BLUR_DOWN)),
                           interpolation=cv2.INTER_AREA)
        small = cv2.bilateralFilter(small, **_BILATERAL)
        out[i] = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(out).permute(0, 3, 1, 2)
    for size in ((max(1, int(H / _BLUR_RESAMPLE)), max(1, int(W / _BLUR_RESAMPLE))), (H, W)):
        x = torch.nn.functional.interpolate(x.float(), size=size, mode="bicubic",
                                            align_corners=False, antialias=True)
        x = x.clamp(0, 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def cosmos_depth(depth: Tensor) -> Tensor:
    """Depth [T, H, W] (metres, +inf or <= 0 empty) -> [T, H, W] in [0, 1]: inverse depth, one
    min-max over the whole clip (the clip's farthest point 0, its nearest 1, a clip of one depth
    1), the empty background 0 -- Video Depth Anything's output as Cosmos normalises it."""
    from rendiff.kernels.encodings import inverse_depth_range

    valid = torch.isfinite(depth) & (depth > 0)
    rng = inverse_depth_range(depth, valid)
    if rng is None:
        return torch.zeros(depth.shape, dtype=torch.float32, device=depth.device)
    lo, hi = rng
    inv = depth.float().clamp_min(1e-6).reciprocal()
    out = (inv - lo) / (hi - lo) if hi > lo else torch.ones_like(inv)
    return torch.where(valid, out.clamp(0, 1), 0.0)


def cosmos_control(name: str, layers: Layers, *, size: tuple[int, int] | None = None,
                   edge_thresholds: tuple[int, int] = EDGE_PRESETS["medium"]) -> Tensor:
    """One control video [T, h, w, 3] float32 in [0, 1] in the encoding Cosmos-Transfer2.5's
    ``name`` branch was trained on (module docstring), at ``size`` = (h, w) (default the
    clip's). As Cosmos' preprocessors do, edges and blur are computed on the RGB already resized
    to that size (``cv2.INTER_AREA``); depth is resized linearly, segmentation by nearest."""
    from rendiff.io.video import to_uint8

    from .controls import control_image

    if name not in COSMOS_CONTROLS:
        raise ValueError(f"no Cosmos-Transfer2.5 control {name!r}; it takes "
                         f"{list(COSMOS_CONTROLS)}")
    layer = _SOURCE[name]
    if layer not in layers:
        raise ValueError(f"the {name!r} control needs the {layer.value} layer, which was not "
                         "rendered")
    data = layers[layer]
    W, H = layers.size
    h, w = size or (H, W)
    if name == "depth":
        out = cosmos_depth(data)[..., None].expand(*data.shape, 3).contiguous()
        return out if (h, w) == (H, W) else resize_clip(out, h, w, "bilinear").clamp(0, 1)
    if name == "seg":
        if (h, w) != (H, W):
            data = resize_clip(data[..., None].float(), h, w, "nearest")[..., 0].long()
        return control_image(layer, data)
    rgb = to_uint8(data)
    if (h, w) != (H, W):
        import cv2

        rgb = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in rgb])
    out = canny_edges(rgb, *edge_thresholds) if name == "edge" else blur_control(rgb)
    return torch.from_numpy(out).float() / 255.0


# ---------------------------------------------------------------- loading


def _nearest_resize_namespace() -> SimpleNamespace:
    """The one torchvision call diffusers' Cosmos models make (a nearest-neighbour resize of the
    padding mask), in torch: ``torchvision.transforms.functional.resize`` on a tensor with
    ``InterpolationMode.NEAREST`` is ``torch.nn.functional.interpolate(mode="nearest")``."""
    def resize(img: Tensor, size: Sequence[int], interpolation: str = "nearest") -> Tensor:
        if interpolation != "nearest":
            raise NotImplementedError("only the nearest resize the Cosmos models call")
        return torch.nn.functional.interpolate(img, size=list(size), mode="nearest")

    return SimpleNamespace(functional=SimpleNamespace(resize=resize),
                           InterpolationMode=SimpleNamespace(NEAREST="nearest"))


def provide_torchvision_resize() -> bool:
    """Where torchvision cannot be imported (PyPI's wheel is built against the CUDA torch and
    does not load against the CPU one), gives diffusers' Cosmos transformer and ControlNet the
    torch equivalent of the one torchvision function they call. Returns True when it did."""
    import importlib

    try:
        from torchvision import transforms  # noqa: F401
        return False
    except Exception:  # ImportError, or a wheel built for another torch (RuntimeError)
        pass
    shim = _nearest_resize_namespace()
    for name in ("diffusers.models.transformers.transformer_cosmos",
                 "diffusers.models.controlnets.controlnet_cosmos"):
        module = importlib.import_module(name)
        if not hasattr(module, "transforms"):
            module.transforms = shim
    return True


def check_cosmos_folders(spec: CosmosTransferSpec) -> None:
    """Checks, without loading, the base folder (a Cosmos2_5_TransferPipeline in diffusers format
    with transformer/, vae/, text_encoder/, tokenizer/, scheduler/), every ControlNet folder (a
    CosmosControlNetModel config and safetensors weights), and that the guardrail can load
    unless the setup turns it off. One-line ModelError otherwise."""
    from .loading import ModelError, check_pipeline_folder, check_safetensors, folder_kind

    check_pipeline_folder(spec.model, "Cosmos2_5_TransferPipeline",
                          "Cosmos-Transfer2.5 base folder")
    for name, folder in spec.controls.items():
        if not folder.is_dir():
            raise ModelError(f"{folder}: the {name} ControlNet folder not found")
        kind = folder_kind(folder)
        if kind != "CosmosControlNetModel":
            what = f"holds a {kind}" if kind else "has no config.json"
            raise ModelError(f"{folder}: {what}; controls.{name} must be a "
                             "CosmosControlNetModel folder")
        check_safetensors(folder)
    if spec.guardrail:
        _guardrail_class()


def _guardrail_class() -> Any:
    from .loading import ModelError

    try:
        from cosmos_guardrail import CosmosSafetyChecker
    except Exception as e:  # not installed, or broken
        raise ModelError(
            "guardrail: Cosmos-Transfer2.5's licence (NVIDIA Open Model License) comes with "
            f"NVIDIA's guardrail, which cannot be imported ({type(e).__name__}): install "
            "cosmos_guardrail with its checkpoints, or write 'guardrail: false' in the setup "
            "file to run without it (your decision, recorded in metadata.json)") from None
    return CosmosSafetyChecker


class GuardrailOff(torch.nn.Module):
    """Stands in for NVIDIA's guardrail when the setup file says ``guardrail: false``: passes
    prompts and videos through. Never a default."""

    dtype = torch.float32
    device = torch.device("cpu")

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, video: np.ndarray) -> np.ndarray:
        return video


def _load_guardrail(spec: CosmosTransferSpec) -> Any:
    import os

    from .loading import ModelError, first_line

    if not spec.guardrail:
        return GuardrailOff()
    cls = _guardrail_class()
    # it names its checkpoints by Hugging Face id: loaded from the local cache, never fetched
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        return cls()
    except Exception as e:
        raise ModelError(
            "guardrail: NVIDIA's guardrail could not load its checkpoints from the local "
            "Hugging Face cache (rendiff downloads nothing; fetch nvidia/Cosmos-1.0-Guardrail "
            f"and Qwen/Qwen3Guard-Gen-0.6B once, see docs/cosmos-transfer.md): "
            f"{first_line(e)[:200]}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_cosmos_transfer(spec: CosmosTransferSpec, *, device: str | torch.device = "cpu",
                         names: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """The base pipeline and the ControlNets ``names`` (default: all the setup names), offline,
    safetensors only. Returns (pipeline, {name: CosmosControlNetModel}); failures are one line
    (:class:`~rendiff.conditioners.loading.ModelError`)."""
    from .loading import ModelError, first_line, quiet, resolve_dtype

    check_cosmos_folders(spec)
    try:
        from diffusers import (
            AutoencoderKLWan,
            Cosmos2_5_TransferPipeline,
            CosmosControlNetModel,
            CosmosTransformer3DModel,
            UniPCMultistepScheduler,
        )
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
    except ImportError as e:
        raise ModelError(f"Cosmos-Transfer2.5 needs diffusers >= 0.36 with accelerate "
                         f"({first_line(e)}); reinstall rendiff") from None
    provide_torchvision_resize()
    cuda = torch.device(device).type == "cuda"
    dtype = torch.bfloat16 if spec.dtype == "auto" and cuda else resolve_dtype(
        None if spec.dtype == "auto" else spec.dtype, device)
    base = spec.model
    names = list(spec.controls) if names is None else list(names)
    guard = _load_guardrail(spec)
    common = dict(local_files_only=True, use_safetensors=True)
    with quiet():
        try:
            text_encoder = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                str(base / "text_encoder"), dtype=dtype, **common)
            tokenizer = AutoTokenizer.from_pretrained(str(base / "tokenizer"),
                                                      local_files_only=True)
            transformer = CosmosTransformer3DModel.from_pretrained(
                str(base / "transformer"), torch_dtype=dtype, **common)
            vae = AutoencoderKLWan.from_pretrained(str(base / "vae"), torch_dtype=torch.float32,
                                                   **common)
            scheduler = UniPCMultistepScheduler.from_pretrained(str(base / "scheduler"),
                                                                local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{base}: cannot load the Cosmos-Transfer2.5 base pipeline: "
                             f"{first_line(e)[:300]}") from None
        nets = {}
        for name in names:
            try:
                nets[name] = CosmosControlNetModel.from_pretrained(
                    str(spec.controls[name]), torch_dtype=dtype, **common).to(device).eval()
            except (OSError, ValueError, RuntimeError, KeyError, TypeError,
                    AttributeError) as e:
                raise ModelError(f"{spec.controls[name]}: cannot load the {name} ControlNet: "
                                 f"{first_line(e)[:300]}") from None
        first = next(iter(nets.values())) if nets else None
        try:
            pipe = Cosmos2_5_TransferPipeline(
                text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                vae=vae, scheduler=scheduler, controlnet=first, safety_checker=guard)
        except (ValueError, TypeError, AttributeError) as e:
            raise ModelError(f"{base}: cannot assemble the Cosmos-Transfer2.5 pipeline: "
                             f"{first_line(e)[:300]}") from None
    pipe.to(device)
    for name, net in nets.items():
        if net.config.model_channels != transformer.config.num_attention_heads * \
                transformer.config.attention_head_dim:
            raise ModelError(f"{spec.controls[name]}: the {name} ControlNet's width "
                             f"({net.config.model_channels}) does not match the base "
                             "transformer's; a ControlNet of another Cosmos model?")
    return pipe, nets


# ---------------------------------------------------------------- sampling


def _to_model_video(frames: Tensor) -> Tensor:
    """[T, H, W, 3] in [0, 1] -> [1, 3, T, H, W] in [-1, 1] (the pipeline's video range)."""
    return (frames.permute(3, 0, 1, 2)[None].float() * 2.0 - 1.0).contiguous()


def _encode(pipe: Any, video: Tensor) -> Tensor:
    """[1, 3, T, H, W] in [-1, 1] -> normalised latents [1, C, T', H', W'] (the VAE's mode)."""
    vae = pipe.vae
    dev = pipe._execution_device
    with torch.no_grad():
        lat = vae.encode(video.to(dev, vae.dtype)).latent_dist.mode()
    mean = pipe.latents_mean.to(lat.device, lat.dtype)
    std = pipe.latents_std.to(lat.device, lat.dtype)
    return ((lat - mean) / std).float()


def _decode(pipe: Any, latents: Tensor) -> Tensor:
    """Normalised latents -> [T, H, W, 3] float32 in [0, 1] on the CPU."""
    vae = pipe.vae
    mean = pipe.latents_mean.to(latents.device, torch.float32)
    std = pipe.latents_std.to(latents.device, torch.float32)
    with torch.no_grad():
        video = vae.decode((latents.float() * std + mean).to(vae.dtype), return_dict=False)[0]
    return ((video[0].float().permute(1, 2, 3, 0) + 1.0) / 2.0).clamp(0, 1).cpu()


def generate_cosmos_transfer(
    pipe: Any,
    nets: Mapping[str, Any],
    layers: Layers,
    *,
    weights: Mapping[str, float | Tensor] | None = None,
    weight_masks: Mapping[str, WeightMask | str] | None = None,
    edge_thresholds: tuple[int, int] = EDGE_PRESETS["medium"],
    prompt: str = "",
    negative_prompt: str | None = None,
    steps: int = 36,
    seed: int = 0,
    guidance_scale: float = 3.0,
    max_sequence_length: int = 512,
    area: int | None = None,
    chunk_frames: int = 93,
    chunk_context: int = 1,
    conditional_frame_timestep: float = 0.1,
    progress: bool = True,
    inspect: dict | None = None,
) -> Tensor:
    """Generates a clip with the pipeline and ControlNets of :func:`load_cosmos_transfer`
    (module docstring). ``weights``: per control (default 1 each), a number in [0, 1] or a
    per-pixel, per-frame map [T, H, W] of the clip's shape; 0 leaves a control out.
    ``weight_masks``: per control, where its weight applies. ``inspect``, when given, receives
    what the model was given (control videos, per-token weights, chunk bounds) for tests.

    Returns [T, H, W, 3] float32 frames in [0, 1] on the CPU, T, H, W those of ``layers``."""
    from .loading import ModelError

    masks = {k: WeightMask(where=m) if isinstance(m, str) else m
             for k, m in (weight_masks or {}).items()}
    unknown = sorted((set(weights or {}) | set(masks)) - set(nets))
    if unknown:
        raise ModelError(f"weights: no ControlNet loaded for {unknown[0]!r}; loaded: "
                         f"{sorted(nets)}")
    T = layers.frames
    W, H = layers.size
    weights = {k: _checked_weight(k, v, (T, H, W)) for k, v in (weights or {}).items()}
    ft = int(pipe.vae_scale_factor_temporal)
    sp = int(pipe.vae_scale_factor_spatial)
    m = sp * int(pipe.transformer.config.patch_size[1])
    Hs, Ws, Hp, Wp = generation_size(H, W, m, area)  # scaled towards area, then padded
    # frames: one chunk of 4k + 1 >= T frames, or chunks of chunk_frames
    single = padded_frames(T, ft)
    L = single if single <= chunk_frames else chunk_frames
    rope_frames = pipe.transformer.config.max_size[0] // pipe.transformer.config.patch_size[0]
    if (chunk_frames - 1) // ft + 1 > rope_frames:
        raise ModelError(f"chunk_frames: {chunk_frames} frames make {(chunk_frames - 1) // ft + 1} "
                         f"latent frames; the transformer's position encoding takes at most "
                         f"{rope_frames}")
    if L < T and not 0 <= chunk_context < L:
        raise ModelError(f"chunk_context: {chunk_context} must be below chunk_frames ({L})")
    starts = [0]
    while starts[-1] + L < T:
        starts.append(starts[-1] + L - chunk_context)
    total = starts[-1] + L  # frames generated, padded past T

    # control videos and weights (at the clip's size, then scaled and padded like the clip)
    active = {k: net for k, net in nets.items()
              if (bool((weights[k] > 0).any()) if isinstance(weights.get(k), Tensor)
                  else weights.get(k, 1.0) > 0.0)}
    try:
        videos = {k: cosmos_control(k, layers, size=(Hs, Ws), edge_thresholds=edge_thresholds)
                  for k in active}
        pixel_w = {}  # per-pixel weight maps, for the controls that have one
        for k in active:
            w = weights.get(k)
            if k in masks:
                pixel_w[k] = weight_map(layers, masks[k])
            if isinstance(w, Tensor):
                pixel_w[k] = w * pixel_w.get(k, 1.0)
    except ValueError as e:
        raise ModelError(str(e)) from None
    blank = [k for k, v in videos.items() if not v.any()]
    if blank and len(blank) < len(videos):
        import logging

        logging.getLogger("rendiff").warning(
            "the %s control%s empty in this clip: left out", ", ".join(blank),
            " is" if len(blank) == 1 else "s are")
        for k in blank:
            videos.pop(k)
            active.pop(k)
            pixel_w.pop(k, None)
    videos = {k: pad_clip(v, total, Hp, Wp) for k, v in videos.items()}
    pixel_w = {k: _fit(v[..., None], total, Hs, Ws, Hp, Wp, "nearest")[..., 0]
               for k, v in pixel_w.items()}
    if inspect is not None:
        inspect.update(controls=videos, chunks=[(s, s + L) for s in starts], size=(Hp, Wp),
                       generated_size=(Hs, Ws), token_weights=[])

    dev = pipe._execution_device
    tdtype = pipe.transformer.dtype
    do_cfg = guidance_scale > 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if not pipe.safety_checker.check_text_safety(prompt):
            raise ModelError("NVIDIA's guardrail refused the prompt (NVIDIA Open Model License)")
        if negative_prompt is None:  # the pipeline's own default (its __call__'s, not "")
            from diffusers.pipelines.cosmos.pipeline_cosmos2_5_transfer import (
                DEFAULT_NEGATIVE_PROMPT,
            )

            negative_prompt = DEFAULT_NEGATIVE_PROMPT
        pos_emb, neg_emb = pipe.encode_prompt(prompt=prompt, negative_prompt=negative_prompt,
                                              do_classifier_free_guidance=do_cfg, device=dev,
                                              max_sequence_length=max_sequence_length)
    text = _with_image_context(pipe, pos_emb, tdtype)
    text_neg = _with_image_context(pipe, neg_emb, tdtype) if do_cfg else None
    generator = torch.Generator("cpu").manual_seed(int(seed))
    n_cond_latent = (chunk_context - 1) // ft + 1 if chunk_context > 0 else 0
    frames = torch.zeros(total, Hp, Wp, 3)
    bar = _progress(progress, len(starts) * steps)
    try:
        for ci, s in enumerate(starts):
            ctrl_lat = {k: _encode(pipe, _to_model_video(v[s:s + L])).to(dev, tdtype)
                        for k, v in videos.items()}
            Tl = (L - 1) // ft + 1
            tok_w = {}
            for k in active:
                w = weights.get(k, 1.0)
                w = 1.0 if isinstance(w, Tensor) else w  # a map's values are in pixel_w
                if k in pixel_w:
                    w = w * pool_to_tokens(pixel_w[k][s:s + L], temporal=ft, spatial=m)
                tok_w[k] = w
            tok_w = combine_weights(tok_w)
            if inspect is not None:
                inspect["token_weights"].append(tok_w)
            tok_w = {k: (w.reshape(1, -1, 1).to(dev, tdtype) if isinstance(w, Tensor) else w)
                     for k, w in tok_w.items()}
            shape = (1, pipe.transformer.config.in_channels - 1, Tl, Hp // sp, Wp // sp)
            latents = torch.randn(shape, generator=generator).to(dev)
            cond_lat = torch.zeros_like(latents)
            indicator = torch.zeros(1, 1, Tl, 1, 1, device=dev)
            ctx = 0 if ci == 0 else min(chunk_context, L)
            if ctx:
                prev = -torch.ones(1, 3, L, Hp, Wp)  # -1: black in the model's video range
                prev[:, :, :ctx] = _to_model_video(frames[s:s + ctx])
                cond_lat = _encode(pipe, prev).to(dev)
                indicator[:, :, :n_cond_latent] = 1.0
            cond_mask = (indicator * torch.ones_like(latents[:, :1])).to(tdtype)
            cond_t = indicator * conditional_frame_timestep
            padding = torch.zeros(1, 1, Hp, Wp, device=dev, dtype=tdtype)
            with warnings.catch_warnings():  # numpy 2's copy= notice from the scheduler
                warnings.simplefilter("ignore", DeprecationWarning)
                pipe.scheduler.set_timesteps(steps, device=dev)
            gt_velocity = (latents - cond_lat) * cond_mask
            for i, t in enumerate(pipe.scheduler.timesteps):
                sigma = float(pipe.scheduler.sigmas[i])
                x_in = (cond_mask * cond_lat + (1 - cond_mask) * latents).to(tdtype)
                t_in = (cond_t + (1 - indicator) * sigma).to(tdtype)
                v = _velocity(pipe, nets, ctrl_lat, tok_w, x_in, t_in, text, cond_mask, padding)
                v = gt_velocity + v * (1 - cond_mask)
                if do_cfg:
                    v_neg = _velocity(pipe, nets, ctrl_lat, tok_w, x_in, t_in, text_neg,
                                      cond_mask, padding)
                    v_neg = gt_velocity + v_neg * (1 - cond_mask)
                    v = v + guidance_scale * (v - v_neg)
                latents = pipe.scheduler.step(v.float(), t, latents, return_dict=False)[0]
                bar.update()
            out = _decode(pipe, latents)
            if not torch.isfinite(out).all():
                raise ModelError("Cosmos-Transfer2.5 produced NaN or inf frames (try dtype: "
                                 "float32)")
            keep = 0 if ci == 0 else ctx
            frames[s + keep:s + L] = out[keep:L]
    finally:
        bar.close()
    video = frames[:T, :Hs, :Ws]
    if (Hs, Ws) != (H, W):
        video = resize_clip(video, H, W, "bilinear")
    video = video.clamp(0, 1).contiguous()
    checked = pipe.safety_checker.check_video_safety(
        (video.numpy() * 255 + 0.5).astype(np.uint8))
    if checked is None:
        raise ModelError("NVIDIA's guardrail refused the generated video (NVIDIA Open Model "
                         "License)")
    if not isinstance(pipe.safety_checker, GuardrailOff):
        video = torch.from_numpy(np.asarray(checked, dtype=np.float32) / 255.0)
    return video


def _checked_weight(name: str, w: float | Tensor, shape: tuple[int, int, int]) -> float | Tensor:
    """A control's weight: a number in [0, 1], or a [T, H, W] map of the clip's shape with
    values in [0, 1] (:func:`~rendiff.conditioners.token_weights.checked_weight_map`); a
    one-line ModelError otherwise."""
    from .loading import ModelError

    if isinstance(w, Tensor):
        return checked_weight_map(w, shape, f"weights.{name}")
    w = float(w)
    if not 0.0 <= w <= 1.0:
        raise ModelError(f"weights.{name}: {w} is outside [0, 1]")
    return w


def _velocity(pipe: Any, nets: Mapping[str, Any], ctrl_lat: Mapping[str, Tensor],
              tok_w: Mapping[str, float | Tensor], x_in: Tensor, t_in: Tensor, text: Any,
              cond_mask: Tensor, padding: Tensor) -> Tensor:
    """The transformer's velocity with every active ControlNet's block outputs, each scaled by
    its weight (a number or a per-token [1, S, 1] map) and summed."""
    blocks: list[Tensor] | None = None
    for k, lat in ctrl_lat.items():
        w = tok_w[k]
        out = nets[k](controls_latents=lat, latents=x_in, timestep=t_in,
                      encoder_hidden_states=text, condition_mask=cond_mask,
                      conditioning_scale=1.0, padding_mask=padding, return_dict=False)[0]
        scaled = [b * w for b in out]
        blocks = scaled if blocks is None else [a + b for a, b in zip(blocks, scaled, strict=True)]
    return pipe.transformer(hidden_states=x_in, timestep=t_in, encoder_hidden_states=text,
                            block_controlnet_hidden_states=blocks, condition_mask=cond_mask,
                            padding_mask=padding, return_dict=False)[0].float()


def _with_image_context(pipe: Any, emb: Tensor | None, dtype: torch.dtype) -> Any:
    """Text embeddings, paired with the empty image context when the transformer takes one (as
    the pipeline gives it)."""
    if emb is None:
        return None
    emb = emb.to(dtype)
    cfg = pipe.transformer.config
    if getattr(cfg, "img_context_dim_in", None):
        img = torch.zeros(emb.shape[0], cfg.img_context_num_tokens, cfg.img_context_dim_in,
                          device=emb.device, dtype=dtype)
        return emb, img
    return emb


def _progress(enabled: bool, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="cosmos-transfer", unit="step", disable=not enabled,
                leave=False)


def _fit(x: Tensor, frames: int, Hs: int, Ws: int, Hp: int, Wp: int, mode: str) -> Tensor:
    """[T, H, W, C] -> [frames, Hp, Wp, C]: scaled to (Hs, Ws), then padded (last frame, edges)."""
    if x.shape[1:3] != (Hs, Ws):
        x = resize_clip(x, Hs, Ws, mode)
    return pad_clip(x, frames, Hp, Wp)


def check_cosmos_inputs(spec: CosmosTransferSpec, names: Sequence[str],
                        entities: Sequence[str] | None) -> None:
    """What a run needs, checked before any model loads: the controls asked for have folders,
    and ``weight_masks`` name entities of the scene."""
    from .loading import ModelError

    missing = [n for n in names if n not in spec.controls]
    if missing:
        raise ModelError(f"maps: no ControlNet folder for {missing[0]!r} under controls "
                         f"(controls: {sorted(spec.controls)})")
    if entities is None:
        return
    for k, m in spec.weight_masks.items():
        check_region(m, list(entities), f"weight_masks.{k}")


def control_videos(layers: Layers, spec: CosmosTransferSpec,
                   maps: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The control videos a run of ``spec`` gives the model (``maps``: some of its controls),
    at the clip's size, in Cosmos' encodings: for ``maps/model_<name>.mp4``."""
    names = list(maps) if maps else list(spec.controls)
    return {k: cosmos_control(k, layers, edge_thresholds=spec.thresholds()) for k in names
            if k in COSMOS_CONTROLS and _SOURCE[k] in layers}


def generate_from_cosmos_spec(layers: Layers, spec: CosmosTransferSpec, *, seed: int = 0,
                              steps: int | None = None, prompt: str | None = None,
                              negative_prompt: str | None = None,
                              guidance_scale: float | None = None,
                              maps: Sequence[str] | None = None,
                              weights: Mapping[str, float] | None = None,
                              device: str = "cpu", progress: bool = True,
                              record: dict | None = None) -> Tensor:
    """Loads ``spec``'s models and generates from ``layers``; arguments left None take the setup
    file's values. ``maps`` picks some of its controls; ``weights`` overrides their weights.
    ``record``, when given, receives the settings used."""
    from .loading import ModelError

    names = list(maps) if maps else list(spec.controls)
    check_cosmos_inputs(spec, names, list(layers.entity_names))
    w = {k: spec.weights.get(k, 1.0) for k in names}
    if weights:
        stray = sorted(set(weights) - set(names))
        if stray:
            raise ModelError(f"weights given for map(s) {stray}; the run uses {names}")
        w.update({k: float(v) for k, v in weights.items()})
    settings = dict(
        weights=w, weight_masks={k: v for k, v in spec.weight_masks.items() if k in names},
        edge_thresholds=spec.thresholds(),
        prompt=spec.prompt if prompt is None else prompt,
        negative_prompt=spec.negative_prompt if negative_prompt is None else negative_prompt,
        steps=steps or spec.steps or 36, seed=seed,
        guidance_scale=spec.guidance_scale if guidance_scale is None else guidance_scale,
        max_sequence_length=spec.max_sequence_length, area=spec.area,
        chunk_frames=spec.chunk_frames, chunk_context=spec.chunk_context,
        conditional_frame_timestep=spec.conditional_frame_timestep)
    pipe, nets = load_cosmos_transfer(spec, device=device, names=names)
    video = generate_cosmos_transfer(pipe, nets, layers, progress=progress, **settings)
    if record is not None:
        record.update({
            **settings, "model": str(spec.model),
            "controls": {k: str(spec.controls[k]) for k in names}, "maps": names,
            "weight_masks": {k: v.model_dump() for k, v in settings["weight_masks"].items()},
            "edge_thresholds": list(settings["edge_thresholds"]),
            "guardrail": "cosmos_guardrail" if spec.guardrail
            else "off (setup file: guardrail: false)",
            "scheduler": type(pipe.scheduler).__name__,
            "dtype": str(pipe.transformer.dtype).replace("torch.", "")})
    return video
