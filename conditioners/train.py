"""Training of the default video diffusion model on clips rendered by the engine.

Data: a data set made by ``rendiff dataset`` (its control images are encoded from the stored
layers as the clips are read), or a folder of ``.npz`` clips, each holding ``rgb`` and one array
per control map (``depth``, ``normal``, ...), uint8 ``[T, H, W, 3]`` in the frozen control-image
encodings (what ``tools/make_training_data.py`` writes).

Two phases, both with Adam:

1. the VAE, briefly: per-frame reconstruction (L1) plus a small KL term, on random crops of random
   frames; then its ``scaling_factor`` is set to 1 / std of the latents, so latents have unit
   variance as the noise schedule assumes; it is saved to ``output_dir/vae``, and ``vae_path``
   starts another run (an ablation, say) from it instead. A run from a trained model
   (``init_from``) skips this phase unless ``retrain_vae`` continues the whole VAE (the latents
   move and the scale is measured again), or trains the decoder alone (``decoder_steps``, encoder
   frozen, latents unchanged); ``vae_lr_decay`` ends either with the rate falling to 0;
2. the UNet with the guidance encoder and/or latent control encoder (VAE frozen), on random
   ``num_frames`` windows and ``size`` crops: epsilon or v-prediction MSE with min-SNR weighting.
   Each map is dropped at random (its weight set to 0, which is what an absent map is at
   inference), sometimes all of them, and the remaining weights are sometimes drawn below 1, so
   the model works with any subset of maps and any weights; the reference image (a random frame
   of the clip) is dropped at random too, which trains the unconditional input that
   classifier-free guidance and reference-free generation use.

Every random choice comes from one seeded generator, so a run is reproducible; a checkpoint
(models, optimizers, generator state) is written every ``checkpoint_minutes`` and at the end of
each phase, and ``resume=True`` continues from it with the same result as an uninterrupted run.
The final pipeline is saved with ``save_pretrained`` to ``output_dir/pipeline``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler
from torch import Tensor

from rendiff.conditioners.guidance import resolve_control_weights
from rendiff.conditioners.latent import (
    LatentControlEncoder,
    concat_conditions,
    encode_reference,
)
from rendiff.conditioners.models import vae_downsample_factor, vae_encode_video
from rendiff.conditioners.pipeline import (
    RendiffVideoPipeline,
    build_pipeline,
)

__all__ = [
    "NpzClipDataset",
    "clips_by_family",
    "DatasetClips",
    "open_clips",
    "TrainConfig",
    "WeightAverage",
    "count_parameters",
    "colour_weights",
    "decayed_lr",
    "diffusion_loss",
    "fine_tune_start",
    "load_trained",
    "snapshot",
    "synthetic_clip",
    "train",
    "write_synthetic_clips",
]


@dataclass
class TrainConfig:
    """Options of a training run (all of them are written to ``output_dir/config.json``)."""

    data_dir: str
    output_dir: str
    maps: tuple[str, ...] = ("depth", "normal", "semantic")
    injection: str = "pixel"  # "pixel", "latent", "both" or "none" (ablations)
    vae_maps: tuple[str, ...] = ()  # maps also concatenated as VAE latents (e.g. albedo, shading)
    preset: str = "default"
    temporal_layers: str = "conv"
    prediction_type: str = "v_prediction"
    size: int = 64  # square training crop, pixels
    num_frames: int = 8  # training window, frames
    batch_size: int = 2
    vae_steps: int = 2000
    vae_batch_frames: int = 8
    vae_lr: float = 5e-4
    kl_weight: float = 1e-6
    unet_steps: int = 10000
    lr: float = 3e-4
    map_dropout: float = 0.3
    all_maps_dropout: float = 0.05
    random_weight_prob: float = 0.3
    reference_dropout: float = 0.1
    snr_gamma: float | None = 5.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_minutes: float = 10.0
    log_every: int = 20
    resume: bool = False
    vae_path: str | None = None  # a trained VAE folder (e.g. RUN/vae): skips the VAE phase
    init_from: str | None = None  # a trained pipeline folder to fine-tune (skips the VAE phase)
    decoder_steps: int = 0  # VAE decoder fine-tuning steps, encoder frozen (latents unchanged)
    vae_lr_decay: float = 0.0  # linear decay of vae_lr to 0 over this last fraction of the VAE
    # and decoder phases (0: constant), so the VAE ends on settled rather than noisy weights
    retrain_vae: bool = False  # with init_from: train the whole VAE vae_steps more (latents move)
    device: str = "cpu"  # random draws stay on the CPU generator, so runs match across devices
    max_cached_clips: int = 64
    colour_weight: float = 0.0  # extra loss weight on coloured albedo cells (needs an albedo map)
    lr_decay: float = 0.0  # linear decay of lr to 0 over this last fraction of the UNet phase
    ema_decay: float = 0.0  # exponential moving average of the denoisers' weights (0: off); the
    # saved pipeline holds the average, which samples from settled rather than last-step weights


def count_parameters(module: torch.nn.Module | None) -> int:
    """Number of parameters (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class NpzClipDataset:
    """Random windows and crops of the ``.npz`` clips in a folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, maps: tuple[str, ...], max_cached: int = 64):
        self.files = sorted(Path(folder).glob("*.npz"))
        if not self.files:
            raise ValueError(f"no .npz clips in {folder}")
        self.maps = tuple(maps)
        self.max_cached = max_cached
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.files[index]) as data:
            missing = [k for k in ("rgb", *self.maps) if k not in data]
            if missing:
                raise ValueError(f"{self.files[index]} lacks {missing}")
            return {k: data[k] for k in ("rgb", *self.maps)}

    def clip(self, index: int) -> dict[str, np.ndarray]:
        """The clip's arrays, uint8 [T, H, W, 3] by name (``rgb`` and the maps)."""
        if index not in self._cache:
            arrays = self._load(index)
            shapes = {k: a.shape for k, a in arrays.items()}
            if len(set(shapes.values())) != 1 or arrays["rgb"].ndim != 4:
                raise ValueError(
                    f"{self.files[index]}: arrays must share one [T, H, W, 3] shape: {shapes}"
                )
            if len(self._cache) >= self.max_cached:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = arrays
        return self._cache[index]

    def _randint(self, high: int, gen: torch.Generator) -> int:
        return int(torch.randint(0, high, (1,), generator=gen))

    def sample(
        self, num_frames: int, size: int, gen: torch.Generator
    ) -> tuple[dict[str, Tensor], Tensor]:
        """One random window: name -> [3, T, size, size] in [0, 1] (with ``rgb``), and a
        reference frame [3, size, size] drawn from anywhere in the clip (same crop)."""
        arrays = self.clip(self._randint(len(self.files), gen))
        t, h, w = arrays["rgb"].shape[:3]
        if t < num_frames or h < size or w < size:
            raise ValueError(
                f"clip of {t}x{h}x{w} is smaller than the window {num_frames}x{size}x{size}"
            )
        t0 = self._randint(t - num_frames + 1, gen)
        y0, x0 = self._randint(h - size + 1, gen), self._randint(w - size + 1, gen)
        ref_t = self._randint(t, gen)

        def crop(a: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[..., y0 : y0 + size, x0 : x0 + size, :]))

        window = {
            k: crop(a[t0 : t0 + num_frames]).permute(3, 0, 1, 2).float() / 255
            for k, a in arrays.items()
        }
        reference = crop(arrays["rgb"][ref_t]).permute(2, 0, 1).float() / 255
        return window, reference

    def batch(
        self, batch_size: int, num_frames: int, size: int, gen: torch.Generator
    ) -> tuple[dict[str, Tensor], Tensor]:
        """``batch_size`` windows stacked: name -> [B, 3, T, size, size], and references
        [B, 3, size, size]."""
        items = [self.sample(num_frames, size, gen) for _ in range(batch_size)]
        video = {k: torch.stack([it[0][k] for it in items]) for k in items[0][0]}
        return video, torch.stack([it[1] for it in items])


class DatasetClips(NpzClipDataset):
    """Random windows and crops of the clips of a ``rendiff dataset`` folder: the same
    sampling as :class:`NpzClipDataset`, the control images encoded from the stored layers."""

    def __init__(self, folder: str | os.PathLike, maps: tuple[str, ...], max_cached: int = 64):
        from rendiff.dataset.loader import ClipDataset

        self.source = ClipDataset(folder, layers=("rgb",))
        if len(self.source) == 0:
            raise ValueError(f"no complete clips in the data set {folder}")
        self.files = [self.source.clip_dir(i) for i in range(len(self.source))]
        self.maps = tuple(maps)
        self.max_cached = max_cached
        self._cache = {}

    def _load(self, index: int) -> dict[str, np.ndarray]:
        return self.source.training_arrays(index, self.maps)


def open_clips(
    folder: str | os.PathLike, maps: tuple[str, ...], max_cached: int = 64
) -> NpzClipDataset:
    """Training clips from a ``rendiff dataset`` folder or a folder of ``.npz`` clips."""
    from rendiff.dataset.loader import is_dataset

    cls = DatasetClips if is_dataset(folder) else NpzClipDataset
    return cls(folder, maps, max_cached)


def clips_by_family(folder: str | os.PathLike, n: int | None = None) -> list[Path]:
    """Up to ``n`` ``.npz`` clips of a folder (all if None), taken in turn from each scene family
    (the file name before its last ``_``), each family's in name order: the same clips, in the
    same order, for every script that samples a folder."""
    by_kind: dict[str, list[Path]] = {}
    for f in sorted(Path(folder).glob("*.npz")):
        by_kind.setdefault(f.name.rsplit("_", 1)[0], []).append(f)
    total = sum(map(len, by_kind.values()))
    n = total if n is None else min(n, total)
    picked: list[Path] = []
    while len(picked) < n:
        for group in by_kind.values():
            if group and len(picked) < n:
                picked.append(group.pop(0))
    return picked


def synthetic_clip(
    num_frames: int = 8, size: int = 32, seed: int = 0, discs: int = 2
) -> dict[str, np.ndarray]:
    """A clip of shaded spheres sliding over a gradient, with analytic maps (smoke-test data).

    Returns uint8 ``[T, size, size, 3]`` arrays ``rgb``, ``depth`` (inverse depth normalised over
    the clip), ``normal`` (unit normal n mapped to (n + 1) / 2), ``semantic`` (one palette colour
    per sphere) and ``shading`` (Lambert, grey). The encodings only approximate the engine's; they
    are consistent with each other, which is all a smoke test needs.
    """
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    radius = rng.uniform(0.15, 0.3, discs) * size
    start = rng.uniform(0.25, 0.75, (discs, 2)) * size
    vel = rng.uniform(-1.0, 1.0, (discs, 2)) * size / 16
    colour = rng.uniform(0.2, 1.0, (discs, 3))
    dist = rng.uniform(2.0, 4.0, discs)
    palette = np.array(
        [
            [0.0, 0.0, 0.0],
            [1.0, 0.2, 0.2],
            [0.2, 1.0, 0.2],
            [0.2, 0.2, 1.0],
            [1.0, 1.0, 0.2],
            [1.0, 0.2, 1.0],
        ]
    )
    light = np.array([-0.4, -0.5, -0.77])
    light /= np.linalg.norm(light)
    bg_depth = 6.0
    depth = np.full((num_frames, size, size), bg_depth)
    normal = np.zeros((num_frames, size, size, 3))
    normal[..., 2] = -1.0
    ids = np.zeros((num_frames, size, size), dtype=int)
    for t in range(num_frames):
        for d in np.argsort(-dist):  # far to near, so nearer spheres overwrite
            cy, cx = start[d] + vel[d] * t
            rho2 = ((ii - cy) ** 2 + (jj - cx) ** 2) / radius[d] ** 2
            inside = rho2 < 1
            nz = -np.sqrt(np.clip(1 - rho2, 0, 1))
            z = dist[d] + nz * radius[d] / size
            hit = inside & (z < depth[t])
            depth[t][hit] = z[hit]
            normal[t][hit] = np.stack([(jj - cx) / radius[d], (ii - cy) / radius[d], nz], -1)[hit]
            ids[t][hit] = d + 1
    shading = np.clip((normal * light).sum(-1), 0, 1) * 0.8 + 0.2
    bg = np.stack([ii / size, 0.5 + 0 * ii, jj / size], -1) * 0.5 + 0.25
    albedo = np.where(ids[..., None] > 0, np.vstack([[0, 0, 0], colour])[ids], bg)
    rgb = albedo * shading[..., None]
    inv = 1 / depth
    inv = (inv - inv.min()) / (inv.max() - inv.min())
    maps = {
        "rgb": rgb,
        "depth": np.repeat(inv[..., None], 3, -1),
        "normal": (normal + 1) / 2,
        "semantic": palette[ids % len(palette)],
        "shading": np.repeat(shading[..., None], 3, -1),
    }
    return {k: np.clip(np.round(v * 255), 0, 255).astype(np.uint8) for k, v in maps.items()}


def write_synthetic_clips(
    folder: str | os.PathLike, count: int, num_frames: int = 8, size: int = 32, seed: int = 0
) -> list[Path]:
    """Write ``count`` synthetic clips (``synthetic_clip``) as ``clip_XXXX.npz`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:04d}.npz"
        np.savez_compressed(path, **synthetic_clip(num_frames, size, seed * 100003 + i))
        paths.append(path)
    return paths


def diffusion_loss(
    pipe: RendiffVideoPipeline,
    video: dict[str, Tensor],  # name -> [B, 3, T, H, W] in [0, 1], with "rgb"
    reference_image: Tensor,  # [B, 3, H, W] in [0, 1]
    weights: Tensor,  # [B, M, T, H, W] resolved control weights, M = len(pipe.map_names)
    timesteps: Tensor,  # [B] int training timesteps
    noise: Tensor,  # [B, C, T, h, w]
    reference_keep: Tensor | None = None,  # [B], 0 drops the reference
    snr_gamma: float | None = None,
    latent_weight: Tensor | None = None,  # [B, 1, T, h, w] >= 0, per latent cell
) -> Tensor:  # [B]
    """The per-sample denoising loss of ``pipe``'s UNet and conditioners (VAE frozen).

    Epsilon or v-prediction (the scheduler's ``prediction_type``), optionally min-SNR weighted
    (Hang et al. 2023) with ``snr_gamma``. ``latent_weight`` weights the squared error per latent
    cell (normalised to mean 1 per sample, so only where the error counts changes, not the
    loss's scale).
    """
    vae, unet = pipe.vae, pipe.unet
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    names = pipe.map_names
    b = reference_image.shape[0]
    with torch.no_grad():
        z0 = vae_encode_video(vae, video["rgb"] * 2 - 1)
        reference = (
            encode_reference(vae, reference_image) if unet.config.reference_channels else None
        )
    if reference is not None and reference_keep is not None:
        reference = reference * reference_keep.view(b, 1, 1, 1, 1).to(reference)
    zt = sched.add_noise(z0, noise, timesteps)
    v_pred = sched.config.prediction_type == "v_prediction"
    target = sched.get_velocity(z0, noise, timesteps) if v_pred else noise
    controls = {n: video[n] for n in names}
    feats = control = None
    if pipe.guidance_encoder is not None:
        idx = [names.index(n) for n in pipe.guidance_encoder.map_names]
        feats = pipe.guidance_encoder(controls, weights[:, idx])
    if pipe.latent_encoder is not None:
        idx = [names.index(n) for n in pipe.latent_encoder.map_names]
        control = pipe.latent_encoder(controls, weights[:, idx], vae=vae)
    pred = unet(concat_conditions(zt, reference, control), timesteps, feats)
    err = (pred - target) ** 2
    if latent_weight is not None:
        w = latent_weight.to(err)
        err = err * (w / w.flatten(1).mean(1).clamp_min(1e-8).view(-1, 1, 1, 1, 1))
    per_sample = err.flatten(1).mean(1)
    if snr_gamma is not None:
        alphas = sched.alphas_cumprod.to(timesteps.device)[timesteps]
        snr = alphas / (1 - alphas)
        clipped = snr.clamp(max=snr_gamma)
        per_sample = per_sample * (clipped / (snr + 1) if v_pred else clipped / snr.clamp_min(1e-8))
    return per_sample


def colour_weights(
    albedo: Tensor,  # [B, 3, T, H, W] in [0, 1]
    size: int,
    weight: float,
) -> Tensor:  # [B, 1, T, size, size]
    """Per-latent-cell loss weights ``1 + weight * chroma``, where chroma (max minus min channel
    of the albedo, area-averaged to the latent grid) is 0 on grey surfaces and up to 1 on
    saturated ones: more of the loss on getting coloured objects right."""
    b, _, t, h, w = albedo.shape
    chroma = (albedo.amax(1) - albedo.amin(1)).reshape(b * t, 1, h, w)
    chroma = torch.nn.functional.interpolate(chroma, size=(size, size), mode="area")
    return 1 + weight * chroma.reshape(b, t, 1, size, size).transpose(1, 2)


def decayed_lr(base: float, step: int, total: int, fraction: float) -> float:
    """``base`` until the last ``fraction`` of ``total`` steps, then falling linearly to 0 at
    ``total`` (the learning rate of step ``step``, counting from 0)."""
    if fraction <= 0 or total <= 0:
        return base
    return base * min(1.0, (total - step) / (fraction * total))


def _float_copy(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


class WeightAverage:
    """Exponential moving average of modules' floating-point weights (the "EMA" of diffusion
    training): ``avg <- decay * avg + (1 - decay) * weight`` after each optimiser step."""

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float):
        self.modules, self.decay = modules, decay
        self.average = {name: _float_copy(m) for name, m in modules.items()}
        # (average, live weight) pairs, found once: the optimiser updates weights in place
        self._pairs = [(self.average[name][k], v) for name, m in modules.items()
                       for k, v in m.state_dict().items() if k in self.average[name]]

    @torch.no_grad()
    def update(self) -> None:
        for avg, weight in self._pairs:
            avg.lerp_(weight, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return self.average

    def load_state_dict(self, state: dict) -> None:
        for name, avg in self.average.items():
            for k, v in state[name].items():
                avg[k].copy_(v)

    def copy_to(self) -> None:
        """Load the averages into the modules (the non-float buffers stay as they are)."""
        for name, m in self.modules.items():
            m.load_state_dict({**m.state_dict(), **self.average[name]})


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _control_weights(
    cfg: TrainConfig,
    names: tuple[str, ...],
    batch: int,
    t: int,
    h: int,
    w: int,
    gen: torch.Generator,
) -> Tensor:  # [B, M, T, H, W]
    """Random map dropout and weights, resolved exactly as at inference."""
    out = []
    for _ in range(batch):
        drop_all = float(torch.rand((), generator=gen)) < cfg.all_maps_dropout
        keep = torch.rand(len(names), generator=gen) >= cfg.map_dropout
        draw = torch.rand(len(names), generator=gen) < cfg.random_weight_prob
        values = 0.3 + 0.7 * torch.rand(len(names), generator=gen)
        present = [n for i, n in enumerate(names) if keep[i] and not drop_all]
        weights = {n: float(values[i]) for i, n in enumerate(names) if n in present and draw[i]}
        out.append(resolve_control_weights(names, present, weights, t, h, w))
    return torch.stack(out)


class _Logger:
    def __init__(self, path: Path):
        self.path = path
        self.start = time.monotonic()

    def __call__(self, **row) -> None:
        row = {"elapsed_s": round(time.monotonic() - self.start, 1), **row}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
            flush=True,
        )


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) a model as the module docstring describes; return the pipeline folder."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    log = _Logger(out / "log.jsonl")

    torch.manual_seed(cfg.seed)
    if cfg.init_from is not None and cfg.vae_path is not None:
        raise ValueError("init_from and vae_path exclude each other (the model has its VAE)")
    pipe = _initial_pipeline(cfg)
    if cfg.vae_path is not None:
        trained_vae = AutoencoderKL.from_pretrained(cfg.vae_path, low_cpu_mem_usage=False)
        same = (trained_vae.config.latent_channels, vae_downsample_factor(trained_vae)) == (
            pipe.vae.config.latent_channels,
            vae_downsample_factor(pipe.vae),
        )
        if not same:
            raise ValueError(f"the VAE in {cfg.vae_path} does not match preset {cfg.preset!r}")
        pipe.register_modules(vae=trained_vae)
    dev = torch.device(cfg.device)
    pipe.to(dev)
    vae, unet = pipe.vae, pipe.unet
    guidance, latent = pipe.guidance_encoder, pipe.latent_encoder
    names = pipe.map_names
    if cfg.colour_weight and "albedo" not in names:
        raise ValueError(f"colour_weight needs a model that takes the albedo map; it takes {names}")
    recorded = {**asdict(cfg), "maps": list(names)}  # with init_from, the model's maps
    (out / "config.json").write_text(json.dumps(recorded, indent=2))
    data = open_clips(cfg.data_dir, names, cfg.max_cached_clips)
    counts = {
        "vae": count_parameters(vae),
        "unet": count_parameters(unet),
        "guidance_encoder": count_parameters(guidance),
        "latent_encoder": count_parameters(latent),
    }
    print(
        "parameters: "
        + ", ".join(f"{k} {v / 1e6:.3f}M" for k, v in counts.items())
        + f", total {sum(counts.values()) / 1e6:.3f}M",
        flush=True,
    )

    gen = torch.Generator().manual_seed(cfg.seed)
    denoisers = [m for m in (unet, guidance, latent) if m is not None]
    vae_opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    opt = torch.optim.Adam([p for m in denoisers for p in m.parameters()], lr=cfg.lr)
    after_vae = "decoder" if cfg.decoder_steps > 0 else "unet"
    if cfg.retrain_vae and cfg.init_from is None:
        raise ValueError("retrain_vae continues a trained model's VAE: it needs init_from")
    trained = cfg.vae_path is not None or (cfg.init_from is not None and not cfg.retrain_vae)
    phase, step = (after_vae if trained else "vae"), 0
    resumed_average = None
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        for key, module in (
            ("vae", vae),
            ("unet", unet),
            ("guidance_encoder", guidance),
            ("latent_encoder", latent),
        ):
            if module is not None:
                module.load_state_dict(state["models"][key])
        vae.register_to_config(scaling_factor=state["scaling_factor"])
        vae_opt.load_state_dict(state["vae_opt"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["generator"])
        phase, step = state["phase"], state["step"]
        resumed_average = state.get("ema")
        print(f"resumed at phase {phase}, step {step}", flush=True)

    average = None  # the denoisers' weight average, made when the UNet phase starts

    def checkpoint() -> None:
        models = {"vae": vae.state_dict(), "unet": unet.state_dict()}
        if guidance is not None:
            models["guidance_encoder"] = guidance.state_dict()
        if latent is not None:
            models["latent_encoder"] = latent.state_dict()
        _save_checkpoint(
            ckpt_path,
            {
                "phase": phase,
                "step": step,
                "models": models,
                "scaling_factor": float(vae.config.scaling_factor),
                "vae_opt": vae_opt.state_dict(),
                "opt": opt.state_dict(),
                "generator": gen.get_state(),
                "ema": average.state_dict() if average is not None else None,
            },
        )

    last_ckpt = time.monotonic()

    def maybe_checkpoint() -> None:
        nonlocal last_ckpt
        if time.monotonic() - last_ckpt >= cfg.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = time.monotonic()

    # Phase 1: the VAE
    if phase == "vae":
        vae.train()
        while step < cfg.vae_steps:
            for g in vae_opt.param_groups:
                g["lr"] = decayed_lr(cfg.vae_lr, step, cfg.vae_steps, cfg.vae_lr_decay)
            video, _ = data.batch(cfg.vae_batch_frames, 1, cfg.size, gen)
            x = video["rgb"][:, :, 0].to(dev) * 2 - 1
            dist = vae.encode(x).latent_dist
            z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(dev)
            rec = vae.decode(z).sample
            rec_loss = (rec - x).abs().mean()
            kl = dist.kl().mean()
            loss = rec_loss + cfg.kl_weight * kl
            vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
            vae_opt.step()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.vae_steps:
                log(
                    phase="vae",
                    step=step,
                    loss=loss.item(),
                    l1=rec_loss.item(),
                    kl=kl.item(),
                    lr=vae_opt.param_groups[0]["lr"],
                )
            maybe_checkpoint()
        vae.eval()
        with torch.no_grad():
            video, _ = data.batch(64, 1, cfg.size, gen)
            vae.register_to_config(scaling_factor=1.0)
            z = vae_encode_video(vae, video["rgb"].to(dev) * 2 - 1)
            vae.register_to_config(scaling_factor=float(1 / z.std()))
        log(phase="vae", step=step, scaling_factor=float(vae.config.scaling_factor))
        vae.save_pretrained(out / "vae")
        phase, step = after_vae, 0
        checkpoint()
        last_ckpt = time.monotonic()

    # Phase 1b: the VAE decoder alone, encoder frozen, so latents (and a trained UNet) stay valid
    if phase == "decoder":
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)
        while step < cfg.decoder_steps:
            for g in vae_opt.param_groups:
                g["lr"] = decayed_lr(cfg.vae_lr, step, cfg.decoder_steps, cfg.vae_lr_decay)
            video, _ = data.batch(cfg.vae_batch_frames, 1, cfg.size, gen)
            x = video["rgb"][:, :, 0].to(dev) * 2 - 1
            with torch.no_grad():
                z = vae.encode(x).latent_dist.mode()
            rec_loss = (vae.decode(z).sample - x).abs().mean()
            vae_opt.zero_grad(set_to_none=True)
            rec_loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.decoder.parameters(), cfg.grad_clip)
            vae_opt.step()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.decoder_steps:
                log(
                    phase="decoder", step=step, l1=rec_loss.item(), lr=vae_opt.param_groups[0]["lr"]
                )
            maybe_checkpoint()
        vae.save_pretrained(out / "vae")
        phase, step = "unet", 0
        checkpoint()
        last_ckpt = time.monotonic()

    # Phase 2: the UNet and the conditioners, VAE frozen
    vae.eval().requires_grad_(False)
    for m in denoisers:
        m.train()
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    if cfg.ema_decay > 0:
        named = {"unet": unet, "guidance_encoder": guidance, "latent_encoder": latent}
        average = WeightAverage({k: m for k, m in named.items() if m is not None}, cfg.ema_decay)
        if resumed_average is not None:  # else it starts from the weights as they are now
            average.load_state_dict(resumed_average)
    while step < cfg.unet_steps:
        for g in opt.param_groups:
            g["lr"] = decayed_lr(cfg.lr, step, cfg.unet_steps, cfg.lr_decay)
        video, ref_img = data.batch(cfg.batch_size, cfg.num_frames, cfg.size, gen)
        b = ref_img.shape[0]
        keep = (torch.rand(b, generator=gen) >= cfg.reference_dropout).float()
        weights = _control_weights(cfg, names, b, cfg.num_frames, cfg.size, cfg.size, gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (b,), generator=gen)
        lat = cfg.size // vae_downsample_factor(vae)
        noise = torch.randn(b, vae.config.latent_channels, cfg.num_frames, lat, lat, generator=gen)
        video = {k: v.to(dev) for k, v in video.items()}
        ref_img, keep, weights, t, noise = (x.to(dev) for x in (ref_img, keep, weights, t, noise))
        lw = colour_weights(video["albedo"], lat, cfg.colour_weight) if cfg.colour_weight else None
        loss = diffusion_loss(
            pipe, video, ref_img, weights, t, noise, keep, cfg.snr_gamma, lw
        ).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for m in denoisers for p in m.parameters()], cfg.grad_clip
        )
        opt.step()
        if average is not None:
            average.update()
        step += 1
        if step % cfg.log_every == 0 or step == cfg.unet_steps:
            log(phase="unet", step=step, loss=loss.item(), lr=opt.param_groups[0]["lr"])
        maybe_checkpoint()
    checkpoint()
    if average is not None:
        average.copy_to()

    for m in denoisers:
        m.eval()
    final = out / "pipeline"
    pipe.save_pretrained(final)
    log(phase="done", step=step, pipeline=str(final))
    return final


def fine_tune_start(
    folder: str | os.PathLike, vae_maps: tuple[str, ...] = ()
) -> RendiffVideoPipeline:
    """A trained pipeline in float32 to continue training, with ``vae_maps`` added as VAE-encoded
    latent maps if it lacks them: the UNet's new input channels start at zero weight
    (``widen_control_channels``), so the returned model generates exactly what the loaded one
    did until they are trained."""
    pipe = RendiffVideoPipeline.from_pretrained(
        str(folder), dtype=torch.float32, low_cpu_mem_usage=False
    )
    old = pipe.latent_encoder
    have = set(old.map_names) if old is not None else set()
    new = tuple(m for m in vae_maps if m not in have)
    if not new:
        return pipe
    if old is not None:
        cfg = dict(old.config)
        cfg["vae_map_names"] = tuple(cfg["vae_map_names"]) + new
        enc = LatentControlEncoder(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        enc.load_state_dict(old.state_dict())
    else:
        enc = LatentControlEncoder(
            map_names=(),
            downsample_factor=vae_downsample_factor(pipe.vae),
            vae_map_names=new,
            vae_latent_channels=pipe.vae.config.latent_channels,
        )
    pipe.unet.widen_control_channels(len(new) * pipe.vae.config.latent_channels)
    pipe.register_modules(latent_encoder=enc)
    return pipe


def _initial_pipeline(cfg: TrainConfig) -> RendiffVideoPipeline:
    """The run's pipeline before training: the ``init_from`` model widened for ``vae_maps``, or
    a new one of the configured maps, injection, preset, temporal layers and prediction."""
    if cfg.init_from is not None:
        return fine_tune_start(cfg.init_from, cfg.vae_maps)
    return build_pipeline(
        maps=cfg.maps,
        injection=cfg.injection,
        preset=cfg.preset,
        temporal_layers=cfg.temporal_layers,
        prediction_type=cfg.prediction_type,
        vae_maps=cfg.vae_maps,
    )


def snapshot(run_dir: str | os.PathLike, out: str | os.PathLike, average: bool = True) -> Path:
    """Write the pipeline of a run's latest checkpoint (mid-run, for an evaluation) to ``out``:
    the UNet phase's weight average when the run keeps one and ``average``, else its weights."""
    run_dir, out = Path(run_dir), Path(out)
    recorded = json.loads((run_dir / "config.json").read_text())
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in recorded.items() if k in known})
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    if state["phase"] != "unet":
        raise ValueError(f"{run_dir}: the checkpoint is in phase {state['phase']!r}, not 'unet'")
    pipe = _initial_pipeline(cfg)
    models = dict(state["models"])
    if average and state.get("ema"):
        models = {k: {**v, **state["ema"].get(k, {})} for k, v in models.items()}
    for name in ("vae", "unet", "guidance_encoder", "latent_encoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.load_state_dict(models[name])
    pipe.vae.register_to_config(scaling_factor=state["scaling_factor"])
    pipe.save_pretrained(out)
    return out


def load_trained(folder: str | os.PathLike) -> RendiffVideoPipeline:
    """Load a pipeline saved by ``train`` (a local folder; nothing is downloaded)."""
    return RendiffVideoPipeline.from_pretrained(str(folder), low_cpu_mem_usage=False)
