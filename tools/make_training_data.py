"""Renders randomised clips of the built-in scene kinds for training the default model.

    python tools/make_training_data.py -o data/train --clips 300 [--start 0] [--frames 16]

Each clip is ``<kind>_<seed>.npz`` with uint8 [T, H, W, 3] arrays: ``rgb`` (the engine's lit
render, the training target) and one control image per map in the frozen encodings
(``depth``, ``normal``, ``semantic``, ``instance``, ``shading``, ``pose``, ``albedo``, ``flow``),
plus float16 ``flow_raw`` [T, H, W, 2], uint8 ``alpha`` [T, H, W] and the clip's seed. Re-running
resumes: finished clips are kept; a clip is written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import rendiff
from rendiff.conditioners.controls import control_images
from rendiff.engine.layers import Layer
from rendiff.io.atomic import atomic_path
from rendiff.io.video import to_uint8
from rendiff.scenes.randomize import KINDS, random_scene

MAPS = ["depth", "normal", "semantic", "instance", "shading", "pose", "albedo", "flow"]


def render_clip(kind: str, seed: int, frames: int, size: tuple[int, int], fps: float) -> dict:
    scene = random_scene(kind, seed, frames=frames, fps=fps, size=size)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    ctrl = control_images(layers, MAPS)
    out = {k: to_uint8(v) for k, v in ctrl.items()}
    out["rgb"] = to_uint8(layers[Layer.RGB])
    out["flow_raw"] = layers[Layer.FLOW].numpy().astype(np.float16)
    out["alpha"] = to_uint8(layers[Layer.ALPHA])
    out["seed"] = np.int64(seed)
    out["kind"] = np.array(kind)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--stride", type=int, default=1, help="take every stride-th seed")
    ap.add_argument("--offset", type=int, default=0, help="seed offset within the stride")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process (run several processes for more cores)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.start + args.offset, args.start + args.clips, args.stride))
    failed = 0
    t0 = time.time()
    for seed in tqdm(seeds, desc="clips", unit="clip"):
        kind = KINDS[seed % len(KINDS)]
        path = args.out / f"{kind}_{seed:05d}.npz"
        if path.exists():
            continue
        try:
            data = render_clip(kind, seed, args.frames, (w, h), args.fps)
        except Exception as e:  # a bad random draw is logged with its seed, never silently lost
            failed += 1
            print(f"clip {kind} seed {seed} failed: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **data)
    done = len(seeds) - failed
    print(f"{done} clips in {args.out} ({failed} failed) in {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
