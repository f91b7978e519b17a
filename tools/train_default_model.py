"""Train rendiff's default video diffusion model (a thin CLI over ``rendiff.conditioners.train``).

Examples:
    # the shipped model, from clips the engine rendered (uint8 .npz: rgb + one array per map)
    python tools/train_default_model.py --data clips/ --output runs/default \
        --export rendiff/data/default_model
    # continue after an interruption
    python tools/train_default_model.py --data clips/ --output runs/default --resume
    # ablations: no maps, latent-space injection, a subset of maps, per-frame UNet
    python tools/train_default_model.py --data clips/ --output runs/nomaps --injection none
    python tools/train_default_model.py --data clips/ --output runs/latent --injection latent
    python tools/train_default_model.py --data clips/ --output runs/depth --maps depth
    python tools/train_default_model.py --data clips/ --output runs/frame --temporal none
    # fine-tune a trained model: VAE decoder first (encoder frozen), then the UNet with albedo
    # and shading added as VAE latents concatenated with the noisy latents
    python tools/train_default_model.py --data clips/ --output runs/ft \
        --init-from rendiff/data/models/default --vae-maps albedo shading \
        --decoder-steps 1500 --unet-steps 4000
    # or continue its whole VAE (encoder too: the latents move), then retrain the UNet on them
    python tools/train_default_model.py --data clips/ --output runs/ft3 \
        --init-from rendiff/data/models/default --retrain-vae --vae-steps 2000 \
        --vae-lr-decay 0.5 --unet-steps 4000
    # settle a run: a decaying learning rate over its last 30% and a weight average, and
    # evaluate its latest checkpoint while it trains
    python tools/train_default_model.py --data clips/ --output runs/default --resume \
        --unet-steps 16000 --lr-decay 0.3 --ema-decay 0.999
    python tools/train_default_model.py --data clips/ --output runs/default --snapshot runs/snap
    # smoke run on synthetic clips (shaded spheres with analytic maps)
    python tools/train_default_model.py --synthetic 16 --data /tmp/syn --output /tmp/run \
        --preset tiny --size 32 --vae-steps 50 --unet-steps 50
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import fields

import torch

from rendiff.conditioners.models import TEMPORAL_LAYERS
from rendiff.conditioners.pipeline import INJECTIONS, PRESETS
from rendiff.conditioners.train import TrainConfig, snapshot, train, write_synthetic_clips


def main(argv: list[str] | None = None) -> None:
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", required=True, help="a `rendiff dataset` folder or a folder of .npz clips"
    )
    p.add_argument("--output", required=True, help="run folder: checkpoint, log, final pipeline")
    p.add_argument("--maps", nargs="+", default=list(defaults["maps"]))
    p.add_argument("--injection", choices=INJECTIONS, default=defaults["injection"])
    p.add_argument("--preset", choices=sorted(PRESETS), default=defaults["preset"])
    p.add_argument("--temporal", choices=TEMPORAL_LAYERS, default=defaults["temporal_layers"])
    p.add_argument(
        "--prediction", choices=("v_prediction", "epsilon"), default=defaults["prediction_type"]
    )
    for name in (
        "size",
        "num_frames",
        "batch_size",
        "vae_steps",
        "vae_batch_frames",
        "unet_steps",
        "decoder_steps",
        "seed",
        "log_every",
    ):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name])
    for name in (
        "vae_lr",
        "kl_weight",
        "lr",
        "map_dropout",
        "reference_dropout",
        "checkpoint_minutes",
        "colour_weight",
        "vae_lr_decay",
        "lr_decay",
        "ema_decay",
    ):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=defaults[name])
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    p.add_argument("--vae", default=None, help="a trained VAE folder (RUN/vae): skip VAE training")
    p.add_argument(
        "--vae-maps",
        nargs="*",
        default=[],
        help="maps also concatenated as VAE latents (image-like maps: albedo, shading)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="a trained pipeline folder to fine-tune (its maps and sizes are kept; "
        "--maps/--preset/--injection are ignored)",
    )
    p.add_argument(
        "--retrain-vae",
        action="store_true",
        help="with --init-from: train its whole VAE --vae-steps more (encoder too, so "
        "the latents move and the UNet phase re-adapts to them)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--synthetic", type=int, default=0, help="first write this many synthetic clips into --data"
    )
    p.add_argument("--export", default=None, help="copy the final pipeline folder here")
    p.add_argument(
        "--snapshot",
        default=None,
        metavar="FOLDER",
        help="write the pipeline of OUTPUT's latest checkpoint (its weight average "
        "with --ema-decay) to FOLDER and exit: a mid-run evaluation",
    )
    a = p.parse_args(argv)
    if a.snapshot:
        print(f"snapshot written to {snapshot(a.output, a.snapshot)}")
        return

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.synthetic:
        write_synthetic_clips(
            a.data, a.synthetic, num_frames=max(a.num_frames, 8), size=max(a.size, 32), seed=a.seed
        )
    cfg = TrainConfig(
        data_dir=a.data,
        output_dir=a.output,
        maps=tuple(a.maps),
        injection=a.injection,
        preset=a.preset,
        temporal_layers=a.temporal,
        prediction_type=a.prediction,
        size=a.size,
        num_frames=a.num_frames,
        batch_size=a.batch_size,
        vae_steps=a.vae_steps,
        vae_batch_frames=a.vae_batch_frames,
        unet_steps=a.unet_steps,
        seed=a.seed,
        log_every=a.log_every,
        vae_lr=a.vae_lr,
        kl_weight=a.kl_weight,
        lr=a.lr,
        map_dropout=a.map_dropout,
        reference_dropout=a.reference_dropout,
        checkpoint_minutes=a.checkpoint_minutes,
        resume=a.resume,
        vae_path=a.vae,
        vae_maps=tuple(a.vae_maps),
        init_from=a.init_from,
        decoder_steps=a.decoder_steps,
        retrain_vae=a.retrain_vae,
        vae_lr_decay=a.vae_lr_decay,
        colour_weight=a.colour_weight,
        lr_decay=a.lr_decay,
        ema_decay=a.ema_decay,
        device=a.device,
    )
    final = train(cfg)
    print(f"pipeline saved to {final}")
    if a.export:
        shutil.copytree(final, a.export, dirs_exist_ok=True)
        print(f"exported to {a.export}")


if __name__ == "__main__":
    main()
