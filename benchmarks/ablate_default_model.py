"""Ablations of the default model, scored against the engine's ground truth on held-out clips.

    python benchmarks/ablate_default_model.py --train data/train --heldout data/heldout

A small, CPU-sized protocol (see "Ablations" in docs/default-model.md): every trained run uses a
reduced UNet (widths 16, 32, 64; registered here as the in-process preset ``ablation``), the
shipped model's VAE, frozen and shared by every run (it was trained on the same 560 training
clips), the same seed, crop size, window and number of UNet steps, and one torch thread. Runs:

- (d) the shipped default model at several DDIM step counts (no training);
- (b) all six maps versus no maps (same UNet, same data, same steps) at two or three data sizes
  (the first N training clips in seed order, so the three scene kinds stay balanced);
- (c) pixel-space (guidance encoder) versus latent-space (concatenation) injection, all maps;
- (a) each map alone (and all together, shared with (b));
- the all-maps and no-maps runs at the largest size again with training seed 1 (how far runs
  move by chance), and, with ``--no-maps-check RUN...``, finished runs scored again with their
  maps dropped at inference (how much the trained model uses its maps).

Every run is scored on the same held-out clips (4 per scene kind, as
``benchmarks/eval_default_model.py`` picks them), reference = the clip's first engine frame,
seed 0, frames 1-15 scored: L1, PSNR, PSNR where the scene moved, SSIM, and the warping error
under the simulator's flow. Per-clip values are kept, so tables give the standard error over
clips and paired differences against each table's baseline.

Resumable: a finished run (``RUNS/<name>/result.json``) is skipped, an interrupted one resumes
from its checkpoint; ``benchmarks/results/ablation.json`` is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info  # noqa: E402
from eval_default_model import _load_clip  # noqa: E402

from rendiff.api import DEFAULT_MODEL_DIR, _load_pipeline  # noqa: E402
from rendiff.conditioners.metrics import score_clip  # noqa: E402
from rendiff.conditioners.pipeline import PRESETS  # noqa: E402
from rendiff.conditioners.train import (  # noqa: E402
    TrainConfig,
    clips_by_family,
    count_parameters,
    load_trained,
    train,
)
from rendiff.io.atomic import write_text  # noqa: E402

__all__ = ["ABLATION_PRESET", "RunSpec", "main", "plan_runs"]

RESULTS = Path(__file__).parent / "results"
ALL_MAPS = ("depth", "normal", "semantic", "albedo", "shading", "pose")
METRICS = ("l1", "psnr", "psnr_changed", "ssim", "warping_error")

ABLATION_PRESET = PRESETS["small"]
"""The "small" preset: the default VAE and a quarter-width UNet (0.76M parameters, not 3.03M)."""


class RunSpec(dict):
    """One training run: ``name``, ``maps``, ``injection``, ``clips`` and optionally ``seed``
    (the training seed, 0 unless given) and ``preset`` (``small`` unless given)."""


def plan_runs(sizes: list[int]) -> list[RunSpec]:
    """The runs in the order they are trained: (b) at the first two sizes, (c), (a), then (b)
    at the remaining sizes. ``sizes[-1]``... the largest size is the one (a) and (c) use."""
    big = max(sizes)
    first, rest = sizes[:2], sizes[2:]
    runs: list[RunSpec] = []
    for n in first:
        runs.append(RunSpec(name=f"all_pixel_n{n}", maps=ALL_MAPS, injection="pixel", clips=n))
        runs.append(RunSpec(name=f"none_n{n}", maps=(), injection="none", clips=n))
    runs.append(RunSpec(name=f"all_latent_n{big}", maps=ALL_MAPS, injection="latent", clips=big))
    for m in ALL_MAPS:
        runs.append(RunSpec(name=f"{m}_pixel_n{big}", maps=(m,), injection="pixel", clips=big))
    # the same run with another training seed: how far runs move by chance alone
    runs.append(RunSpec(name=f"all_pixel_n{big}_seed1", maps=ALL_MAPS, injection="pixel",
                        clips=big, seed=1))
    runs.append(RunSpec(name=f"none_n{big}_seed1", maps=(), injection="none", clips=big, seed=1))
    # no maps with the default-width UNet (4x the parameters): do maps stand in for parameters?
    for seed in (0, 1):
        runs.append(RunSpec(name=f"none_n{big}_wide" + ("_seed1" if seed else ""), maps=(),
                            injection="none", clips=big, seed=seed, preset="default"))
    for n in rest:
        runs.append(RunSpec(name=f"all_pixel_n{n}", maps=ALL_MAPS, injection="pixel", clips=n))
        runs.append(RunSpec(name=f"none_n{n}", maps=(), injection="none", clips=n))
    return runs


def _subset(train_dir: Path, n: int, root: Path) -> Path:
    """A folder of links to the first ``n`` training clips in seed order (kinds interleave)."""
    files = sorted(train_dir.glob("*.npz"), key=lambda p: (int(p.stem.rsplit("_", 1)[1]), p.name))
    if len(files) < n:
        raise ValueError(f"{train_dir} has {len(files)} clips, fewer than {n}")
    folder = root / f"data_n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files[:n]:
        link = folder / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    return folder


def _evaluate(pipe, clips: list[Path], steps: int, maps: tuple[str, ...]) -> dict:
    """Per-clip metrics of ``pipe`` given ``maps`` and the first frame as reference."""
    per_clip: list[dict[str, float]] = []
    seconds = []
    for path in clips:
        target, flow, valid, albedo, controls = _load_clip(path, maps)
        ref = torch.from_numpy(target[0])
        t0 = time.perf_counter()
        frames = pipe(controls, reference_image=ref, num_inference_steps=steps, seed=0,
                      output_type="np", progress=False, num_frames=target.shape[0]).frames
        seconds.append(time.perf_counter() - t0)
        per_clip.append(score_clip(frames, target, flow, valid, albedo))
    return {"per_clip": per_clip, "seconds_per_clip": float(np.mean(seconds)),
            "summary": _summary(per_clip)}


def _summary(per_clip: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for k in per_clip[0]:
        v = np.array([r[k] for r in per_clip], dtype=np.float64)
        out[k] = float(v.mean())
        out[k + "_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return out


def _paired(a: dict, b: dict, key: str = "psnr") -> tuple[float, float]:
    """Mean and standard error over clips of ``a[key] - b[key]``."""
    d = np.array([x[key] - y[key] for x, y in zip(a["per_clip"], b["per_clip"], strict=True)])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def _row(label: str, r: dict, base: dict | None = None) -> str:
    s = r["summary"]
    delta = ""
    if base is not None and base is not r:
        m, se = _paired(r, base)
        delta = f"{m:+.2f} ± {se:.2f}"
    elif base is r:
        delta = "(baseline)"
    return (f"| {label} | {s['l1']:.4f} | {s['psnr']:.2f} ± {s['psnr_se']:.2f} | "
            f"{s['psnr_changed']:.2f} | {s['ssim']:.3f} | {s['warping_error']:.4f} | {delta} |")


HEADER = ("| {first} | L1 | PSNR ± s.e. | PSNR where moved | SSIM | warping error | "
          "ΔPSNR vs baseline (paired ± s.e.) |\n|---|---|---|---|---|---|---|")


def tables(result: dict) -> str:
    """Markdown tables of what ``result`` holds so far (missing runs are listed, not invented)."""
    runs, out = result["runs"], []
    ref = result.get("references", {})
    if result.get("sampling_steps"):
        out.append("(d) shipped default model, DDIM steps (128x128, 16 frames)\n")
        out.append(HEADER.format(first="steps") .replace(
            "ΔPSNR vs baseline (paired ± s.e.) |\n|---|---|---|---|---|---|---|",
            "ΔPSNR vs 20 steps | s / clip |\n|---|---|---|---|---|---|---|---|"))
        d = result["sampling_steps"]
        base = d.get("20")
        for k in sorted(d, key=int):
            out.append(_row(k, d[k], base) + f" {d[k]['seconds_per_clip']:.1f} |")
        out.append("")
    if ref:
        out.append("references (no model)\n")
        out.append(HEADER.format(first="frames"))
        for k, r in ref.items():
            out.append(_row(k, r))
        out.append("")
    sizes = sorted({r["clips"] for r in runs.values()})
    if sizes:
        out.append("(b) all maps vs no maps (pixel injection), same UNet, data and steps\n")
        out.append(HEADER.format(first="training clips, maps"))
        for n in sizes:
            base = runs.get(f"none_n{n}")
            for name, label in ((f"all_pixel_n{n}", f"{n}, all six"),
                                (f"all_pixel_n{n}_seed1", f"{n}, all six, training seed 1"),
                                (f"none_n{n}", f"{n}, none"),
                                (f"none_n{n}_seed1", f"{n}, none, training seed 1"),
                                (f"none_n{n}_wide", f"{n}, none, default-width UNet"),
                                (f"none_n{n}_wide_seed1",
                                 f"{n}, none, default-width UNet, training seed 1")):
                if name in runs:
                    out.append(_row(label, runs[name], base))
        out.append("")
    big = max(sizes) if sizes else None
    if big and f"all_latent_n{big}" in runs:
        out.append(f"(c) injection, all six maps, {big} clips\n")
        out.append(HEADER.format(first="injection"))
        base = runs.get(f"all_pixel_n{big}")
        for name, label in ((f"all_pixel_n{big}", "pixel (guidance encoder)"),
                            (f"all_latent_n{big}", "latent (concatenation)"),
                            (f"none_n{big}", "none")):
            if name in runs:
                out.append(_row(label, runs[name], base))
        out.append("")
    singles = [m for m in ALL_MAPS if big and f"{m}_pixel_n{big}" in runs]
    if singles:
        out.append(f"(a) which maps help (pixel injection, {big} clips)\n")
        out.append(HEADER.format(first="maps"))
        base = runs.get(f"none_n{big}")
        if base:
            out.append(_row("none", base, base))
        for m in singles:
            out.append(_row(m, runs[f"{m}_pixel_n{big}"], base))
        if f"all_pixel_n{big}" in runs:
            out.append(_row("all six", runs[f"all_pixel_n{big}"], base))
        out.append("")
    checked = [n for n, r in runs.items() if "same_weights_no_maps" in r]
    if checked:
        out.append("maps dropped at inference (same weights)\n")
        out.append(HEADER.format(first="run"))
        for n in checked:
            r = runs[n]
            out.append(_row(f"{n}, with its maps", r, r["same_weights_no_maps"]))
            out.append(_row(f"{n}, maps dropped", r["same_weights_no_maps"],
                            r["same_weights_no_maps"]))
        out.append("")
    missing = result.get("missing", [])
    if missing:
        out.append("not run: " + ", ".join(missing))
    return "\n".join(out)


def _merge_steps(result: dict, steps_out: Path) -> None:
    if steps_out.exists():
        result["sampling_steps"] = json.loads(steps_out.read_text())["sampling_steps"]


def _save(result: dict, path: Path) -> None:
    result["machine"] = machine_info()
    write_text(path, json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the ablations, print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, default=Path("data/train"))
    ap.add_argument("--heldout", type=Path, default=Path("data/heldout"))
    ap.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--vae", type=Path, default=DEFAULT_MODEL_DIR / "vae",
                    help="trained VAE folder shared by every run")
    ap.add_argument("--clips", type=int, default=12, help="held-out clips scored")
    ap.add_argument("--sizes", type=int, nargs="+", default=[35, 560, 140],
                    help="data sizes for (b): the first two first; the largest for (a), (c)")
    ap.add_argument("--unet-steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=48, help="training crop, pixels")
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--eval-steps", type=int, default=10, help="DDIM steps for trained runs")
    ap.add_argument("--sampling-steps", type=int, nargs="*", default=[5, 10, 20, 40],
                    help="DDIM steps for (d), on the shipped model")
    ap.add_argument("--only", nargs="*", default=None, help="run names to do (default all)")
    ap.add_argument("--no-maps-check", nargs="*", default=[],
                    help="finished runs to score again with their maps dropped at inference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", default="0/1", metavar="K/N",
                    help="train only every N-th run starting at the K-th, so N processes can "
                         "share --runs (each writes the tables of all finished runs)")
    ap.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    ap.add_argument("--steps-out", type=Path, default=RESULTS / "ablation_steps.json",
                    help="(d)'s own JSON, so (d) can run in a second process beside the training")
    ap.add_argument("--skip-steps", action="store_true", help="leave (d) out of this process")
    ap.add_argument("--tables-only", action="store_true", help="print the tables of --out")
    args = ap.parse_args(argv)

    if args.tables_only:
        result = json.loads(args.out.read_text())
        _merge_steps(result, args.steps_out)
        print(tables(result))
        return 0
    torch.set_num_threads(args.threads)
    args.runs.mkdir(parents=True, exist_ok=True)
    clips = clips_by_family(args.heldout, args.clips)
    result: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["protocol"] = {
        "heldout_clips": [p.name for p in clips], "reference": "first engine frame",
        "scored_frames": "1-15 of 16, 128x128", "seed": 0,
        "eval_steps_trained_runs": args.eval_steps, "scheduler": "DDIM, trailing, v-prediction",
        "window": 16, "overlap": 4, "preset": ABLATION_PRESET, "vae": str(args.vae),
        "vae_frozen_shared": True, "unet_steps": args.unet_steps, "batch_size": 2,
        "crop": args.size, "num_frames": args.num_frames, "lr": 5e-4,
        "train_seed": "0 (one repeat with 1)",
        "map_dropout": 0.3, "reference_dropout": 0.1, "torch_threads": args.threads,
        "data_subsets": "first N training clips by seed (kinds interleave)",
    }
    result.setdefault("runs", {})
    result.setdefault("references", {})

    # references: the engine's own frames (the floor) and repeating the reference frame
    if "repeat reference" not in result["references"]:
        per = []
        for path in clips:
            target, flow, valid, albedo, _ = _load_clip(path, ())
            rep = np.repeat(target[:1], target.shape[0], axis=0)
            per.append(score_clip(rep, target, flow, valid, albedo))
        result["references"]["repeat reference"] = {"per_clip": per, "summary": _summary(per)}
        _save(result, args.out)

    # (d) sampling steps of the shipped model, in its own file
    wanted = args.only
    if not args.skip_steps and (wanted is None or "steps" in wanted):
        steps_result = (json.loads(args.steps_out.read_text()) if args.steps_out.exists()
                        else {"sampling_steps": {}})
        steps_result["protocol"] = {"model": str(DEFAULT_MODEL_DIR),
                                    "heldout_clips": [p.name for p in clips], "seed": 0}
        pipe = None
        for steps in args.sampling_steps:
            if str(steps) in steps_result["sampling_steps"]:
                continue
            pipe = pipe or _load_pipeline(DEFAULT_MODEL_DIR)
            r = _evaluate(pipe, clips, steps, tuple(pipe.map_names))
            steps_result["sampling_steps"][str(steps)] = r
            print(f"(d) {steps} steps: psnr {r['summary']['psnr']:.2f} "
                  f"({r['seconds_per_clip']:.1f} s/clip)", flush=True)
            _save(steps_result, args.steps_out)

    # (b), (c), (a): trained runs
    k, n = (int(x) for x in args.shard.split("/"))
    for i, spec in enumerate(plan_runs(args.sizes)):
        name = spec["name"]
        if (wanted is not None and name not in wanted) or i % n != k:
            continue
        folder = args.runs / name
        done = folder / "result.json"
        if not done.exists():
            _train_andscore_clip(spec, folder, clips, args)
        r = json.loads(done.read_text())
        if name in args.no_maps_check and spec["maps"] and "same_weights_no_maps" not in r:
            # what the maps change in this model: the same weights without them
            bare = _evaluate(load_trained(folder / "pipeline"), clips, args.eval_steps, ())
            r["same_weights_no_maps"] = bare
            write_text(done, json.dumps(r, indent=2) + "\n")
            print(f"   {name} without maps: psnr {bare['summary']['psnr']:.2f}", flush=True)
        _collect(result, args)
        _save(result, args.out)

    _collect(result, args)
    _merge_steps(result, args.steps_out)
    _save(result, args.out)
    print()
    print(tables(result))
    return 0


def _collect(result: dict, args) -> None:
    """Every finished run of the plan, read from its own ``result.json`` (so processes sharing
    ``--runs`` through ``--shard`` each write the whole table), and the runs still missing."""
    names = [spec["name"] for spec in plan_runs(args.sizes)]
    done = {n: args.runs / n / "result.json" for n in names}
    result["runs"] = {n: json.loads(done[n].read_text()) for n in names if done[n].exists()}
    result["missing"] = [n for n in names if n not in result["runs"]]


def _preset(name: str, vae: Path) -> str:
    """The run's preset sized for the shared VAE: its 16-channel variant for a 16-channel VAE
    (the shipped model's since session 7)."""
    channels = json.loads((Path(vae) / "config.json").read_text()).get("latent_channels", 4)
    return f"{name}16" if channels == 16 and f"{name}16" in PRESETS else name


def _train_andscore_clip(spec: RunSpec, folder: Path, clips: list[Path], args) -> None:
    """Train one run (resuming its checkpoint if any), score it, write its ``result.json``."""
    name = spec["name"]
    done = folder / "result.json"
    data = _subset(args.train, spec["clips"], args.runs)
    cfg = TrainConfig(
        data_dir=str(data), output_dir=str(folder), maps=tuple(spec["maps"]),
        injection=spec["injection"], preset=_preset(spec.get("preset", "small"), args.vae),
        size=args.size,
        num_frames=args.num_frames, batch_size=2, unet_steps=args.unet_steps, lr=5e-4,
        map_dropout=0.3, reference_dropout=0.1, seed=spec.get("seed", 0),
        checkpoint_minutes=2.0,
        log_every=50, resume=True, vae_path=str(args.vae),
    )
    resumed = (folder / "checkpoint.pt").exists()
    t0 = time.perf_counter()
    print(f"== {name}: maps {list(spec['maps'])}, {spec['injection']}, "
          f"{spec['clips']} clips", flush=True)
    final = train(cfg)
    train_s = time.perf_counter() - t0
    pipe = load_trained(final)
    r = _evaluate(pipe, clips, args.eval_steps, tuple(spec["maps"]))
    losses = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    unet_losses = [x["loss"] for x in losses if x.get("phase") == "unet"]
    r.update(
        name=name, maps=list(spec["maps"]), injection=spec["injection"],
        clips=spec["clips"], seed=spec.get("seed", 0), train_seconds=train_s, resumed=resumed,
        seconds_per_step=train_s / args.unet_steps if not resumed else None,
        final_losses=unet_losses[-4:],
        parameters={
            "unet": count_parameters(pipe.unet),
            "guidance_encoder": count_parameters(pipe.guidance_encoder),
            "latent_encoder": count_parameters(pipe.latent_encoder),
        },
    )
    write_text(done, json.dumps(r, indent=2) + "\n")
    print(f"   {name}: psnr {r['summary']['psnr']:.2f}, train {train_s:.0f} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
