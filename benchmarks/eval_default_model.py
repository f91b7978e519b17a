"""Evaluates a video model against the engine's ground truth on held-out clips.

    python benchmarks/eval_default_model.py --data data/heldout [--model DIR] [--clips 12]
    python benchmarks/eval_default_model.py --data data/heldout --vae RUN/vae   # a VAE alone

For each held-out clip (rendered by tools/make_training_data.py from seeds never used in
training) the model generates the clip from its control maps and the clip's first RGB frame as
the appearance reference; frames after the first are scored. Rows compared in the same run:

- ``model, all maps``: the model as shipped;
- ``model + unchanged pixels kept``: the same frames with the pixels whose every map is unchanged
  since the reference frame taken from it (what ``rendiff.generate`` returns by default,
  :func:`rendiff.conditioners.pipeline.keep_static_pixels`);
- ``model, no maps``: the same weights with every map dropped (what the maps add);
- ``model, geometry maps only``: albedo and shading withheld, the geometry maps kept, so the
  appearance can only come from the reference frame (the setting of Champ and MIMO);
- ``repeat reference``: the reference frame repeated (the trivial alternative);
- ``VAE round trip``: the engine's frames encoded and decoded by the model's own VAE, no
  diffusion: the ceiling of any UNet on top of that VAE (what the VAE alone loses);
- for a model with a refiner (``MapRefiner``, the pixel-space correction after the decoder):
  ``model, all maps, no refiner`` (the decoder's frames: what the refiner adds) and
  ``VAE round trip + refiner`` (the round trip corrected from every map: the ceiling of the
  model's latent space read back with the maps).

Metrics (``rendiff.conditioners.metrics``): L1, PSNR and SSIM against the engine's own RGB render,
PSNR over only the pixels that changed since the reference frame (where copying the reference
cannot be right),
and the warping error of consecutive generated frames under the simulator's ground-truth flow
(``warping_error_target`` is the same measure on the engine's frames: the floor), and the colour
kept on the engine's coloured pixels (generated chroma over the engine's; the known failure of a
model that paints objects grey). Prints a table,
writes ``benchmarks/results/default_model_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rendiff import defaults
from rendiff.api import DEFAULT_MODEL_DIR, _load_pipeline
from rendiff.conditioners.metrics import score_clip
from rendiff.conditioners.models import vae_decode_video, vae_encode_video
from rendiff.conditioners.pipeline import keep_static_pixels, temporal_windows
from rendiff.conditioners.refiner import APPEARANCE_MAPS
from rendiff.conditioners.train import clips_by_family

RESULTS = Path(__file__).parent / "results"


def _load_clip(path: Path, maps) -> tuple[np.ndarray, ...]:
    """A held-out clip's engine RGB, flow, validity and albedo as float arrays (colours in [0, 1])
    and its control images for ``maps`` as tensors: what every scoring script reads."""
    with np.load(path) as d:
        target = d["rgb"].astype(np.float32) / 255
        flow = d["flow_raw"].astype(np.float32)
        valid = d["alpha"] > 127
        albedo = d["albedo"].astype(np.float32) / 255
        controls = {m: torch.from_numpy(d[m].astype(np.float32) / 255) for m in maps}
    return target, flow, valid, albedo, controls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of held-out .npz clips")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--guidance", type=float, default=None,
                    help="guidance on the reference image (default: the model's own)")
    ap.add_argument("--vae", type=Path, default=None,
                    help="score this VAE folder alone (the VAE round trip and repeat-reference "
                         "rows), e.g. a training run's RUN/vae while its UNet is not trained yet")
    ap.add_argument("--out", type=Path, default=RESULTS / "default_model_eval.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.vae is not None:
        from diffusers import AutoencoderKL

        pipe = None
        vae = AutoencoderKL.from_pretrained(args.vae, low_cpu_mem_usage=False).float().eval()
        maps: list[str] = []
        rows: dict[str, list[dict]] = {"repeat reference": [], "VAE round trip": []}
    else:
        pipe = _load_pipeline(args.model)
        vae = pipe.vae
        maps = list(pipe.map_names)
        rows = {"model, all maps": [], "model + unchanged pixels kept": [], "model, no maps": [],
                "model, geometry maps only": [], "repeat reference": [], "VAE round trip": []}
        if pipe.refiner is not None:
            rows["model, all maps, no refiner"] = []
            rows["VAE round trip + refiner"] = []
    seconds = []
    clips = clips_by_family(args.data, args.clips)
    for path in clips:
        target, flow, valid, albedo, controls = _load_clip(path, maps)
        ref = torch.from_numpy(target[0])
        if pipe is not None:
            t0 = time.perf_counter()
            out = pipe(controls, reference_image=ref, num_inference_steps=args.steps, seed=0,
                       output_type="np", progress=False, guidance_scale=args.guidance).frames
            seconds.append(time.perf_counter() - t0)
            rows["model, all maps"].append(score_clip(out, target, flow, valid, albedo))
            windows = temporal_windows(target.shape[0], defaults.WINDOW, defaults.OVERLAP)
            kept, _ = keep_static_pixels(torch.from_numpy(out), controls,
                                         torch.from_numpy(target[:1]).expand_as(
                                             torch.from_numpy(target)), windows[:1])
            rows["model + unchanged pixels kept"].append(
                score_clip(kept.numpy(), target, flow, valid, albedo))
            bare = pipe({}, reference_image=ref, num_inference_steps=args.steps, seed=0,
                        output_type="np", progress=False, num_frames=target.shape[0],
                        guidance_scale=args.guidance).frames
            rows["model, no maps"].append(score_clip(bare, target, flow, valid, albedo))
            geometry = {m: c for m, c in controls.items() if m not in APPEARANCE_MAPS}
            geo = pipe(geometry, reference_image=ref, num_inference_steps=args.steps, seed=0,
                       output_type="np", progress=False, num_frames=target.shape[0],
                       guidance_scale=args.guidance).frames
            rows["model, geometry maps only"].append(score_clip(geo, target, flow, valid, albedo))
            if pipe.refiner is not None:
                raw = pipe(controls, reference_image=ref, num_inference_steps=args.steps, seed=0,
                           output_type="np", progress=False, guidance_scale=args.guidance,
                           refine=False).frames
                rows["model, all maps, no refiner"].append(
                    score_clip(raw, target, flow, valid, albedo))
        rep = np.repeat(target[:1], target.shape[0], axis=0)
        rows["repeat reference"].append(score_clip(rep, target, flow, valid, albedo))
        with torch.no_grad():
            x = torch.from_numpy(target).permute(3, 0, 1, 2)[None] * 2 - 1
            x = x.to(vae.dtype)
            decoded = vae_decode_video(vae, vae_encode_video(vae, x))
            rt = decoded[0]
            if pipe is not None and pipe.refiner is not None:
                names = pipe.refiner.map_names
                video = {m: controls[m].permute(3, 0, 1, 2)[None] for m in names}
                ones = torch.ones(1, len(names), *decoded.shape[2:])
                refined = pipe.refiner.refine_video(decoded, video, ones)[0]
                refined = ((refined.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).numpy()
                rows["VAE round trip + refiner"].append(
                    score_clip(refined, target, flow, valid, albedo))
        rt = ((rt.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).numpy()
        rows["VAE round trip"].append(score_clip(rt, target, flow, valid, albedo))
        first = next(iter(rows))
        print(f"{path.name}: {first} psnr {rows[first][-1]['psnr']:.2f}", flush=True)
    summary = {name: {k: float(np.nanmean([r[k] for r in rs])) for k in rs[0]}
               for name, rs in rows.items()}
    print(f"\n| {'method':20s} | L1 | PSNR | PSNR where the scene moved | SSIM | "
          "warp error (floor) | colour kept |")
    print("|---|---|---|---|---|---|---|")
    for name, m in summary.items():
        print(f"| {name:20s} | {m['l1']:.4f} | {m['psnr']:.2f} | {m['psnr_changed']:.2f} | "
              f"{m['ssim']:.3f} | {m['warping_error']:.4f} ({m['warping_error_target']:.4f}) | "
              f"{m['colour_kept']:.2f} |")
    result = {
        "model": str(args.vae or args.model), "maps": maps, "steps": args.steps,
        "guidance": args.guidance if args.guidance is not None or pipe is None
        else float(getattr(pipe.config, "default_guidance_scale", 1.0)),
        "clips": [p.name for p in clips],
        "frames_per_clip": int(target.shape[0]), "size": list(target.shape[1:3]),
        "seconds_per_clip": float(np.mean(seconds)) if seconds else None, "summary": summary,
        "machine": {"platform": platform.platform(), "cpu_count": __import__("os").cpu_count(),
                    "torch": torch.__version__, "threads": args.threads},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
