"""Generation speed and memory of the shipped default model on CPU, and one training step.

Generates 16 frames at 128x128 with the shipped default model exactly as ``rendiff run`` does
(its six maps through the guidance encoder, albedo and shading as VAE latents, a reference image,
``rendiff.api.DEFAULT_STEPS`` DDIM steps, float32). For the cost of the temporal layers it also
times an untrained default-size pipeline (depth, normal and semantic maps) at the pipeline's own
default step count, against the same UNet without temporal layers and with temporal attention.
Also times one training step at the default training settings (batch 2, 8 frames, 64x64 crops).
Each case runs in its own process so its peak resident memory (``ru_maxrss``) is its own. Prints a
table and writes ``benchmarks/results/generate_cpu.json``.

    python benchmarks/bench_generate.py [--repeats 2] [--threads 1 2]

Wall time on a shared machine depends on the load (two busy threads on two shared cores can be
several times slower than one); the table gives each case at each thread count, the process CPU
time, the load average during the run, and the UNet's FLOPs per denoising step
(load-independent).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "shipped default model": dict(kind="shipped", temporal="conv"),
    "untrained, temporal conv (default)": dict(kind="generate", temporal="conv"),
    "untrained, per-frame UNet (no temporal layers)": dict(kind="generate", temporal="none"),
    "untrained, temporal attention (alternative)": dict(kind="generate", temporal="attention"),
    "train step (B=2, 8x64x64)": dict(kind="train", temporal="conv"),
}
FRAMES, SIZE, MAPS = 16, 128, ("depth", "normal", "semantic")


def _worker(spec: dict) -> dict:
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rendiff.conditioners.guidance import resolve_control_weights
    from rendiff.conditioners.pipeline import build_pipeline
    from rendiff.conditioners.train import count_parameters, diffusion_loss

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    if spec["kind"] == "shipped":
        from rendiff.api import DEFAULT_MODEL_DIR, DEFAULT_STEPS, _load_pipeline

        pipe, steps = _load_pipeline(DEFAULT_MODEL_DIR), DEFAULT_STEPS
        maps = pipe.map_names
    else:
        pipe = build_pipeline(
            maps=MAPS, injection="pixel", preset="default", temporal_layers=spec["temporal"]
        )
        steps = inspect.signature(pipe.__call__).parameters["num_inference_steps"].default
        maps = MAPS
    params = {k: count_parameters(getattr(pipe, k))
              for k in ("vae", "unet", "guidance_encoder", "latent_encoder")}
    result = {"params": params, "threads": spec["threads"], "maps": list(maps)}
    rng = np.random.default_rng(0)

    if spec["kind"] in ("generate", "shipped"):
        controls = {m: rng.random((FRAMES, SIZE, SIZE, 3)).astype(np.float32) for m in maps}
        ref = rng.random((SIZE, SIZE, 3)).astype(np.float32)
        lat = SIZE // 4
        x = torch.randn(1, pipe.unet.conv_in.in_channels, FRAMES, lat, lat)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            pipe.unet(x, 500)
        result["unet_gflops_per_step"] = fc.get_total_flops() / 1e9
        times, cpu = [], []
        for _ in range(spec["repeats"]):
            t0, c0 = time.perf_counter(), time.process_time()
            out = pipe(controls, ref, num_inference_steps=steps, progress=False)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert out.frames.shape == (FRAMES, SIZE, SIZE, 3)
        result.update(steps=steps, frames=FRAMES, size=SIZE, seconds=times, cpu_seconds=cpu)
    else:
        size, frames, batch = 64, 8, 2
        video = {k: torch.rand(batch, 3, frames, size, size) for k in ("rgb", *MAPS)}
        ref = torch.rand(batch, 3, size, size)
        w = resolve_control_weights(MAPS, MAPS, None, frames, size, size)[None].expand(
            batch, -1, -1, -1, -1
        )
        mods = [pipe.unet, pipe.guidance_encoder]
        opt = torch.optim.Adam([p for m in mods for p in m.parameters()], lr=1e-4)
        times, cpu = [], []
        for i in range(spec["repeats"] + 1):  # the first step warms up
            t0, c0 = time.perf_counter(), time.process_time()
            noise = torch.randn(batch, 4, frames, size // 4, size // 4)
            loss = diffusion_loss(pipe, video, ref, w, torch.tensor([100, 700]), noise).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        result.update(batch=batch, frames=frames, size=size, seconds=times, cpu_seconds=cpu)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_avg_1min"] = os.getloadavg()[0]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "generate_cpu.json"))
    a = p.parse_args()
    if a.worker:
        print(json.dumps(_worker(json.loads(a.worker))))
        return

    rows = {}
    for threads in a.threads:
        for name, case in CASES.items():
            spec = {**case, "repeats": a.repeats, "threads": threads}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=True,
            )
            key = f"{name}, {threads} thread{'s' if threads > 1 else ''}"
            rows[key] = r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{key:58s} best {min(r['seconds']):7.2f} s  cpu {min(r['cpu_seconds']):7.2f} s  "
                f"peak {r['peak_rss_mb']:6.0f} MB  load {r['load_avg_1min']:.1f}",
                flush=True,
            )

    print()
    print(
        f"{'case':58s} {'wall s (best)':>14s} {'cpu s':>8s} {'peak MB':>8s} {'UNet GF/step':>13s} "
        f"{'UNet params':>12s}"
    )
    for name, r in rows.items():
        gf = r.get("unet_gflops_per_step")
        print(
            f"{name:58s} {min(r['seconds']):14.2f} {min(r['cpu_seconds']):8.2f} "
            f"{r['peak_rss_mb']:8.0f} {gf if gf is None else round(gf, 1)!s:>13s} "
            f"{r['params']['unet'] / 1e6:11.2f}M"
        )
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "task": f"{FRAMES} frames at {SIZE}x{SIZE}, a reference image; the shipped model with its "
        f"own maps, the untrained cases with {list(MAPS)} (pixel injection)",
        "cases": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
