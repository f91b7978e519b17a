"""Train the default model's refiner (``MapRefiner``) on the model's own generated frames.

    # 1. generate each training clip with the model (no refiner), the frames kept as uint8
    python tools/train_refiner.py pairs --data data/train --model rendiff/data/models/default \
        --out runs/refine/pairs --clips 240
    # 2. train (resumable: run the same command again after a stop; checkpoints every few minutes)
    python tools/train_refiner.py train --data data/train --pairs runs/refine/pairs \
        --output runs/refine --steps 4000
    # 3. the refiner into a model folder (then evaluate it before shipping)
    python tools/export_default_model.py rendiff/data/models/default --to /tmp/cand \
        --refiner runs/refine/refiner

``pairs`` runs the pipeline exactly as ``rendiff.generate`` does (reference = the clip's first
engine frame, the model's default guidance, ``--steps`` sampling steps, ``keep_static`` off), once
with every map and, for every ``--geometry-every``-th clip, once more with albedo and shading
withheld (the evaluation's geometry-only setting). ``train`` draws frames 1.. of random clips and
learns ``refiner(generated, maps) -> engine frame`` with an L1 loss; each sample is given every map
(probability 0.75), the geometry maps only (0.15, on the clips generated that way too, with that
generation as the input; the others get every map) or no map (0.10), so the refiner also works,
and changes little, where maps are withheld.
``--changed-weight`` adds weight to the pixels that changed since the clip's first frame (the
evaluation's "where the scene moved", a few percent of the pixels); ``--lambertian`` also gives
the refiner albedo times shading, a diffuse surface's colour, which a small network otherwise has
to learn to multiply.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rendiff.api import _load_pipeline
from rendiff.conditioners.metrics import CHANGED
from rendiff.conditioners.refiner import APPEARANCE_MAPS, MapRefiner
from rendiff.conditioners.train import clips_by_family
from rendiff.io.atomic import atomic_path, build_folder


def make_pairs(args) -> int:
    pipe = _load_pipeline(args.model)
    maps = list(pipe.map_names)
    args.out.mkdir(parents=True, exist_ok=True)
    clips = clips_by_family(args.data, args.clips)
    t0 = time.perf_counter()
    done = 0
    for k, path in enumerate(clips):
        dest = args.out / path.name
        if dest.exists():
            continue
        with np.load(path) as d:
            target = d["rgb"].astype(np.float32) / 255
            controls = {m: torch.from_numpy(d[m].astype(np.float32) / 255) for m in maps}
        ref = torch.from_numpy(target[0])
        seed = int.from_bytes(path.name.encode()[-8:], "little") % 2**31
        out = {}
        out["generated"] = pipe(controls, reference_image=ref, num_inference_steps=args.steps,
                                seed=seed, progress=False, refine=False).frames
        if args.geometry_every and k % args.geometry_every == 0:
            geo = {m: c for m, c in controls.items() if m not in APPEARANCE_MAPS}
            out["generated_geometry"] = pipe(geo, reference_image=ref,
                                             num_inference_steps=args.steps, seed=seed,
                                             progress=False, refine=False).frames
        with atomic_path(dest) as tmp:
            np.savez(tmp, **{k: (v * 255).round().astype(np.uint8) for k, v in out.items()})
        done += 1
        rate = (time.perf_counter() - t0) / done
        print(f"{k + 1}/{len(clips)} {path.name} ({rate:.1f} s/clip)", flush=True)
    print(f"pairs in {args.out}: {len(list(args.out.glob('*.npz')))} clips")
    return 0


class _Pairs:
    """Training clips with their generated frames, held in memory as uint8."""

    def __init__(self, data: Path, pairs: Path, maps: list[str],
                 mix: tuple[float, float, float] = (0.75, 0.15, 0.10),
                 geometry_any: bool = False):
        self.maps, self.mix, self.geometry_any = maps, mix, geometry_any
        self.items = []
        for p in sorted(pairs.glob("*.npz")):
            src = data / p.name
            if not src.exists():
                continue
            with np.load(p) as g, np.load(src) as d:
                item = {"rgb": d["rgb"], "generated": g["generated"],
                        **{m: d[m] for m in maps}}
                if "generated_geometry" in g:
                    item["generated_geometry"] = g["generated_geometry"]
            self.items.append(item)
        if not self.items:
            raise SystemExit(f"error: no pairs in {pairs} match clips in {data}")

    def batch(self, rng: np.random.Generator, size: int) -> tuple:
        frames, targets, maps, weights = [], [], {m: [] for m in self.maps}, []
        changed = []
        for _ in range(size):
            item = self.items[rng.integers(len(self.items))]
            t = int(rng.integers(1, item["rgb"].shape[0]))
            u = rng.random()
            p_all, p_geo = self.mix[0], self.mix[0] + self.mix[1]
            mode = "all" if u < p_all else ("geometry" if u < p_geo else "none")
            src = "generated"
            if mode == "geometry":  # the frames the model makes without those maps, if made
                if "generated_geometry" in item:
                    src = "generated_geometry"
                elif not self.geometry_any:
                    mode = "all"
            frames.append(item[src][t])
            targets.append(item["rgb"][t])
            # the evaluation's "where the scene moved": more than 0.05 from the reference frame
            diff = np.abs(item["rgb"][t].astype(np.int16) - item["rgb"][0]).max(-1)
            changed.append(diff > CHANGED * 255)
            w = []
            for m in self.maps:
                given = mode == "all" or (mode == "geometry" and m not in APPEARANCE_MAPS)
                maps[m].append(item[m][t])
                w.append(1.0 if given else 0.0)
            weights.append(w)

        def tensor(xs):  # list of [H, W, 3] uint8 -> [N, 3, H, W] in [0, 1]
            return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255

        x = tensor(frames) * 2 - 1
        y = tensor(targets) * 2 - 1
        h, w = x.shape[-2:]
        wt = torch.tensor(weights)[:, :, None, None].expand(-1, -1, h, w)
        moved = torch.from_numpy(np.stack(changed))[:, None].float()
        return x, y, {m: tensor(v) for m, v in maps.items()}, wt, moved


def train(args) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    ckpt = args.output / "checkpoint.pt"
    maps = list(args.maps)
    required = tuple(args.requires if args.requires is not None
                     else (APPEARANCE_MAPS if args.lambertian else ()))
    refiner = MapRefiner(map_names=tuple(maps), block_out_channels=tuple(args.widths),
                         lambertian=args.lambertian, required_maps=required)
    opt = torch.optim.AdamW(refiner.parameters(), lr=args.lr, weight_decay=0.0)
    step, rng = 0, np.random.default_rng(args.seed)
    if args.init is not None and not ckpt.exists():
        start = MapRefiner.from_pretrained(args.init, low_cpu_mem_usage=False)
        def settings(m):
            return {k: list(v) if isinstance(v, tuple | list) else v
                    for k, v in m.config.items() if not k.startswith("_")}

        if settings(start) != settings(refiner):
            raise SystemExit(f"error: --init {args.init} has another configuration "
                             f"({settings(start)}; this run: {settings(refiner)})")
        refiner.load_state_dict(start.state_dict())
        print(f"starting from {args.init}", flush=True)
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        refiner.load_state_dict(state["refiner"])
        opt.load_state_dict(state["optimizer"])
        step, rng = state["step"], state["rng"]
        print(f"resumed at step {step}", flush=True)
    total = sum(args.mix)
    data = _Pairs(args.data, args.pairs, maps, tuple(m / total for m in args.mix),
                  args.geometry_any)
    n_params = sum(p.numel() for p in refiner.parameters())
    print(f"{len(data.items)} clips, maps {maps}, refiner {n_params / 1e3:.0f}k parameters",
          flush=True)
    log = (args.output / "log.jsonl").open("a")
    t0, last_ckpt, losses = time.perf_counter(), time.perf_counter(), []

    def checkpoint():
        with atomic_path(ckpt) as tmp:
            torch.save({"refiner": refiner.state_dict(), "optimizer": opt.state_dict(),
                        "step": step, "rng": rng}, tmp)
        build_folder(args.output / "refiner", refiner.save_pretrained, overwrite=True)

    while step < args.steps:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y, m, w, changed = data.batch(rng, args.batch_size)
        err = (refiner(x, m, w) - y).abs()
        loss = (err * (1 + args.changed_weight * changed)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps:
            rec = {"step": step, "loss": float(np.mean(losses)), "lr": lr,
                   "elapsed_s": round(time.perf_counter() - t0, 1)}
            losses = []
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(f"step={step} loss={rec['loss']:.5f} lr={lr:.2e} "
                  f"elapsed_s={rec['elapsed_s']}", flush=True)
        if time.perf_counter() - last_ckpt > 60 * args.checkpoint_minutes:
            checkpoint()
            last_ckpt = time.perf_counter()
    checkpoint()
    print(f"refiner written to {args.output / 'refiner'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="generate the training clips with the model")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clips", type=int, default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--geometry-every", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("train", help="train the refiner on the generated pairs")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--pairs", type=Path, required=True)
    t.add_argument("--output", type=Path, required=True)
    t.add_argument("--maps", nargs="+",
                   default=["depth", "normal", "semantic", "albedo", "shading", "pose"])
    t.add_argument("--widths", type=int, nargs=2, default=[32, 64])
    t.add_argument("--lambertian", action="store_true",
                   help="also give the refiner albedo times shading (needs both maps)")
    t.add_argument("--requires", nargs="*", default=None,
                   help="maps without which the refiner leaves the frame unchanged (its "
                        "correction scaled by their smallest weight; default: albedo and shading "
                        "with --lambertian, else none)")
    t.add_argument("--init", type=Path, default=None,
                   help="start from this refiner folder (same configuration)")
    t.add_argument("--mix", type=float, nargs=3, default=[0.75, 0.15, 0.10],
                   metavar=("ALL", "GEOMETRY", "NONE"),
                   help="how often a sample gets every map, the geometry maps only, no map")
    t.add_argument("--geometry-any", action="store_true",
                   help="geometry-only samples also on clips not generated that way (their "
                        "every-map generation as the input)")
    t.add_argument("--changed-weight", type=float, default=0.0,
                   help="extra L1 weight on pixels that changed since the clip's first frame")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-minutes", type=float, default=5)
    args = ap.parse_args(argv)
    if args.command == "pairs":
        torch.set_num_threads(args.threads)
        return make_pairs(args)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
