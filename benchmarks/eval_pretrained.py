"""Evaluates a pretrained setup (Cosmos-Transfer2.5, Wan VACE, AnimateDiff) against the engine.

    python benchmarks/eval_pretrained.py --model SETUP --device cuda
    python benchmarks/eval_pretrained.py --model SETUP --scenes falling_objects --frames 33 \\
        --size 1280x704 --steps 36 --save out/eval

For each scene (default ``falling_objects`` and ``walking_human``, at their own frame counts and
sizes unless given) the scene is simulated and rendered, the setup generates the video from the
maps, and both the generated clip and the trivial alternative -- the engine's first frame
repeated -- are scored against the engine's own frames with the default model's measures
(:func:`rendiff.conditioners.metrics.score_clip`: L1, PSNR, SSIM, PSNR where the scene moved,
warping error under the simulator's ground-truth flow next to the engine's own floor, colour
kept). Prints a table and writes ``benchmarks/results/pretrained_eval_<kind>.json`` with what made
each video (the setup file's hash, maps, weights, prompt, steps, seed) and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SCENES = ("falling_objects", "walking_human")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH, e.g. 1280x704") from None
    return w, h


def evaluate_scene(name: str, model: str, *, frames: int | None, size: tuple[int, int] | None,
                   steps: int | None, seed: int, device: str,
                   save: Path | None) -> dict[str, object]:
    """Simulates, renders and generates one built-in scene; returns its scored rows."""
    import rendiff
    from rendiff.conditioners.metrics import score_clip
    from rendiff.engine.layers import Layer

    update: dict[str, object] = {}
    if frames:
        update["frames"] = frames
    if size:
        update["size"] = size
    scene = rendiff.builtin_scene(name).model_copy(update=update)
    layers = rendiff.render(rendiff.simulate(scene, device=device, progress=False),
                            device=device, progress=False).to("cpu")
    record: dict = {}
    t0 = time.perf_counter()
    video = rendiff.generate(layers, model, options=scene.generation, seed=seed, steps=steps,
                             device=device, record=record, progress=True)
    seconds = time.perf_counter() - t0
    if save is not None:
        rendiff.save(save / name, layers, video, scene=scene)
    target = layers[Layer.RGB].clamp(0, 1).numpy()
    flow = layers[Layer.FLOW].numpy()
    valid = (layers[Layer.ALPHA] > 0.5).numpy()
    albedo = layers[Layer.ALBEDO].clamp(0, 1).numpy()
    frames_np = video.clamp(0, 1).numpy()
    repeat = np.repeat(target[:1], target.shape[0], axis=0)
    return {"scene": name, "frames": int(target.shape[0]), "size": [int(target.shape[2]),
                                                                     int(target.shape[1])],
            "seconds": seconds, "generation": record,
            "rows": {"generated": score_clip(frames_np, target, flow, valid, albedo),
                     "repeat first frame": score_clip(repeat, target, flow, valid, albedo)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="setup file or the folder holding it")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), help="built-in scenes")
    ap.add_argument("--frames", type=int, default=None, help="frames (default: the scene's)")
    ap.add_argument("--size", type=_size, default=None, help="WxH (default: the scene's)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: setup's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", type=Path, default=None, help="also write each run's outputs here")
    ap.add_argument("--out", type=Path, default=None, help="JSON (default under results/)")
    args = ap.parse_args(argv)

    from rendiff.api import check_model
    from rendiff.conditioners.pretrained import ModelError, find_spec, load_spec

    try:
        setup = find_spec(args.model)
        if setup is None:
            raise ModelError(f"{args.model}: no pretrained setup file (rendiff_pretrained.yaml)")
        kind = load_spec(setup).kind
        check_model(args.model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = [evaluate_scene(s, args.model, frames=args.frames, size=args.size,
                              steps=args.steps, seed=args.seed, device=args.device,
                              save=args.save) for s in args.scenes]
    print("\n| scene | method | L1 | PSNR | PSNR where the scene moved | SSIM | "
          "warp error (floor) | colour kept | s/clip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for name, m in r["rows"].items():
            sec = f"{r['seconds']:.1f}" if name == "generated" else ""
            print(f"| {r['scene']} | {name} | {m['l1']:.4f} | {m['psnr']:.2f} | "
                  f"{m['psnr_changed']:.2f} | {m['ssim']:.3f} | {m['warping_error']:.4f} "
                  f"({m['warping_error_target']:.4f}) | {m['colour_kept']:.2f} | {sec} |")
    out = args.out or RESULTS / f"pretrained_eval_{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"setup": str(setup.resolve()), "kind": kind, "device": args.device,
               "results": results,
               "machine": machine_info(cuda=torch.cuda.get_device_name(0)
                                       if torch.cuda.is_available() else None)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
