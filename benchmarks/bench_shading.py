"""Shading throughput: 512 x 512 pixels, 4 lights (directional, point, 2 spots), SH environment,
specular on, per-light shadow visibility.

Compares `rendiff.kernels.shading.shade` (the torch reference on CPU, the Triton kernel on CUDA
when there is a GPU) with the same math written as vectorised numpy, and checks they agree.
Prints a table and writes ``benchmarks/results/shading_<device>.json`` (with the machine's load
average, since CPU timings on a shared machine vary; the minimum is the steadier figure).

    python benchmarks/bench_shading.py [--size 512] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rendiff.kernels.shading import LightSet, shade


def _scene(size: int, gen: torch.Generator) -> tuple[dict, LightSet]:
    """A sphere-ish bumpy surface filling the view, 4 lights, random materials."""
    v, u = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    z = 3.0 + 0.3 * torch.sin(4 * u) * torch.cos(3 * v)
    points = torch.stack([u * z * 0.5, v * z * 0.5, z], -1)
    n = torch.nn.functional.normalize(torch.randn(size, size, 3, generator=gen), dim=-1)
    n = torch.where((n * points).sum(-1, keepdim=True) > 0, -n, n)
    inputs = {
        "points": points,
        "normal": n,
        "albedo": torch.rand(size, size, 3, generator=gen),
        "specular": torch.rand(size, size, generator=gen),
        "roughness": 0.1 + 0.9 * torch.rand(size, size, generator=gen),
        "visibility": torch.rand(4, size, size, generator=gen),
        "mask": torch.rand(size, size, generator=gen) > 0.1,
    }
    lights = LightSet(
        kind=torch.tensor([0, 1, 2, 2]),
        position=torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 1.0], [-1.0, 0.5, 0.5], [0, -2, 1.0]]),
        direction=torch.nn.functional.normalize(
            torch.tensor([[0.2, 0.5, 1.0], [0.0, 0.0, 1.0], [0.3, -0.1, 1.0], [0.0, 0.6, 1.0]]),
            dim=-1,
        ),
        radiance=torch.rand(4, 3, generator=gen) * 3,
        cos_outer=torch.tensor([-1.0, -1.0, 0.8, 0.7]),
        cos_inner=torch.tensor([-1.0, -1.0, 0.9, 0.85]),
        ambient=torch.tensor([0.05, 0.05, 0.08]),
        sh=0.2 * torch.randn(9, 3, generator=gen),
    )
    return inputs, lights


def _shade_numpy(inp: dict, lights: LightSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The formulas of `shade`, in vectorised float32 numpy (the comparison baseline)."""
    p, n, alb = inp["points"], inp["normal"], inp["albedo"]
    ks, rough, vis, mask = inp["specular"], inp["roughness"], inp["visibility"], inp["mask"]
    view = -p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-9)
    x, y, z = n[..., 0:1], n[..., 1:2], n[..., 2:3]
    L = lights.sh.numpy()
    c1, c2, c3, c4, c5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708
    env = (
        c4 * L[0] + 2 * c2 * (L[3] * x + L[1] * y + L[2] * z) + c3 * L[6] * z * z - c5 * L[6]
        + c1 * L[8] * (x * x - y * y) + 2 * c1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
    ) / np.pi  # fmt: skip
    irr = lights.ambient.numpy() + np.maximum(env, 0)
    spec = np.zeros_like(irr)
    expo = np.clip(2.0 / np.clip(rough, 0.02, 1.0) ** 4 - 2.0, 1.0, 4096.0)
    for i in range(len(lights)):
        kind = int(lights.kind[i])
        d = lights.direction[i].numpy()
        if kind == 0:
            ldir = np.broadcast_to(-d, p.shape)
            atten = np.ones(p.shape[:2], np.float32)
        else:
            to = lights.position[i].numpy() - p
            d2 = np.maximum((to * to).sum(-1), 1e-6)
            ldir = to / np.sqrt(d2)[..., None]
            atten = 1.0 / d2
            if kind == 2:
                lo, hi = float(lights.cos_outer[i]), float(lights.cos_inner[i])
                s = np.clip((-(ldir * d).sum(-1) - lo) / max(hi - lo, 1e-6), 0, 1)
                atten = atten * s * s * (3 - 2 * s)
        atten = atten * vis[i]
        ndl = np.maximum((n * ldir).sum(-1), 0)
        h = ldir + view
        h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-9)
        ndh = np.maximum((n * h).sum(-1), 0)
        E = lights.radiance[i].numpy()
        irr = irr + E * (atten * ndl)[..., None]
        spec = spec + E * (atten * ndl * ks * ndh**expo)[..., None]
    m = mask[..., None]
    irr = np.where(m, irr, 0).astype(np.float32)
    rgb = np.where(m, alb * irr + spec, 0).astype(np.float32)
    return irr.mean(-1), irr, rgb


def _time(fn, repeats: int, sync=lambda: None) -> list[float]:
    fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    inputs, lights = _scene(args.size, torch.Generator().manual_seed(0))
    kw = {k: inputs[k] for k in ("specular", "roughness", "visibility", "mask")}
    np_inputs = {k: v.numpy() for k, v in inputs.items()}

    rows = []
    ref = shade(inputs["points"], inputs["normal"], inputs["albedo"], lights, **kw)
    times = _time(lambda: shade(inputs["points"], inputs["normal"], inputs["albedo"], lights, **kw),
                  args.repeats)  # fmt: skip
    rows.append(("torch reference (cpu)", times, 0.0))

    _, _, rgb_np = _shade_numpy(np_inputs, lights)
    err = float(np.abs(rgb_np - ref.rgb.numpy()).max())
    rows.append(("numpy vectorised (cpu)", _time(lambda: _shade_numpy(np_inputs, lights),
                                                 args.repeats), err))  # fmt: skip

    device = "cpu"
    if torch.cuda.is_available():
        device = "cuda"
        cuda = {k: v.cuda() for k, v in inputs.items()}
        lc = LightSet(**{k: v.cuda() if torch.is_tensor(v) else v for k, v in vars(lights).items()})
        ckw = {k: cuda[k] for k in kw}

        def run():
            return shade(cuda["points"], cuda["normal"], cuda["albedo"], lc, **ckw)

        err = float((run().rgb.cpu() - ref.rgb).abs().max())
        rows.append(("triton (cuda)", _time(run, args.repeats, torch.cuda.synchronize), err))

    pixels = args.size * args.size
    print(f"shade: {args.size}x{args.size}, {len(lights)} lights + SH + ambient, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'implementation':<26}{'median ms':>12}{'min ms':>10}{'Mpix/s':>10}{'max |drgb|':>13}")
    results = []
    for name, times, err in rows:
        med = statistics.median(times)
        print(f"{name:<26}{med * 1e3:>12.2f}{min(times) * 1e3:>10.2f}"
              f"{pixels / med / 1e6:>10.2f}{err:>13.2e}")  # fmt: skip
        results.append({
            "implementation": name, "median_s": med, "min_s": min(times),
            "mpix_per_s": pixels / med / 1e6, "max_abs_rgb_diff_vs_reference": err,
        })  # fmt: skip

    out = args.out or Path(__file__).parent / "results" / f"shading_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "shade", "size": [args.size, args.size], "lights": len(lights),
        "repeats": args.repeats, "torch": torch.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
        "cuda": torch.cuda.is_available(), "results": results,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
