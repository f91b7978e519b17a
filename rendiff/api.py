"""The generation half of the public API: condition(), generate(), save()."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from rendiff import defaults
from rendiff._resources import shipped_path
from rendiff.conditioners.controls import control_images
from rendiff.conditioners.pretrained import (
    AnimateDiffSpec,
    ModelError,
    component_hint,
    find_spec,
    first_line,
    load_spec,
)
from rendiff.engine.layers import Layer, Layers
from rendiff.io.outputs import save
from rendiff.scenes.spec import GenerationOptions

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_STEPS", "ModelError", "check_model", "condition",
           "generate", "model_inputs", "save"]

#: The shipped default model (a diffusers pipeline folder), trained by tools/train_default_model.py.
DEFAULT_MODEL_DIR = shipped_path("models", "default")
#: Sampling steps of a trained rendiff model unless the call or the scene says otherwise
#: (:data:`rendiff.defaults.STEPS_TRAINED`).
DEFAULT_STEPS = defaults.STEPS_TRAINED


def condition(layers: Layers, maps: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The control images [T, H, W, 3] in [0, 1] of the rendered layers, keyed by map name, in
    the frozen encodings of :mod:`rendiff.kernels.encodings`."""
    return control_images(layers, maps)


def _reference_image(reference, layers: Layers) -> torch.Tensor:
    """The appearance reference: the given image, or by default the engine's own frames, of
    which each denoising window takes the one at its first frame (a long clip's later windows
    then follow where things are, not where they were at frame 0)."""
    if reference is None:
        return layers[Layer.RGB]
    if isinstance(reference, str | Path):
        from PIL import Image

        img = Image.open(reference).convert("RGB").resize(layers.size, Image.BICUBIC)
        return torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0)
    return torch.as_tensor(reference, dtype=torch.float32)


#: Settings a rendiff model folder's model_index.json may hold beside its components.
_PIPELINE_SETTINGS = ("default_guidance_scale",)


def _check_model_folder(path: Path) -> list[str]:
    """A clear error for a missing folder or one holding another kind of model (its index and
    the modules it names); returns its component names."""
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelError(
            f"{path}: not a rendiff model folder (no model_index.json); pass a folder written by "
            "save_pretrained, or reinstall rendiff to restore the shipped default model")
    try:
        config = json.loads(index.read_text())
        kind = config.get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ModelError(f"{index}: not valid JSON") from None
    if kind != "RendiffVideoPipeline":
        raise ModelError(f"{path}: holds a {kind!r}, not a RendiffVideoPipeline; rendiff's default "
                         "model or one trained by tools/train_default_model.py is needed here")
    # diffusers imports the module each component names: only these libraries may be named
    components = {name: entry for name, entry in config.items()
                  if not name.startswith("_") and entry not in ([None, None], None)
                  and name not in _PIPELINE_SETTINGS}
    for name in _PIPELINE_SETTINGS:
        value = config.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 20:
            raise ModelError(f"{index}: {name} is {value!r}; expected a number in [1, 20]")
    for name, entry in components.items():
        library = entry[0] if isinstance(entry, list) and len(entry) == 2 else None
        if not (isinstance(library, str) and (library in ("diffusers", "transformers")
                                              or library.startswith("rendiff.conditioners."))):
            raise ModelError(f"{index}: component {name!r} names {str(entry)[:60]}; a rendiff "
                             "model's components come from diffusers, transformers or "
                             "rendiff.conditioners only")
    return list(components)


def _check_weights(folder: Path, name: str) -> None:
    """A component's configuration and weights, before any work: valid JSON; safetensors (never
    a pickle), readable, finite. Reading them costs tens of milliseconds for the default model."""
    if not folder.is_dir():
        return
    for config in sorted(folder.glob("*.json")):
        try:
            if not isinstance(json.loads(config.read_text()), dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelError(f"{config}: not a valid configuration ({str(e)[:80]})") from None
    if name == "scheduler":
        return
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise ModelError(f"{folder}: weights are a pickle (.bin/.pt), which could run code; "
                             "rendiff loads .safetensors only")
        return
    from safetensors.numpy import load_file

    for file in files:
        try:
            tensors = load_file(str(file))
        except Exception as e:  # safetensors' own errors: a damaged or truncated file
            raise ModelError(f"{file}: not a readable safetensors file ({e})") from None
        bad = [k for k, v in tensors.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise ModelError(f"{file}: the weights of {name} hold NaN or inf ({bad[0]}; a "
                             "damaged file?)")


def check_model(model: str | Path | None, maps: list[str] | None = None,
                entities: list[str] | None = None) -> None:
    """Checks a ``model`` argument of :func:`generate` before any work (simulating a scene or
    making clips): the shipped default (None), a pretrained setup file or folder holding one
    (read and checked whole; for Wan VACE also its folder, its ``keep`` names against the scene's
    ``entities`` and its reference image), or a rendiff model folder (its index, configurations
    and weights), and that a rendiff model was trained with every map of ``maps``. Raises
    :class:`ModelError` with one line."""
    setup = find_spec(model) if model is not None else None
    if setup is not None:
        spec = load_spec(setup)
        if getattr(spec, "kind", None) in ("wan_vace", "cosmos_transfer"):
            spec.check_folders()
            try:
                spec.check_run(maps, entities)
            except ModelError as e:
                raise ModelError(f"{setup}: {e}") from None
        return
    path = DEFAULT_MODEL_DIR if model is None else Path(model).expanduser()
    for name in _check_model_folder(path):
        _check_weights(path / name, name)
    trained: list[str] = []
    for component, keys in (("guidance_encoder", ("map_names",)),
                            ("latent_encoder", ("map_names", "vae_map_names"))):
        config = path / component / "config.json"
        if config.is_file():
            data = json.loads(config.read_text())
            trained += [m for k in keys for m in data.get(k) or [] if m not in trained]
    unknown = [m for m in maps or [] if m not in trained]
    if unknown:
        raise ModelError(f"{path}: the model was not trained with map(s) {unknown}; it takes "
                         f"{trained}")


def _load_pipeline(path: Path):
    """Loads a pipeline folder quietly (no hub, no loading bars, no advice about accelerate)."""
    from diffusers.utils import logging as dlogging

    from rendiff.conditioners.pipeline import RendiffVideoPipeline

    level = dlogging.get_verbosity()
    dlogging.set_verbosity(50)  # CRITICAL: its load errors come back as our one-line error
    dlogging.disable_progress_bar()
    try:
        with warnings.catch_warnings():  # diffusers' own torch_dtype deprecation, not ours
            warnings.simplefilter("ignore", FutureWarning)
            # safetensors only: a pickled .bin could run code
            pipe = RendiffVideoPipeline.from_pretrained(str(path), local_files_only=True,
                                                        low_cpu_mem_usage=False,
                                                        dtype=torch.float32,
                                                        use_safetensors=True)
        damaged = [name for name, module in pipe.components.items()
                   if isinstance(module, torch.nn.Module)
                   and not all(torch.isfinite(p).all() for p in module.parameters())]
        if damaged:
            raise ModelError(f"{path}: the weights of {', '.join(damaged)} hold NaN or inf (a "
                             "damaged file?)")
        return pipe
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise ModelError(f"{path}: cannot load the model: {first_line(e)[:300]}") from None
    finally:
        dlogging.set_verbosity(level)
        dlogging.enable_progress_bar()


def _scheduler(name: str, config):
    """A diffusers scheduler by short name, sharing the trained scheduler's configuration."""
    import diffusers

    if name not in defaults.SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of "
                         f"{sorted(defaults.SCHEDULERS)}")
    return getattr(diffusers, defaults.SCHEDULERS[name]).from_config(config)


def _pretrained_spec(model, gen) -> AnimateDiffSpec | None:
    """The AnimateDiff setup that ``model`` (or the scene's ``generation.model``) names, if it
    names one: a spec object, a setup file, or a folder holding ``rendiff_pretrained.yaml``."""
    source = model if model is not None else (gen.model if gen is not None else None)
    if source is None:
        return None
    if isinstance(source, BaseModel) and getattr(source, "kind", None) in (
            "animatediff", "wan_vace", "cosmos_transfer"):
        return source
    spec_file = find_spec(source)
    return None if spec_file is None else load_spec(spec_file)


def _generate_pretrained(layers: Layers, spec: AnimateDiffSpec, gen, *, reference, maps,
                         weights, window, overlap, steps, scheduler, **kw) -> torch.Tensor:
    """A pretrained AnimateDiff setup's generation. Each setting comes from the argument, else
    the setup file, else the scene's ``generation`` options, else the default."""
    from rendiff.conditioners.pretrained import generate_from_spec

    if spec.kind == "cosmos_transfer":
        from rendiff.conditioners.cosmos_transfer import generate_from_cosmos_spec

        for name, value in (("keyframes", kw.pop("keyframes", None)), ("scheduler", scheduler),
                            ("reference", reference)):
            if value is not None:
                raise ModelError(f"{name}: a Cosmos-Transfer2.5 setup takes none (its controls "
                                 "and prompt carry the look)")
        return generate_from_cosmos_spec(
            layers, spec, maps=maps or (gen.maps if gen is not None and gen.maps else None),
            weights=weights if weights is not None else (dict(gen.weights) if gen is not None
                                                         else {}),
            steps=steps or spec.steps or (gen.steps if gen is not None else None), **kw)
    if spec.kind == "wan_vace":
        from rendiff.conditioners.wan_vace import generate_from_wan_spec

        if kw.pop("keyframes", None) is not None:
            raise ModelError("keyframes: only SparseCtrl setups take keyframes, not Wan VACE")
        if scheduler is not None:
            raise ModelError("scheduler: a Wan VACE setup samples with its model's own "
                             "scheduler (set flow_shift in the setup file instead)")
        return generate_from_wan_spec(
            layers, spec,
            reference=reference if reference is not None else (
                gen.reference if gen is not None and gen.reference is not None else None),
            maps=maps or (gen.maps if gen is not None and gen.maps else None),
            weights=weights if weights is not None else (dict(gen.weights) if gen is not None
                                                         else {}),
            steps=steps or spec.steps or (gen.steps if gen is not None else None), **kw)

    if reference is None and gen is not None and gen.reference is not None:
        if spec.sparsectrl is None:
            warnings.warn("the scene's generation.reference is ignored: AnimateDiff with "
                          "ControlNets takes no reference image", stacklevel=3)
        else:
            reference = gen.reference
    return generate_from_spec(
        layers, spec, reference=reference,
        maps=maps or (gen.maps if gen is not None and gen.maps else None),
        weights=weights if weights is not None else (dict(gen.weights) if gen is not None else {}),
        window=window or (gen.window if gen is not None else defaults.WINDOW),
        overlap=overlap if overlap is not None else (
            gen.overlap if gen is not None else defaults.OVERLAP),
        steps=steps or spec.steps or (gen.steps if gen is not None else None),
        # the scene's scheduler only when the scene file names one: its default (ddim) is the
        # shipped model's, and a setup without one samples with its base model's own
        scheduler=scheduler or spec.scheduler or (
            gen.scheduler if gen is not None and "scheduler" in gen.model_fields_set else None),
        **kw)


def generate(
    layers: Layers,
    model: str | Path | AnimateDiffSpec | None = None,
    *,
    maps: list[str] | None = None,
    weights: dict[str, float] | None = None,
    reference: str | Path | torch.Tensor | None = None,
    steps: int | None = None,
    scheduler: str | None = None,
    seed: int | None = None,
    window: int | None = None,
    overlap: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float | None = None,
    keyframes: int | list[int] | None = None,
    record: dict | None = None,
    options: GenerationOptions | None = None,
    keep_static: bool = True,
    refine: bool = True,
) -> torch.Tensor:
    """Generates a video conditioned on the rendered layers.

    Args:
        layers: output of :func:`rendiff.render`.
        model: a local folder holding a pipeline in diffusers format; None = the shipped default.
            A pretrained AnimateDiff setup is named by its ``rendiff_pretrained.yaml`` file, a
            folder holding one, or an :class:`~rendiff.conditioners.pretrained.AnimateDiffSpec`
            (see :mod:`rendiff.conditioners.pretrained`).
        maps: control layers to condition on (default: those the model was trained with).
        weights: per-map control strength in [0, 1].
        reference: appearance reference image (path or [H, W, 3]); default: the engine's RGB
            frames, each denoising window taking the one at its first frame.
        steps, scheduler, seed, window, overlap: sampling settings; an argument left None
            comes from ``options``, else the default (seed 0).
        device: where the model runs ("cpu" or "cuda").
        prompt, negative_prompt, guidance_scale: text conditioning of a pretrained AnimateDiff
            setup (default: its setup file's); ``guidance_scale`` for a rendiff model is its
            guidance on the reference image (default: the folder's ``default_guidance_scale``).
        keyframes: SparseCtrl setups: the keyframe indices, or k for every k-th frame (default:
            the setup file's, else the first frame).
        record: a dict that receives what made the video (model kind and folders, the setup
            file and its SHA-256, maps and weights, prompts, steps, scheduler, seed, guidance);
            ``rendiff run`` writes it into ``metadata.json`` as ``generation``.
        options: a scene's ``generation`` options (:class:`rendiff.GenerationOptions`: model,
            maps, weights, reference, steps, scheduler, window, overlap), the defaults of every
            argument above left None; ``rendiff run`` passes the scene's, with its seed.
        keep_static: rendiff models, with the engine's frames as the reference (the default):
            pixels whose every control map is unchanged since the window's reference frame keep
            that frame (:func:`rendiff.conditioners.pipeline.keep_static_pixels`); False leaves
            every pixel to the model.
        refine: rendiff models with a refiner (the shipped default): correct the decoded frames
            from the maps (:class:`rendiff.conditioners.refiner.MapRefiner`); False gives the
            VAE decoder's frames.
    Returns:
        [T, H, W, 3] float32 frames in [0, 1].
    """
    gen = options
    spec = _pretrained_spec(model, gen)
    if spec is not None:
        if record is not None:
            record.update(_setup_provenance(model if model is not None else gen.model, spec))
        return _generate_pretrained(
            layers, spec, gen, reference=reference, maps=maps, weights=weights, window=window,
            overlap=overlap, steps=steps, scheduler=scheduler,
            seed=seed if seed is not None else 0, device=device,
            progress=progress, prompt=prompt, negative_prompt=negative_prompt,
            guidance_scale=guidance_scale, keyframes=keyframes, record=record)
    extra = [n for n, v in (("prompt", prompt), ("negative_prompt", negative_prompt),
                            ("keyframes", keyframes)) if v is not None]
    if extra:
        raise ModelError(f"{', '.join(extra)}: only pretrained AnimateDiff setups take these "
                         "(model=<folder with rendiff_pretrained.yaml>)")
    path = Path(model) if model is not None else (
        Path(gen.model) if gen is not None and gen.model else DEFAULT_MODEL_DIR)
    hint = component_hint(path)
    if hint is not None:
        raise ModelError(f"{path}: {hint}")
    _check_model_folder(path)
    pipe = _load_pipeline(path).to(device)
    name = scheduler or (gen.scheduler if gen is not None else None)
    if name is not None:
        pipe.scheduler = _scheduler(name, pipe.scheduler.config)
    maps = maps or (gen.maps if gen is not None and gen.maps else None)
    trained = list(pipe.map_names)
    unknown = [m for m in (maps or []) if m not in trained]
    if unknown:
        raise ModelError(f"{path}: the model was not trained with map(s) {unknown}; it takes "
                         f"{trained}")
    use = maps or [m for m in trained if Layer(m) in layers]
    controls = condition(layers, use)
    weights = weights if weights is not None else (dict(gen.weights) if gen is not None else {})
    ref = reference if reference is not None else (gen.reference if gen is not None else None)
    settings = dict(
        num_inference_steps=steps or (gen.steps if gen is not None else None) or DEFAULT_STEPS,
        seed=seed if seed is not None else 0,
        control_weights=weights or None,
        window=window or (gen.window if gen is not None else defaults.WINDOW),
        overlap=overlap if overlap is not None else (
            gen.overlap if gen is not None else defaults.OVERLAP),
        guidance_scale=float(guidance_scale if guidance_scale is not None
                             else getattr(pipe.config, "default_guidance_scale", 1.0)))
    if settings["guidance_scale"] < 1 or (settings["guidance_scale"] > 1
                                          and not pipe.unet.config.reference_channels):
        raise ModelError(f"guidance_scale: {settings['guidance_scale']} (guidance on the "
                         "reference image: 1 = off, above 1 needs a model that takes one)")
    if record is not None:
        record.update({
            "kind": "rendiff", "model": str(path.resolve()), "maps": list(use),
            "weights": {m: float(weights.get(m, 1.0)) for m in use},
            "steps": settings["num_inference_steps"], "seed": settings["seed"],
            "scheduler": type(pipe.scheduler).__name__, "window": settings["window"],
            "guidance_scale": settings["guidance_scale"],
            "overlap": settings["overlap"],
            "reference": "the engine's frame at each window's start" if ref is None else (
                str(ref) if isinstance(ref, str | Path) else "image array"),
            "keep_static": bool(keep_static and ref is None and controls),
            "refiner": (list(pipe.refiner.map_names)
                        if refine and pipe.refiner is not None else None)})
    out = pipe(controls, reference_image=_reference_image(ref, layers), output_type="pt",
               progress=progress, keep_static=bool(keep_static and ref is None and controls),
               refine=refine, **settings)
    return out.frames.float().cpu()


def model_inputs(layers: Layers, model: str | Path | BaseModel | None = None, *,
                 maps: list[str] | None = None,
                 options: GenerationOptions | None = None) -> dict[str, torch.Tensor]:
    """The control videos a pretrained setup (Cosmos-Transfer2.5, Wan VACE) is given for
    ``layers``, in its own encodings at the clip's size, keyed by name (Wan: its control and
    ``mask``); empty for rendiff models and AnimateDiff, which take the ``maps/`` videos as
    they are. ``rendiff run`` writes them as ``maps/model_<name>.mp4``."""
    spec = _pretrained_spec(model, options)
    if spec is None or spec.kind == "animatediff":
        return {}
    maps = maps or (options.maps if options is not None and options.maps else None)
    if spec.kind == "cosmos_transfer":
        from rendiff.conditioners.cosmos_transfer import control_videos
    else:
        from rendiff.conditioners.wan_vace import control_videos
    return control_videos(layers, spec, maps)


def _setup_provenance(source, spec) -> dict:
    """The setup file a pretrained model came from and its SHA-256 (None for a spec object)."""
    import hashlib

    record: dict = {"kind": spec.kind, "setup_file": None, "setup_sha256": None}
    if isinstance(source, str | Path):
        spec_file = find_spec(source)
        if spec_file is not None and spec_file.is_file():
            record["setup_file"] = str(spec_file.resolve())
            record["setup_sha256"] = hashlib.sha256(spec_file.read_bytes()).hexdigest()
    return record
