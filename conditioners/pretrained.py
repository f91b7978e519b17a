"""Pretrained video models from local folders: AnimateDiff with ControlNets, or with SparseCtrl.

AnimateDiff is a Stable Diffusion 1.5-format pipeline (``base``: a diffusers folder with
``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``)
plus a motion adapter. It is steered either by ControlNets -- one per map, every frame -- or by
SparseCtrl, which takes a few keyframes only. Everything loads with ``from_pretrained`` from
folders the user names; nothing is downloaded.

A setup is written down in a small file, ``rendiff_pretrained.yaml``, whose paths are relative
to the file::

    kind: animatediff
    base: stable-diffusion-v1-5                      # SD1.5 pipeline folder
    motion_adapter: animatediff-motion-adapter-v1-5-2
    controlnets:                                     # map name -> ControlNet folder
      depth: control_v11f1p_sd15_depth
      normal: control_v11p_sd15_normalbae
      pose: control_v11p_sd15_openpose
    prompt: a robot arm stacking wooden blocks, studio light
    negative_prompt: blurry, low quality

or, for SparseCtrl, ``sparsectrl: animatediff-sparsectrl-rgb`` (and ``sparsectrl_map: rgb``,
``keyframes: [0]``) in place of ``controlnets``. ``rendiff.generate(layers, model=FOLDER)`` uses
the file when the folder holds one; ``model=`` may also name the file itself.

The ControlNets receive the control images of :mod:`rendiff.conditioners.controls` unchanged --
the encodings the public SD1.5 ControlNets were trained on: inverse depth normalised over the clip
(``control_v11f1p_sd15_depth``), normals as ``0.5 - 0.5 n`` (``control_v11p_sd15_normalbae``),
the OpenPose-18 skeleton image (``control_v11p_sd15_openpose``).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import Tensor

from rendiff import defaults
from rendiff.engine.layers import Layer, Layers

from .controls import CONTROL_LAYERS, control_image, control_images
from .loading import (
    ModelError,
    absolute_path,
    did_you_mean,
    first_line,
    folder_kind,
    quiet,
    read_json,
    resolve_dtype,
)

log = logging.getLogger(__name__)

__all__ = [
    "SCHEDULERS",
    "SPEC_FILES",
    "AnimateDiffSpec",
    "ModelError",
    "component_hint",
    "find_spec",
    "first_line",
    "generate_animatediff",
    "generate_from_spec",
    "keyframe_indices",
    "load_animatediff",
    "load_spec",
    "make_scheduler",
]




#: File names looked for in a folder passed as ``model=``.
SPEC_FILES = ("rendiff_pretrained.yaml", "rendiff_pretrained.yml", "rendiff_pretrained.json")

#: Sampler short names -> diffusers scheduler class names ("dpm" is DPM-Solver++).
SCHEDULERS = defaults.SCHEDULERS

_MAP_NAMES = tuple(layer.value for layer in CONTROL_LAYERS)
_BASE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


# ---------------------------------------------------------------- the setup file


class AnimateDiffSpec(BaseModel):
    """An AnimateDiff setup: the folders to load and the sampling settings that suit them.

    Paths are absolute once loaded by :func:`load_spec` (relative ones are taken against the
    file's folder). Exactly one of ``controlnets`` and ``sparsectrl`` is given: diffusers has no
    pipeline that takes both."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite

    kind: Literal["animatediff"] = "animatediff"
    base: Path  # Stable Diffusion 1.5-format pipeline folder
    motion_adapter: Path  # MotionAdapter folder
    controlnets: dict[str, Path] = Field(default_factory=dict)  # map name -> ControlNetModel
    sparsectrl: Path | None = None  # SparseControlNetModel folder
    sparsectrl_map: str = "rgb"  # what the SparseCtrl model takes: "rgb" or a map name
    keyframes: list[int] | Annotated[int, Field(ge=1)] | None = None  # int k: every k-th frame
    prompt: str = ""
    negative_prompt: str = ""
    guidance_scale: float = Field(7.5, ge=0.0)
    steps: int | None = Field(None, ge=1, le=1000)
    scheduler: Literal["ddim", "euler", "dpm"] | None = None  # None: the base's own scheduler
    scheduler_options: dict[str, Any] = Field(default_factory=dict)  # from_config overrides
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    variant: str | None = None  # weights variant of the base, e.g. "fp16"

    @field_validator("controlnets")
    @classmethod
    def _map_names(cls, v: dict[str, Path]) -> dict[str, Path]:
        for name in v:
            if name not in _MAP_NAMES:
                raise ValueError(f"unknown map {name!r}{did_you_mean(name, _MAP_NAMES)}; "
                                 f"expected one of {list(_MAP_NAMES)}")
        return v

    @field_validator("sparsectrl_map")
    @classmethod
    def _sparse_map(cls, v: str) -> str:
        if v != "rgb" and v not in _MAP_NAMES:
            raise ValueError(f"unknown map {v!r}; expected 'rgb' or one of {list(_MAP_NAMES)}")
        return v

    @model_validator(mode="after")
    def _one_control(self) -> AnimateDiffSpec:
        if self.controlnets and self.sparsectrl is not None:
            raise ValueError("give controlnets or sparsectrl, not both (diffusers has no pipeline "
                             "combining them); write one file for each")
        if not self.controlnets and self.sparsectrl is None:
            raise ValueError("give controlnets (map -> folder) or sparsectrl (a folder)")
        return self

    def resolved(self, root: Path) -> AnimateDiffSpec:
        """A copy with every path absolute, relative ones taken against ``root``."""
        def fix(p: Path) -> Path:
            return absolute_path(p, root)

        return self.model_copy(update={
            "base": fix(self.base), "motion_adapter": fix(self.motion_adapter),
            "controlnets": {k: fix(v) for k, v in self.controlnets.items()},
            "sparsectrl": None if self.sparsectrl is None else fix(self.sparsectrl)})


def find_spec(path: str | Path) -> Path | None:
    """The setup file that ``path`` names: the file itself (``.yaml``/``.yml``/``.json``, other
    than a diffusers ``model_index.json``), or a :data:`SPEC_FILES` file inside the folder
    ``path``. None when ``path`` is not an AnimateDiff setup (e.g. a rendiff model folder)."""
    p = Path(path).expanduser()
    if p.suffix.lower() in (".yaml", ".yml", ".json") and p.name != "model_index.json" \
            and not p.is_dir():
        return p
    if p.is_dir():
        for name in SPEC_FILES:
            if (p / name).is_file():
                return p / name
    return None


_COMPONENTS = {"MotionAdapter", "ControlNetModel", "SparseControlNetModel", "UNet2DConditionModel",
               "UNetMotionModel", "AutoencoderKL"}


def component_hint(path: str | Path) -> str | None:
    """For a folder holding a diffusers pipeline or model that only an AnimateDiff setup can use
    (an SD1.5 pipeline, a motion adapter, a ControlNet, ...): what to do instead, in one line.
    None for anything else (a rendiff model, a missing folder)."""
    try:
        kind = folder_kind(Path(path).expanduser()) if Path(path).is_dir() else None
    except ModelError:
        return None
    if kind is None or kind == "RendiffVideoPipeline":
        return None
    sd15 = kind.startswith(("StableDiffusion", "AnimateDiff")) and "XL" not in kind
    if kind in _COMPONENTS or sd15:
        return (f"holds a {kind}, not a RendiffVideoPipeline; to generate with AnimateDiff, "
                f"name it in a {SPEC_FILES[0]} (base, motion_adapter, controlnets or sparsectrl) "
                "and pass that file or its folder as the model")
    return None


def load_spec(path: str | Path) -> AnimateDiffSpec | Any:
    """Reads a setup file (YAML or JSON); relative paths become absolute against its folder.

    Raises:
        ModelError: one line naming the file and field, e.g.
            ``rendiff_pretrained.yaml: controlnets.dept: unknown map 'dept' (did you mean
            'depth'?)``."""
    from rendiff.scenes.io import SceneError, read_data_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: setup file not found")
    try:  # the scene files' strict, bounded parser (UTF-8, no duplicate keys, no alias bombs)
        data, _ = read_data_file(path, "setup files")
    except SceneError as e:
        raise ModelError(f"{path}: {e.where + ': ' if e.where else ''}{e.message}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a mapping of keys (kind, and the model's folders)")
    kind = data.get("kind", "animatediff")
    kinds = _spec_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        word = did_you_mean(kind, list(kinds)) if isinstance(kind, str) else ""
        raise ModelError(f"{path}: kind: unknown kind {kind!r}{word}; expected one of "
                         f"{list(kinds)}")
    cls = kinds[kind]
    try:
        # strict JSON validation, as scene files: no "0.12" -> 0.12 or "yes" -> True coercion
        spec = cls.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as e:
        raise ModelError(f"{path}: {_validation_message(e, cls)}") from None
    return spec.resolved(path.parent.resolve())


def _spec_kinds() -> dict[str, type[BaseModel]]:
    """Setup-file ``kind`` -> its schema."""
    from .cosmos_transfer import CosmosTransferSpec
    from .wan_vace import WanVACESpec

    return {"animatediff": AnimateDiffSpec, "wan_vace": WanVACESpec,
            "cosmos_transfer": CosmosTransferSpec}


def _validation_message(e: ValidationError, cls: type[BaseModel] | None = None) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
    if err["type"] == "extra_forbidden":
        fields = list((cls or AnimateDiffSpec).model_fields)
        msg = f"unknown field{did_you_mean(str(err['loc'][-1]), fields)}"
    else:
        msg = err["msg"].removeprefix("Value error, ")
    more = len(e.errors()) - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{loc + ': ' if loc else ''}{msg}{tail}"


# ---------------------------------------------------------------- folder checks


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _check_model(folder: Path, role: str, expected: str, hint: str = "") -> dict[str, Any]:
    """Checks that ``folder`` holds a diffusers model of class ``expected`` with weights; returns
    its config."""
    if not folder.is_dir():
        raise ModelError(f"{folder}: {role} folder not found")
    config = folder / "config.json"
    if not config.is_file():
        kind = folder_kind(folder)
        what = f"folder is a {kind}, expected a {expected}" if kind else \
            f"config.json not found (expected a {expected} folder in diffusers format)"
        raise ModelError(f"{folder}: {what}{hint}")
    cfg = read_json(config)
    kind = cfg.get("_class_name")
    if kind != expected:
        raise ModelError(f"{folder}: folder is a {kind}, expected a {expected}{hint}")
    if not _has_weights(folder):
        raise ModelError(f"{folder}: no weights file (*.safetensors or *.bin) for the {expected}")
    return cfg


def _check_base(base: Path) -> dict[str, dict[str, Any]]:
    """Checks a Stable Diffusion 1.5-format pipeline folder; returns the unet and vae configs."""
    if not base.is_dir():
        raise ModelError(f"{base}: base model folder not found")
    if not (base / "model_index.json").is_file():
        kind = folder_kind(base)
        what = f"folder is a {kind}, expected" if kind else "model_index.json not found; expected"
        raise ModelError(f"{base}: {what} a Stable Diffusion 1.5 pipeline folder in diffusers "
                         "format (model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
                         "scheduler/)")
    kind = read_json(base / "model_index.json").get("_class_name")
    if kind == "RendiffVideoPipeline":
        raise ModelError(f"{base}: is a rendiff model, not a Stable Diffusion 1.5 base; pass it "
                         "as model= directly")
    for part in _BASE_PARTS:
        if not (base / part).is_dir():
            raise ModelError(f"{base}: {part}/ not found (a Stable Diffusion 1.5 pipeline folder "
                             f"has {', '.join(p + '/' for p in _BASE_PARTS)})")
    unet = _check_model(base / "unet", "unet", "UNet2DConditionModel")
    if unet.get("addition_embed_type") is not None:
        raise ModelError(f"{base / 'unet'}: an SDXL-style UNet (addition_embed_type="
                         f"{unet['addition_embed_type']!r}); AnimateDiff here needs an SD1.5 one")
    vae = _check_model(base / "vae", "vae", "AutoencoderKL")
    if not (base / "scheduler" / "scheduler_config.json").is_file():
        raise ModelError(f"{base / 'scheduler'}: scheduler_config.json not found")
    if not (base / "text_encoder" / "config.json").is_file():
        raise ModelError(f"{base / 'text_encoder'}: config.json not found")
    tok = base / "tokenizer"
    if not ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file()) \
            and not (tok / "tokenizer.json").is_file():
        raise ModelError(f"{tok}: no tokenizer files (vocab.json + merges.txt, or "
                         "tokenizer.json)")
    return {"unet": unet, "vae": vae}


def _check_matches(folder: Path, cfg: dict[str, Any], unet: dict[str, Any], what: str) -> None:
    """A part must have been made for this UNet: same block widths and text width."""
    theirs, ours = tuple(cfg.get("block_out_channels", ())), tuple(unet["block_out_channels"])
    if theirs != ours:
        raise ModelError(f"{folder}: this {what} was made for a UNet with block_out_channels "
                         f"{theirs}, the base's UNet has {ours}")
    if "cross_attention_dim" in cfg and cfg["cross_attention_dim"] != unet["cross_attention_dim"]:
        raise ModelError(f"{folder}: this {what} takes text features of width "
                         f"{cfg['cross_attention_dim']}, the base's UNet "
                         f"{unet['cross_attention_dim']}")


def _check_embedding(folder: Path, cfg: dict[str, Any], vae_factor: int, what: str) -> None:
    """The conditioning embedding must bring images to the latents' resolution."""
    if cfg.get("use_simplified_condition_embedding"):
        return
    chans = cfg.get("conditioning_embedding_out_channels") or (16, 32, 96, 256)
    factor = 2 ** (len(chans) - 1)
    if factor != vae_factor:
        raise ModelError(f"{folder}: this {what} downsamples its control image by {factor}, the "
                         f"base's VAE by {vae_factor}")


# ---------------------------------------------------------------- loading


def _load(cls: Any, folder: Path, what: str, **kw: Any) -> Any:
    """``cls.from_pretrained(folder)`` offline, weights from safetensors only (a pickled ``.bin``
    could run code); any failure becomes a one-line ModelError."""
    if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
        kw = {"use_safetensors": True, **kw}
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **kw)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        first = first_line(e)
        raise ModelError(f"{folder}: cannot load the {what}: {first}") from None


def load_animatediff(
    base: str | Path,
    motion_adapter: str | Path,
    controlnets: Mapping[str, str | Path] | None = None,
    sparsectrl: str | Path | None = None,
    *,
    sparsectrl_map: str = "rgb",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    variant: str | None = None,
) -> Any:
    """Loads AnimateDiff with ControlNets, or with SparseCtrl, from local folders (offline).

    Every folder is checked first (class, weights, block widths matching the base's UNet), so a
    wrong folder fails with one line that names it, e.g. ``.../control_v11p_sd15_openpose: folder
    is a ControlNetModel, expected a MotionAdapter``.

    Args:
        base: Stable Diffusion 1.5-format pipeline folder (diffusers layout).
        motion_adapter: MotionAdapter folder.
        controlnets: map name (``depth``, ``normal``, ``pose``, ...) -> ControlNetModel folder.
        sparsectrl: SparseControlNetModel folder (instead of ``controlnets``).
        sparsectrl_map: what the SparseCtrl model was trained on: ``"rgb"`` (keyframe images,
            the RGB variant) or a map name.
        device: where the pipeline runs.
        dtype: weights dtype; default float16 on CUDA, float32 elsewhere.
        variant: weights variant of the base's files (e.g. ``"fp16"``).
    Returns:
        A ready ``AnimateDiffControlNetPipeline`` (one ControlNet, or a ``MultiControlNetModel``
        of several) or ``AnimateDiffSparseControlNetPipeline``, with two extra attributes:
        ``rendiff_maps`` (the map of each ControlNet in order, or SparseCtrl's one input) and
        ``rendiff_scheduler_config`` (the base's scheduler configuration, which scheduler swaps
        start from).
    """
    controlnets = dict(controlnets or {})
    if bool(controlnets) == (sparsectrl is not None):
        raise ValueError("give controlnets (map -> folder) or sparsectrl, exactly one of them")
    for name in controlnets:
        if name not in _MAP_NAMES:
            raise ModelError(f"controlnets: unknown map {name!r}{did_you_mean(name, _MAP_NAMES)}"
                             f"; expected one of {list(_MAP_NAMES)}")
    base, motion_adapter = Path(base).expanduser(), Path(motion_adapter).expanduser()
    nets = {k: Path(v).expanduser() for k, v in controlnets.items()}
    sparse = None if sparsectrl is None else Path(sparsectrl).expanduser()

    # 1. Check every folder before loading anything.
    cfgs = _check_base(base)
    unet_cfg, vae_cfg = cfgs["unet"], cfgs["vae"]
    vae_factor = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    hint = " (motion adapters go under motion_adapter:, ControlNets under controlnets:)"
    adapter_cfg = _check_model(motion_adapter, "motion adapter", "MotionAdapter", hint)
    _check_matches(motion_adapter, adapter_cfg, unet_cfg, "motion adapter")
    for name, folder in nets.items():
        extra = " (SparseCtrl models go under sparsectrl:)" \
            if folder_kind(folder) == "SparseControlNetModel" else ""
        cfg = _check_model(folder, f"{name} ControlNet", "ControlNetModel", extra)
        _check_matches(folder, cfg, unet_cfg, f"{name} ControlNet")
        _check_embedding(folder, cfg, vae_factor, f"{name} ControlNet")
    if sparse is not None:
        if sparsectrl_map != "rgb" and sparsectrl_map not in _MAP_NAMES:
            raise ModelError(f"sparsectrl_map: unknown map {sparsectrl_map!r}")
        cfg = _check_model(sparse, "SparseCtrl", "SparseControlNetModel",
                           " (ControlNets go under controlnets:)")
        _check_matches(sparse, cfg, unet_cfg, "SparseCtrl model")
        _check_embedding(sparse, cfg, vae_factor, "SparseCtrl model")
        if cfg.get("use_simplified_condition_embedding", True) \
                and cfg.get("conditioning_channels", 4) != vae_cfg.get("latent_channels", 4):
            raise ModelError(f"{sparse}: takes {cfg.get('conditioning_channels')}-channel "
                             f"latents, the base's VAE makes {vae_cfg.get('latent_channels')}")

    # 2. Load the parts.
    import diffusers
    from transformers import CLIPTextModel, CLIPTokenizer

    dt = resolve_dtype(dtype, device)
    kw: dict[str, Any] = {"low_cpu_mem_usage": False, "dtype": dt}
    vkw = {"variant": variant} if variant else {}
    with quiet():
        sched_cfg = read_json(base / "scheduler" / "scheduler_config.json")
        sched_cls = getattr(diffusers, str(sched_cfg.get("_class_name")), None)
        if sched_cls is None:
            raise ModelError(f"{base / 'scheduler'}: unknown scheduler "
                             f"{sched_cfg.get('_class_name')!r}")
        scheduler = _load(sched_cls, base / "scheduler", "scheduler")
        tokenizer = _load(CLIPTokenizer, base / "tokenizer", "tokenizer")
        text_encoder = _load(CLIPTextModel, base / "text_encoder", "text encoder", dtype=dt,
                             **vkw)
        vae = _load(diffusers.AutoencoderKL, base / "vae", "VAE", **kw, **vkw)
        unet = _load(diffusers.UNet2DConditionModel, base / "unet", "UNet", **kw, **vkw)
        adapter = _load(diffusers.MotionAdapter, motion_adapter, "motion adapter", **kw)
        parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                     motion_adapter=adapter, scheduler=scheduler)
        if sparse is not None:
            net = _load(diffusers.SparseControlNetModel, sparse, "SparseCtrl model", **kw)
            pipe = diffusers.AnimateDiffSparseControlNetPipeline(**parts, controlnet=net)
            maps: tuple[str, ...] = (sparsectrl_map,)
        else:
            loaded = [_load(diffusers.ControlNetModel, f, f"{n} ControlNet", **kw)
                      for n, f in nets.items()]
            pipe = diffusers.AnimateDiffControlNetPipeline(
                **parts, controlnet=loaded[0] if len(loaded) == 1 else loaded)
            maps = tuple(nets)
        pipe.to(torch.device(device), dt)
    pipe.rendiff_maps = maps
    pipe.rendiff_scheduler_config = dict(scheduler.config, _class_name=type(scheduler).__name__)
    return pipe


def make_scheduler(name: str | None, config: Mapping[str, Any],
                   options: Mapping[str, Any] | None = None) -> Any:
    """A scheduler by short name (:data:`SCHEDULERS`; None = the class the config names), built
    from ``config`` with ``options`` overriding it (e.g. ``{"beta_schedule": "linear"}``)."""
    import diffusers

    if name is not None and name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {sorted(SCHEDULERS)}")
    cls_name = SCHEDULERS[name] if name is not None else str(config.get("_class_name"))
    cls = getattr(diffusers, cls_name)
    with quiet():
        return cls.from_config(dict(config), **dict(options or {}))


# ---------------------------------------------------------------- generation


def keyframe_indices(frames: int, keyframes: int | Sequence[int] | None) -> list[int]:
    """SparseCtrl's keyframes: None = the first frame only, an int k = every k-th frame
    (0, k, 2k, ...), a list = those frames (negative counts from the end).

    Raises:
        ModelError: an index outside the clip or given twice, or k < 1."""
    if keyframes is None:
        return [0]
    if isinstance(keyframes, int):
        if keyframes < 1:
            raise ModelError(f"keyframes: every k-th frame needs k >= 1, got {keyframes}")
        return list(range(0, frames, keyframes))
    out = []
    for k in keyframes:
        if not -frames <= int(k) < frames:
            raise ModelError(f"keyframes: frame {k} is outside the clip of {frames} frames")
        out.append(int(k) % frames)
    if not out:
        raise ModelError("keyframes: the list is empty")
    if len(set(out)) != len(out):
        raise ModelError(f"keyframes: a frame is given twice in {list(keyframes)}")
    return out


def _pad(images: Tensor, height: int, width: int) -> Tensor:
    """[N, H, W, 3] -> [N, 3, height, width], edges repeated to the right and bottom."""
    x = images.permute(0, 3, 1, 2).float()
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return x.contiguous()


def _as_image(image: Any, size: tuple[int, int]) -> Tensor:
    """A path or [H, W, 3] array in [0, 1] -> [H, W, 3] float32 at ``size`` (width, height)."""
    if isinstance(image, str | Path):
        import numpy as np
        from PIL import Image

        img = Image.open(image).convert("RGB").resize(size, Image.BICUBIC)
        return torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0)
    t = torch.as_tensor(image, dtype=torch.float32)
    if t.shape != (size[1], size[0], 3):
        raise ModelError(f"reference image has shape {tuple(t.shape)}, expected "
                         f"[{size[1]}, {size[0]}, 3]")
    return t


def generate_animatediff(
    pipe: Any,
    layers: Layers,
    *,
    prompt: str = "",
    negative_prompt: str = "",
    steps: int = defaults.STEPS_PRETRAINED,
    seed: int = 0,
    guidance_scale: float = 7.5,
    weights: Mapping[str, float] | None = None,
    scheduler: str | None = None,
    scheduler_options: Mapping[str, Any] | None = None,
    keyframes: int | Sequence[int] | None = None,
    keyframe_images: Tensor | None = None,
    reference: str | Path | Tensor | None = None,
    window: int = defaults.WINDOW,
    overlap: int = defaults.OVERLAP,
    progress: bool = True,
) -> Tensor:
    """Generates a clip with a pipeline from :func:`load_animatediff`, conditioned on ``layers``.

    Args:
        pipe: from :func:`load_animatediff`.
        layers: output of :func:`rendiff.render`; each ControlNet gets its map's control image
            (:func:`rendiff.conditioners.controls.control_images`), unchanged.
        prompt, negative_prompt, guidance_scale: text conditioning and classifier-free guidance.
        steps: sampling steps.
        seed: seeds the initial noise (and SparseCtrl's VAE sampling): same seed, same frames.
        weights: ``controlnet_conditioning_scale`` per map (default 1 each); a map at 0 adds
            nothing.
        scheduler: ``"ddim"``, ``"euler"``, ``"dpm"`` (DPM-Solver++) or None (the base's own),
            always built from the base's configuration (plus ``scheduler_options``).
        keyframes: SparseCtrl only, see :func:`keyframe_indices`.
        keyframe_images: SparseCtrl only, [K, H, W, 3] in [0, 1], one per keyframe; default:
            the SparseCtrl map's control image (the engine's RGB for ``"rgb"``) at the keyframes.
        reference: SparseCtrl only: an image (path or [H, W, 3]) that replaces the first
            keyframe's image -- the look to animate.
        window, overlap: clips longer than ``window`` frames (capped at the motion adapter's
            ``motion_max_seq_length``) are generated in overlapping windows (FreeNoise,
            ControlNets only).
        progress: show the sampling progress bar.
    Returns:
        [T, H, W, 3] float32 frames in [0, 1] on the CPU. Sizes that are not a multiple of 8
        (and of the VAE's factor) are padded (edges repeated) and cropped back.
    """
    import diffusers

    maps = tuple(pipe.rendiff_maps)
    sparse = isinstance(pipe, diffusers.AnimateDiffSparseControlNetPipeline)
    weights = dict(weights or {})
    stray = sorted(set(weights) - set(maps))
    if stray:
        raise ModelError(f"weights given for map(s) {stray}; the model takes {list(maps)}")
    T = layers.frames
    W, H = layers.size
    m = math.lcm(pipe.vae_scale_factor, 8)  # the pipelines themselves insist on multiples of 8
    Hp, Wp = -(-H // m) * m, -(-W // m) * m
    device = pipe._execution_device

    # 1. Scheduler, always from the base's own configuration.
    pipe.scheduler = make_scheduler(scheduler, pipe.rendiff_scheduler_config, scheduler_options)
    max_len = int(pipe.motion_adapter.config.get("motion_max_seq_length", 32)) \
        if pipe.motion_adapter is not None else 32
    pipe.set_progress_bar_config(disable=not progress)
    common = dict(prompt=prompt, negative_prompt=negative_prompt or None, num_frames=T,
                  height=Hp, width=Wp, num_inference_steps=steps,
                  guidance_scale=float(guidance_scale), output_type="pt",
                  generator=torch.Generator("cpu").manual_seed(seed))

    if sparse:
        # 2a. SparseCtrl: keyframe images at their indices, the rest of the clip unconstrained.
        if T > max_len:
            raise ModelError(f"SparseCtrl generates at most {max_len} frames at once (the "
                             f"motion adapter's motion_max_seq_length); the clip has {T}")
        idx = keyframe_indices(T, keyframes)
        if keyframe_images is None:
            if maps[0] not in layers:
                raise ModelError(f"SparseCtrl takes the {maps[0]!r} layer, which was not "
                                 f"rendered; rendered: {[k.value for k in layers]}")
            kf = control_image(Layer(maps[0]), layers[maps[0]])[idx]
        else:
            kf = torch.as_tensor(keyframe_images, dtype=torch.float32)
            if kf.shape != (len(idx), H, W, 3):
                raise ModelError(f"keyframe_images has shape {tuple(kf.shape)}, expected "
                                 f"[{len(idx)}, {H}, {W}, 3] (one per keyframe {idx})")
        if reference is not None:
            kf = kf.clone()
            kf[0] = _as_image(reference, (W, H))
        images = _pad(kf.clamp(0, 1), Hp, Wp)
        call = dict(conditioning_frames=[im[None] for im in images], controlnet_frame_indices=idx,
                    controlnet_conditioning_scale=float(weights.get(maps[0], 1.0)))
    else:
        # 2b. ControlNets: every frame's control image, one scale per map.
        if reference is not None:
            raise ModelError("AnimateDiff with ControlNets takes no reference image; use a "
                             "SparseCtrl (RGB) setup to animate a given look")
        controls = control_images(layers, maps)
        frames = [list(_pad(controls[name], Hp, Wp)) for name in maps]
        scales = [float(weights.get(name, 1.0)) for name in maps]
        call = dict(conditioning_frames=frames[0] if len(maps) == 1 else frames,
                    controlnet_conditioning_scale=scales[0] if len(maps) == 1 else scales,
                    decode_chunk_size=window)
        context = min(window, max_len)
        if T > context:
            pipe.enable_free_noise(context_length=context,
                                   context_stride=max(1, context - overlap))
        elif pipe.free_noise_enabled:
            pipe.disable_free_noise()

    # 3. Sample. The global RNG is seeded too (SparseCtrl samples the VAE's posterior with it).
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # diffusers' own deprecations, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.manual_seed(seed)
        out = pipe(**common, **call).frames  # [1, T, 3, Hp, Wp]
    return out[0, :, :, :H, :W].permute(0, 2, 3, 1).float().clamp(0, 1).cpu().contiguous()


def _blank(layers: Layers, name: str) -> bool:
    """Whether a map's control image is black in every frame (nothing to condition on)."""
    return not bool(control_image(Layer(name), layers[name]).any())


def generate_from_spec(
    layers: Layers,
    spec: AnimateDiffSpec,
    *,
    maps: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    reference: str | Path | Tensor | None = None,
    steps: int | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    window: int = defaults.WINDOW,
    overlap: int = defaults.OVERLAP,
    device: str = "cpu",
    progress: bool = True,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float | None = None,
    keyframes: int | Sequence[int] | None = None,
    record: dict | None = None,
) -> Tensor:
    """Loads the setup ``spec`` (only the ControlNets of ``maps``) and generates from ``layers``;
    ``record``, when given, receives the settings used.

    Arguments left None take the setup file's value, then the built-in default (20 steps, the
    base's scheduler). ``maps`` defaults to every ControlNet whose map was rendered.
    Returns [T, H, W, 3] float32 frames in [0, 1]."""
    if spec.sparsectrl is not None:
        if maps and list(maps) != [spec.sparsectrl_map]:
            raise ModelError(f"{spec.sparsectrl}: the SparseCtrl model takes "
                             f"{spec.sparsectrl_map!r} only, not {list(maps)}")
        nets: dict[str, Path] = {}
    else:
        if maps:
            unknown = [m for m in maps if m not in spec.controlnets]
            if unknown:
                raise ModelError(f"the setup has no ControlNet for map(s) {unknown}; it has "
                                 f"{list(spec.controlnets)}")
            nets = {m: spec.controlnets[m] for m in maps}
        else:
            nets = {m: p for m, p in spec.controlnets.items() if Layer(m) in layers}
            if not nets:
                raise ModelError(f"none of the setup's ControlNet maps {list(spec.controlnets)} "
                                 f"was rendered; rendered: {[k.value for k in layers]}")
            # A map with nothing in it (the pose of a scene without people) would steer the
            # video towards an empty image: leave its ControlNet out, and say so.
            empty = [m for m in nets if _blank(layers, m)]
            if len(empty) == len(nets):  # nothing to leave: keep them all, as asked
                empty = []
            for m in empty:
                del nets[m]
            if empty:
                log.warning("the %s map%s empty in this clip: %s ControlNet%s left out",
                            ", ".join(empty), " is" if len(empty) == 1 else "s are",
                            "its" if len(empty) == 1 else "their",
                            "" if len(empty) == 1 else "s")
    known = list(spec.controlnets) or [spec.sparsectrl_map]
    stray = sorted(set(weights or {}) - set(known))
    if stray:
        raise ModelError(f"weights given for map(s) {stray}; the setup takes {known}")
    used = set(nets) or {spec.sparsectrl_map}
    weights = {k: v for k, v in (weights or {}).items() if k in used}
    pipe = load_animatediff(spec.base, spec.motion_adapter, nets or None, spec.sparsectrl,
                            sparsectrl_map=spec.sparsectrl_map, device=device, dtype=spec.dtype,
                            variant=spec.variant)
    settings = dict(
        prompt=spec.prompt if prompt is None else prompt,
        negative_prompt=spec.negative_prompt if negative_prompt is None else negative_prompt,
        steps=steps or spec.steps or defaults.STEPS_PRETRAINED, seed=seed,
        guidance_scale=spec.guidance_scale if guidance_scale is None else guidance_scale,
        weights=weights, scheduler=scheduler or spec.scheduler,
        keyframes=keyframes if keyframes is not None else spec.keyframes)
    video = generate_animatediff(
        pipe, layers, **settings, scheduler_options=spec.scheduler_options,
        reference=reference, window=window, overlap=overlap, progress=progress)
    if record is not None:
        record.update({**settings, "base": str(spec.base),
                       "motion_adapter": str(spec.motion_adapter),
                       "controlnets": {k: str(v) for k, v in nets.items()},
                       "sparsectrl": None if spec.sparsectrl is None else str(spec.sparsectrl),
                       "maps": list(nets) or [spec.sparsectrl_map],
                       "scheduler": type(pipe.scheduler).__name__,
                       "reference": None if reference is None or not isinstance(
                           reference, str | Path) else str(reference),
                       "window": window, "overlap": overlap})
    return video
