"""Wan VACE from a local folder, driven by rendiff's maps.

Wan VACE (Apache-2.0; diffusers' ``WanVACEPipeline``) generates video from a prompt and one
control video -- depth, pose or optical flow in the encodings its annotators produce -- with a
mask of the regions to regenerate (white) or keep (black) and optional reference images. The setup
is written in a ``rendiff_pretrained.yaml`` whose paths are relative to the file::

    kind: wan_vace
    model: Wan2.1-VACE-1.3B-diffusers   # a WanVACEPipeline folder (1.3B or 14B; Wan2.2 VACE-Fun
                                        # adds transformer_2/)
    control: depth                      # depth | pose | flow
    keep: [robot]                       # optional: entities whose rendered pixels are kept
    reference: look.png                 # optional: an image of the look to give the video
    prompt: a robot arm stacking wooden blocks on a workbench, daylight
    negative_prompt: blurry, distorted
    steps: 30
    guidance_scale: 5.0
    conditioning_scale: 1.0

The control video is the map in VACE's own encodings (:func:`vace_control`), each normalised
**per frame** as VACE's annotators do (theirs run frame by frame):

- ``depth``: inverse depth, min-max over the frame's valid pixels to [0, 1], grey, near =
  bright, the empty background 0. VACE's annotator is a monocular estimator (Depth Anything /
  MiDaS): relative inverse depth, also near = bright and min-max normalised per frame; ours is
  exact where theirs is estimated (and theirs gives the far background its own estimate).
- ``pose``: the OpenPose-18 body skeleton on black (the ``pose`` layer: limbs and joints, no
  hands or face, as VACE's ``pose_body`` annotator draws it), its channels reversed as that
  annotator's are (it draws OpenPose's colours on a canvas it then flips from BGR): the first
  limb, neck to right shoulder, is blue, not ControlNet's red.
- ``flow``: optical flow in the Middlebury colour coding (:func:`flow_to_middlebury`, the one
  RAFT's visualiser draws), magnitude over the frame's largest (+1e-5, as RAFT's), with VACE's
  timing: frame t shows the flow from t - 1 to t, frame 0 repeats frame 1's (the engine's
  forward flow of frame t - 1).

The mask is white (regenerate) everywhere except the pixels of the ``keep`` entities, which are
black, and there the video carries the engine's own RGB render instead of the control, as VACE's
inpainting tasks take it. A reference image is letterboxed (aspect kept) onto a white canvas of
the clip's size, as VACE's reference preprocessing does.

Any frame count and size: VACE takes 4k + 1 frames (the VAE's temporal factor) and sizes that are
multiples of 16 (the VAE's spatial factor times the transformer's patch); other counts are padded
by repeating the last frame, other sizes by repeating the edges, and cropped back. A clip smaller
than ``area`` (default Wan2.1's 480P, 480 x 832 pixels) is generated scaled up to about that many
pixels and scaled back down: Wan generates poorly far below the sizes it was trained at.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
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
    parse_region,
    pool_to_tokens,
    weight_map,
)

__all__ = ["VACE_CONTROLS", "WanVACESpec", "check_wan_inputs", "check_wan_vace_folder",
           "control_for", "control_videos", "flow_to_middlebury",
           "generate_from_wan_spec", "generate_wan_vace", "letterbox", "load_wan_vace",
           "middlebury_wheel", "vace_control", "vace_mask"]

#: The control videos VACE was trained on that rendiff renders exactly.
VACE_CONTROLS = ("depth", "pose", "flow")
_LAYER = {"depth": Layer.DEPTH, "pose": Layer.POSE, "flow": Layer.FLOW}


class WanVACESpec(BaseModel):
    """A Wan VACE setup (see the module docstring). Paths are absolute once loaded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["wan_vace"] = "wan_vace"
    model: Path  # WanVACEPipeline folder
    control: Literal["depth", "pose", "flow"] = "depth"
    keep: list[str] = Field(default_factory=list)  # entity names whose render is kept
    weight_masks: dict[Literal["depth", "pose", "flow"], WeightMask | str] = Field(
        default_factory=dict)  # where the control's strength applies (per control)
    reference: Path | None = None
    prompt: str = ""
    negative_prompt: str = ""
    guidance_scale: float = Field(5.0, ge=0.0, le=100.0)
    conditioning_scale: float = Field(1.0, ge=0.0, le=10.0)
    steps: int | None = Field(None, ge=1, le=1000)  # None: 30
    flow_shift: float | None = Field(None, gt=0.0, le=100.0)  # None: the model's own
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_sequence_length: int = Field(512, ge=1, le=4096)
    area: int | None = Field(399_360, ge=256, le=4096 * 4096)  # 480P; None: the clip's size
    max_frames: int = Field(81, ge=5, le=1025)  # frames per pass (Wan2.1 trained on 81)
    overlap: int = Field(9, ge=1, le=1024)  # frames a pass takes from the one before

    @field_validator("keep")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"an entity is named twice: {v}")
        return v

    @field_validator("weight_masks")
    @classmethod
    def _masks(cls, v: dict) -> dict:
        out = {k: WeightMask(where=m) if isinstance(m, str) else m for k, m in v.items()}
        for k, m in out.items():
            parse_region(m.where, f"weight_masks.{k}")
        return out

    @model_validator(mode="after")
    def _passes(self) -> WanVACESpec:
        if self.overlap >= self.max_frames:
            raise ValueError(f"overlap: {self.overlap} must be below max_frames "
                             f"({self.max_frames})")
        return self

    def check_folders(self) -> None:
        """The model folder holds a WanVACEPipeline (:func:`check_wan_vace_folder`)."""
        check_wan_vace_folder(self.model)

    def check_run(self, maps: Sequence[str] | None, entities: Sequence[str] | None) -> None:
        """What a run with ``maps`` on a scene of ``entities`` needs (:func:`check_wan_inputs`)."""
        control = control_for(self, maps)
        check_wan_inputs(None, control, self.keep, self.reference, entities)
        if entities is not None and control in self.weight_masks:
            check_region(self.weight_masks[control], list(entities), f"weight_masks.{control}")

    def resolved(self, root: Path) -> WanVACESpec:
        """A copy with every path absolute, relative ones taken against ``root``."""
        from .loading import absolute_path

        return self.model_copy(update={
            "model": absolute_path(self.model, root),
            "reference": None if self.reference is None else absolute_path(self.reference, root)})


# ---------------------------------------------------------------- encodings (frozen)


#: Colours per segment of the Middlebury optical-flow colour wheel (Baker et al. 2007), red ->
#: yellow -> green -> cyan -> blue -> magenta -> red: 55 colours.
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)


def middlebury_wheel() -> Tensor:
    """The 55 colours [55, 3] in [0, 255] of the Middlebury flow colour wheel: within each
    segment one channel ramps by ``floor(255 i / n)`` while another holds at 255."""
    cols = []
    ramps = ((0, 1, +1), (1, 0, -1), (1, 2, +1), (2, 1, -1), (2, 0, +1), (0, 2, -1))
    for n, (hold, move, sign) in zip(_WHEEL_SEGMENTS, ramps, strict=True):
        seg = torch.zeros(n, 3)
        seg[:, hold] = 255.0
        ramp = torch.floor(255.0 * torch.arange(n, dtype=torch.float64) / n).float()
        seg[:, move] = ramp if sign > 0 else 255.0 - ramp
        cols.append(seg)
    return torch.cat(cols)


def flow_to_middlebury(flow: Tensor, max_norm: float) -> Tensor:
    """Optical flow [..., 2] (u right, v down, pixels) to the Middlebury colour coding that
    RAFT's visualiser (and so VACE's flow annotator) draws: direction picks a colour of
    :func:`middlebury_wheel` (interpolated between neighbours; flow to the right is red, down
    is yellow-orange, left is cyan-blue), magnitude / ``max_norm`` blends it from white, flow
    beyond ``max_norm`` is darkened to 0.75. Returns [..., 3] float32 in [0, 1], quantised to
    the 8-bit levels the visualiser writes."""
    wheel = middlebury_wheel() / 255.0
    n = wheel.shape[0]
    u, v = flow[..., 0].float() / max_norm, flow[..., 1].float() / max_norm
    rad = torch.sqrt(u * u + v * v)
    a = torch.atan2(-v, -u) / math.pi
    fk = (a + 1) / 2 * (n - 1)
    k0 = fk.floor().long().clamp(0, n - 1)
    k1 = torch.where(k0 + 1 == n, 0, k0 + 1)
    f = (fk - k0)[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]
    inside = (rad <= 1)[..., None]
    col = torch.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    return torch.floor(255.0 * col) / 255.0


def vace_control(name: str, data: Tensor) -> Tensor:
    """One layer of a clip to VACE's control video [T, H, W, 3] float32 in [0, 1], normalised
    frame by frame (module docstring). ``name``: ``depth`` [T, H, W] metres (+inf empty),
    ``pose`` [T, H, W, 3] the rendered skeleton image, ``flow`` [T, H, W, 2] pixels, the
    engine's forward flow (frame t to t + 1)."""
    if name == "depth":
        valid = torch.isfinite(data) & (data > 0)
        inv = torch.where(valid, 1.0 / data.clamp_min(1e-12), 0.0).float()
        big = torch.finfo(torch.float32).max
        lo = torch.where(valid, inv, big).flatten(1).amin(1).view(-1, 1, 1)
        hi = torch.where(valid, inv, -big).flatten(1).amax(1).view(-1, 1, 1)
        span = hi - lo
        out = torch.where(span > 0, (inv - lo) / span.clamp_min(1e-30), 1.0)
        out = torch.where(valid, out, 0.0)
        return out[..., None].expand(*data.shape, 3).contiguous()
    if name == "pose":
        # VACE's annotator draws OpenPose's colours, then reverses the channels of its canvas
        # before writing the RGB video (vace/annotators/pose.py): the first limb is blue there.
        return data.clamp(0, 1).float().flip(-1)
    if name == "flow":
        if not len(data):
            return torch.zeros(*data.shape[:-1], 3)
        # VACE's annotator gives frame t the flow from t - 1 to t (frame 0 repeats frame 1's):
        # the engine's forward flow of frame t - 1.
        data = torch.cat([data[:1], data[:-1]])
        frames = []
        for f in data:
            peak = float(f.norm(dim=-1).max())
            frames.append(flow_to_middlebury(f, max_norm=peak + 1e-5))  # RAFT's normaliser
        return torch.stack(frames)
    raise ValueError(f"no VACE encoding for {name!r}; VACE takes {list(VACE_CONTROLS)}")


def vace_mask(layers: Layers, keep: Sequence[str]) -> Tensor:
    """[T, H, W] float32: 1 (white) = generate, 0 (black) = keep the engine's render; the pixels
    of the ``keep`` entities (by instance id) are kept."""
    T = layers.frames
    W, H = layers.size
    mask = torch.ones(T, H, W)
    if not keep:
        return mask
    names = list(layers.entity_names)
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise ValueError(f"keep: no entity named {unknown[0]!r}; the scene has {names}")
    if Layer.INSTANCE not in layers:
        raise ValueError("keep: needs the instance layer, which was not rendered")
    inst = layers[Layer.INSTANCE]
    for k in keep:
        mask[inst == names.index(k) + 1] = 0.0
    return mask


def letterbox(image: Tensor, width: int, height: int) -> Tensor:
    """[h, w, 3] in [0, 1] -> [height, width, 3]: scaled to fit (aspect kept; sizes truncated
    and plain bilinear, as VACE's and diffusers' reference preprocessing) and centred on white."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    scaled = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None].float(), size=(nh, nw),
                                             mode="bilinear", align_corners=False)[0]
    out = torch.ones(height, width, 3)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top:top + nh, left:left + nw] = scaled.permute(1, 2, 0).clamp(0, 1)
    return out


# ---------------------------------------------------------------- loading and sampling


def load_wan_vace(folder: str | Path, *, device: str | torch.device = "cpu",
                  dtype: str | torch.dtype | None = None) -> Any:
    """``WanVACEPipeline`` from a local folder, offline, weights from safetensors only; any
    failure is one line (:class:`~rendiff.conditioners.loading.ModelError`)."""
    from .loading import ModelError, first_line, quiet, resolve_dtype

    folder = check_wan_vace_folder(folder)
    try:
        import ftfy  # noqa: F401  (Wan's prompt cleaning calls it)
        from diffusers import WanVACEPipeline
    except ImportError as e:
        raise ModelError(f"Wan VACE needs diffusers >= 0.34 with accelerate and ftfy installed "
                         f"({first_line(e)}); reinstall rendiff") from None
    cuda = torch.device(device).type == "cuda"
    auto = dtype in (None, "auto")
    torch_dtype = torch.bfloat16 if auto and cuda else resolve_dtype(dtype, device)
    with quiet():
        try:
            extra = {}
            if auto and cuda:  # the VAE in float32, as diffusers' own Wan examples load it
                from diffusers import AutoencoderKLWan

                extra["vae"] = AutoencoderKLWan.from_pretrained(
                    str(folder / "vae"), local_files_only=True, torch_dtype=torch.float32,
                    use_safetensors=True)
            pipe = WanVACEPipeline.from_pretrained(str(folder), local_files_only=True,
                                                   torch_dtype=torch_dtype,
                                                   use_safetensors=True, **extra)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{folder}: cannot load the Wan VACE pipeline: "
                             f"{first_line(e)[:300]}") from None
    return pipe.to(device)


def check_wan_vace_folder(folder: str | Path) -> Path:
    """Checks, without loading, that ``folder`` holds a WanVACEPipeline in diffusers format with
    weights in safetensors; returns it. One-line ModelError otherwise."""
    from .loading import check_pipeline_folder

    return check_pipeline_folder(Path(folder), "WanVACEPipeline", "Wan VACE model folder")


def _pil_frames(frames: Tensor) -> list:
    from PIL import Image

    arr = (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]



def generate_wan_vace(
    pipe: Any,
    layers: Layers,
    *,
    control: str = "depth",
    keep: Sequence[str] = (),
    reference: str | Path | Tensor | None = None,
    prompt: str = "",
    negative_prompt: str = "",
    steps: int = 30,
    seed: int = 0,
    guidance_scale: float = 5.0,
    conditioning_scale: float = 1.0,
    weight_mask: WeightMask | str | Tensor | None = None,
    flow_shift: float | None = None,
    max_sequence_length: int = 512,
    area: int | None = None,
    progress: bool = True,
    max_frames: int | None = None,
    overlap: int = 9,
) -> Tensor:
    """Generates a clip with a pipeline from :func:`load_wan_vace` (module docstring).

    ``area``: pixels per frame to generate at (Wan2.1's 480P is 480 x 832 = 399,360); a smaller
    clip is scaled up to about that area (aspect kept, control video bilinear, mask nearest) and
    the frames scaled back down. None: the clip's own size.

    ``max_frames``: the most frames one pass generates (None: all at once). A longer clip is
    generated in passes of at most that many frames, each starting ``overlap`` frames before the
    last one ended: VACE's video extension, those frames given as the previous pass generated
    them with the mask black (kept), so the passes join without a cut.

    ``weight_mask``: where the control's strength (``conditioning_scale``) applies -- a region of
    the scene (:class:`~rendiff.conditioners.token_weights.WeightMask`), the strength times its
    ``outside`` elsewhere -- or a per-pixel, per-frame map [T, H, W] in [0, 1] of the clip's
    shape, averaged over each token's pixels and frames and given to the model as a per-token
    scale (times ``conditioning_scale``).

    Returns [T, H, W, 3] float32 frames in [0, 1] on the CPU, T, H, W those of ``layers``."""
    from .loading import ModelError

    if control not in VACE_CONTROLS:
        raise ModelError(f"control: VACE takes {list(VACE_CONTROLS)}, not {control!r}")
    layer = _LAYER[control]
    if layer not in layers:
        raise ModelError(f"control: the {control!r} layer was not rendered; rendered: "
                         f"{[k.value for k in layers]}")
    T = layers.frames
    W, H = layers.size
    try:
        video, mask = _vace_inputs(layers, control, keep)
        weights = None
        if isinstance(weight_mask, Tensor):
            weights = checked_weight_map(weight_mask, (T, H, W), "weight_mask") * float(
                conditioning_scale)
        elif weight_mask is not None:
            wm = WeightMask(where=weight_mask) if isinstance(weight_mask, str) else weight_mask
            weights = weight_map(layers, wm, float(conditioning_scale))
    except ValueError as e:
        raise ModelError(str(e)) from None
    if flow_shift is not None:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config,
                                                          flow_shift=float(flow_shift))
    pipe.set_progress_bar_config(disable=not progress)
    common = dict(reference=reference, prompt=prompt, negative_prompt=negative_prompt,
                  steps=steps, seed=seed, guidance_scale=guidance_scale,
                  conditioning_scale=conditioning_scale,
                  max_sequence_length=max_sequence_length, area=area)
    if max_frames is None or T <= max_frames:
        return _generate_pass(pipe, video, mask, weights, **common)
    if not 1 <= overlap < max_frames:
        raise ModelError(f"overlap: {overlap} must be at least 1 and below max_frames "
                         f"({max_frames})")
    frames = torch.empty(T, H, W, 3)
    start, done = 0, 0  # frames [0, done) are generated
    while done < T:
        stop = min(start + max_frames, T)
        v, m = video[start:stop].clone(), mask[start:stop].clone()
        context = done - start  # frames this pass takes from the one before
        if context > 0:
            v[:context] = frames[start:done]
            m[:context] = 0.0  # black: keep them
        w = None if weights is None else weights[start:stop]
        out = _generate_pass(pipe, v, m, w, **common)
        frames[done:stop] = out[context:]
        done = stop
        start = stop - overlap
    return frames


def _generate_pass(pipe: Any, video: Tensor, mask: Tensor, weights: Tensor | None, *,
                   reference: Any, prompt: str, negative_prompt: str, steps: int, seed: int,
                   guidance_scale: float, conditioning_scale: float, max_sequence_length: int,
                   area: int | None) -> Tensor:
    """One pipeline call on a control video [T, H, W, 3] and mask [T, H, W] (1 = generate), with
    a per-pixel control strength [T, H, W] or None (``conditioning_scale`` everywhere): scaled to
    ``area``, padded to the model's sizes, generated, cropped and scaled back."""
    from .loading import ModelError

    T, H, W = video.shape[:3]
    ft = int(pipe.vae_scale_factor_temporal)
    m = int(pipe.vae_scale_factor_spatial) * int(pipe.transformer.config.patch_size[1])
    Tp = padded_frames(T, ft)
    Hs, Ws, Hp, Wp = generation_size(H, W, m, area)  # scaled towards area, then padded
    mask = mask[..., None].expand(-1, -1, -1, 3)
    if (Hs, Ws) != (H, W):
        video = resize_clip(video, Hs, Ws, "bilinear")
        mask = resize_clip(mask, Hs, Ws, "nearest")
    video = pad_clip(video, Tp, Hp, Wp)
    mask = pad_clip(mask, Tp, Hp, Wp)
    refs = None
    if reference is not None:
        ref = torch.ones(Hp, Wp, 3)  # centred on the visible clip, the padding white
        ref[:Hs, :Ws] = letterbox(_read_image(reference), Ws, Hs)
        refs = _pil_frames(ref[None])
    scale: float | Tensor = float(conditioning_scale)
    if weights is not None:
        scale = _token_scale(pipe, weights, Hs, Ws, Tp, Hp, Wp, m, ft,
                             n_ref=0 if refs is None else len(refs),
                             ref_scale=float(conditioning_scale))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = pipe(prompt=prompt, negative_prompt=negative_prompt or None,
                   video=_pil_frames(video), mask=_pil_frames(mask), reference_images=refs,
                   conditioning_scale=scale, height=Hp, width=Wp,
                   num_frames=Tp, num_inference_steps=int(steps),
                   guidance_scale=float(guidance_scale),
                   generator=torch.Generator("cpu").manual_seed(int(seed)), output_type="np",
                   max_sequence_length=int(max_sequence_length)).frames
    frames = torch.from_numpy(np.asarray(out[0], dtype=np.float32))  # [Tp, Hp, Wp, 3]
    if not torch.isfinite(frames).all():
        raise ModelError("Wan VACE produced NaN or inf frames (try dtype: float32)")
    frames = frames[:T, :Hs, :Ws]
    if (Hs, Ws) != (H, W):
        frames = resize_clip(frames, H, W, "bilinear")
    return frames.clamp(0, 1).contiguous()



def _token_scale(pipe: Any, weights: Tensor, Hs: int, Ws: int, Tp: int, Hp: int, Wp: int,
                 m: int, ft: int, *, n_ref: int, ref_scale: float) -> Tensor:
    """A per-pixel strength [T, H, W] as the per-token scale VACE's blocks multiply their hints
    by: fitted like the mask (nearest, edges and last frame repeated), averaged per token
    (:func:`~rendiff.conditioners.token_weights.pool_to_tokens`), the reference images' latent
    frames (which VACE puts first) at ``ref_scale``; [layers, 1, tokens, 1]."""
    w = weights[..., None]
    if w.shape[1:3] != (Hs, Ws):
        w = resize_clip(w, Hs, Ws, "nearest")
    tok = pool_to_tokens(pad_clip(w, Tp, Hp, Wp)[..., 0], temporal=ft, spatial=m)
    if n_ref:
        tok = torch.cat([torch.full((n_ref, *tok.shape[1:]), ref_scale), tok])
    layers = len(pipe.transformer.config.vace_layers)
    return tok.reshape(1, 1, -1, 1).expand(layers, -1, -1, -1).contiguous()


def _read_image(image: str | Path | Tensor) -> Tensor:
    if isinstance(image, str | Path):
        from PIL import Image, UnidentifiedImageError

        from .loading import ModelError

        try:
            with Image.open(image) as img:
                return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)
        except (OSError, UnidentifiedImageError) as e:
            raise ModelError(f"{image}: not a readable image ({e})") from None
    t = torch.as_tensor(image, dtype=torch.float32)
    if t.ndim != 3 or t.shape[-1] != 3:
        from .loading import ModelError

        raise ModelError(f"reference image has shape {tuple(t.shape)}, expected [H, W, 3]")
    return t


def generate_from_wan_spec(layers: Layers, spec: WanVACESpec, *, seed: int = 0,
                           steps: int | None = None, reference: Any = None,
                           prompt: str | None = None, negative_prompt: str | None = None,
                           guidance_scale: float | None = None, maps: Sequence[str] | None = None,
                           weights: Mapping[str, float] | None = None, device: str = "cpu",
                           progress: bool = True, record: dict | None = None) -> Tensor:
    """Loads ``spec``'s model and generates from ``layers``; arguments left None take the setup
    file's values. ``maps`` may name one map (overrides ``control``); ``weights`` may give that
    map's conditioning scale. ``record``, when given, receives the settings used."""
    from .loading import ModelError

    control = control_for(spec, maps)
    scale = spec.conditioning_scale
    if weights:
        stray = sorted(set(weights) - {control})
        if stray:
            raise ModelError(f"weights given for map(s) {stray}; the setup takes {control!r}")
        scale = float(weights.get(control, scale))
    settings = dict(
        control=control, keep=list(spec.keep),
        reference=reference if reference is not None else spec.reference,
        prompt=spec.prompt if prompt is None else prompt,
        negative_prompt=spec.negative_prompt if negative_prompt is None else negative_prompt,
        steps=steps or spec.steps or 30, seed=seed,
        guidance_scale=spec.guidance_scale if guidance_scale is None else guidance_scale,
        conditioning_scale=scale, weight_mask=spec.weight_masks.get(control),
        flow_shift=spec.flow_shift,
        max_sequence_length=spec.max_sequence_length, area=spec.area,
        max_frames=spec.max_frames, overlap=spec.overlap)
    check_wan_inputs(layers, control, settings["keep"], settings["reference"])  # before loading
    pipe = load_wan_vace(spec.model, device=device, dtype=spec.dtype)
    video = generate_wan_vace(pipe, layers, progress=progress, **settings)
    if record is not None:
        ref = settings["reference"]
        record.update({**settings, "model": str(spec.model), "maps": [control],
                       "weights": {control: scale},
                       "weight_mask": None if settings["weight_mask"] is None
                       else settings["weight_mask"].model_dump(),
                       "reference": ref if ref is None or isinstance(ref, str | Path)
                       else "image array", "scheduler": type(pipe.scheduler).__name__,
                       "flow_shift": pipe.scheduler.config.get("flow_shift"),
                       "dtype": str(pipe.transformer.dtype).replace("torch.", "")})
        record["reference"] = None if ref is None else str(record["reference"])
    return video


def control_videos(layers: Layers, spec: WanVACESpec,
                   maps: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The control video and mask a run of ``spec`` gives VACE, at the clip's size (before any
    scaling and padding): for ``maps/model_<name>.mp4``."""
    control = control_for(spec, maps)
    if _LAYER[control] not in layers:
        return {}
    video, mask = _vace_inputs(layers, control, spec.keep)
    return {control: video, "mask": mask[..., None].expand(*mask.shape, 3)}


def _vace_inputs(layers: Layers, control: str, keep: Sequence[str]) -> tuple[Tensor, Tensor]:
    """The control video [T, H, W, 3] and mask [T, H, W] (1 = generate) VACE is given: the
    ``keep`` entities' pixels black in the mask and carrying the engine's RGB in the video."""
    video = vace_control(control, layers[_LAYER[control]])
    mask = vace_mask(layers, list(keep))
    if keep:
        if Layer.RGB not in layers:
            raise ValueError("keep: needs the rgb layer, which was not rendered")
        video = torch.where(mask[..., None] > 0.5, video, layers[Layer.RGB].clamp(0, 1))
    return video, mask


def control_for(spec: WanVACESpec, maps: Sequence[str] | None) -> str:
    """The control video a run uses: one map named by ``maps`` (the command line's ``--maps``,
    the scene's ``generation.maps``), else the setup file's ``control``."""
    from .loading import ModelError

    if not maps:
        return spec.control
    if len(maps) != 1:
        raise ModelError(f"maps: Wan VACE takes one control video, got {list(maps)}")
    return maps[0]


def check_wan_inputs(layers: Layers | None, control: str, keep: Sequence[str],
                     reference: Any, entities: Sequence[str] | None = None) -> None:
    """What a Wan VACE run needs, checked before any model loads: a known control (rendered,
    when ``layers`` are given), ``keep`` entities that exist, a readable reference image."""
    from .loading import ModelError

    if control not in VACE_CONTROLS:
        raise ModelError(f"control: VACE takes {list(VACE_CONTROLS)}, not {control!r}")
    names = list(layers.entity_names) if layers is not None else entities
    if names is not None:
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise ModelError(f"keep: no entity named {unknown[0]!r}; the scene has {list(names)}")
    if layers is not None and _LAYER[control] not in layers:
        raise ModelError(f"control: the {control!r} layer was not rendered")
    if isinstance(reference, str | Path):
        _read_image(reference)
