"""Gaussian splat colour + depth at 256x256 for 100k Gaussians: rendiff's CPU reference vs gsplat.

rendiff: `rasterize_gaussians` on CPU tensors (torch reference; it also produces the normal, id
and alpha layers in the same pass). gsplat: its torch implementation (`gsplat.cuda._torch_impl`)
stage by stage, `_quat_scale_to_covar_preci` + `_fully_fused_projection`, then `_isect_tiles` +
`_isect_offset_encode`. gsplat's torch compositing (`_rasterize_to_pixels`) cannot run on CPU: it
calls `rasterize_to_indices_in_range` from gsplat's CUDA extension and needs nerfacc. Its place is
taken by a per-pixel loop written from gsplat's CUDA kernel (`RasterizeToPixels3DGSFwd.cu`): for
each tile, the tile's depth-sorted Gaussians one at a time, vectorised over the tile's pixels,
with colour and depth as channels (gsplat's "RGB+ED" mode). The gsplat column is run once (it
takes tens of seconds); rendiff's is the median of ``--repeats`` runs after a warm-up. The two
renders are compared as a check. Prints a table and writes
``benchmarks/results/gaussian_raster_cpu.json`` with the machine's description.

    python benchmarks/bench_gaussian_raster.py [--n 100000] [--size 256] [--repeats 3]

On a machine shared with other busy processes, libgomp's spinning worker threads make every
torch op wait for a descheduled partner (20x slower with 2 threads at load 7 on 2 cores); run
with ``OMP_WAIT_POLICY=PASSIVE`` or ``--threads 1`` there. The setting is recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import gsplat
import torch
from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
)

from rendiff.engine.camera import look_at
from rendiff.kernels.gaussian_raster import rasterize_gaussians

RESULTS = Path(__file__).resolve().parent / "results"


def _scene(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A 4 m cube of Gaussians, 1-8 px across at this distance, opacity 0.1-1."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        means=(torch.rand(n, 3, generator=g) - 0.5) * 4.0,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.exp(torch.rand(n, 3, generator=g) * 2.3 - 5.3),
        opacities=0.1 + 0.9 * torch.rand(n, generator=g),
        colors=torch.rand(n, 3, generator=g),
    )


def _gsplat_stages(scene, view, K, size) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """gsplat's torch projection and tile intersection, then the per-pixel compositing loop."""
    times = {}
    start = time.perf_counter()
    covars, _ = _quat_scale_to_covar_preci(scene["quats"], scene["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        scene["means"], covars, view[None], K[None], size, size, eps2d=0.3, far_plane=1e4
    )
    times["projection"] = time.perf_counter() - start

    start = time.perf_counter()
    tiles = math.ceil(size / 16)
    _, isect_ids, flatten_ids = _isect_tiles(means2d, radii, depths, 16, tiles, tiles)
    offsets = _isect_offset_encode(isect_ids, 1, tiles, tiles).flatten().tolist()
    offsets.append(len(flatten_ids))
    times["tile intersection"] = time.perf_counter() - start

    start = time.perf_counter()
    means2d, conics, depths = means2d[0], conics[0], depths[0]
    payload = torch.cat([scene["colors"], depths[:, None]], dim=1)
    opacities = scene["opacities"]
    acc = torch.zeros(size, size, 4)
    trans = torch.ones(size, size)
    lane = torch.arange(16) + 0.5
    for tile in range(tiles * tiles):
        ty, tx = divmod(tile, tiles)
        py, px = torch.meshgrid(ty * 16 + lane, tx * 16 + lane, indexing="ij")
        T = torch.ones(16, 16)
        done = torch.zeros(16, 16, dtype=torch.bool)
        out = torch.zeros(16, 16, 4)
        for g in flatten_ids[offsets[tile] : offsets[tile + 1]].tolist():
            a, b, c = conics[g]
            dx, dy = means2d[g, 0] - px, means2d[g, 1] - py
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), 0.999)
            use = (sigma >= 0) & (alpha >= 1.0 / 255.0) & ~done
            next_t = T * (1.0 - alpha)
            stop = use & (next_t <= 1e-4)
            done |= stop
            use &= ~stop
            out += torch.where(use, alpha * T, 0.0)[..., None] * payload[g]
            T = torch.where(use, next_t, T)
            if bool(done.all()):
                break
        acc[ty * 16 : ty * 16 + 16, tx * 16 : tx * 16 + 16] = out
        trans[ty * 16 : ty * 16 + 16, tx * 16 : tx * 16 + 16] = T
    alpha = 1.0 - trans
    depth = torch.where(alpha >= 1e-4, acc[..., 3] / alpha.clamp_min(1e-12), torch.inf)
    times["compositing (per-pixel loop)"] = time.perf_counter() - start
    return times, {"color": acc[..., :3], "depth": depth, "alpha": alpha}


def _machine() -> dict[str, object]:
    return machine_info(omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(unset)"),
                        gsplat=gsplat.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of Gaussians")
    parser.add_argument("--size", type=int, default=256, help="image width and height")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-gsplat", action="store_true", help="time rendiff only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size, scene = args.size, _scene(args.n)
    view = look_at((0.4, -6.0, 1.2), (0.0, 0.0, 0.0))
    K = torch.tensor([[1.0 * size, 0.0, size / 2], [0.0, 1.0 * size, size / 2], [0, 0, 1]])

    def ours():
        return rasterize_gaussians(
            scene["means"], scene["quats"], scene["scales"], scene["opacities"],
            scene["colors"], view, K, size, size,
        )  # fmt: skip

    render = ours()
    samples = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours()
        samples.append(time.perf_counter() - start)
    rows = [("rendiff torch reference (all layers)", statistics.median(samples))]
    check = {}
    if not args.skip_gsplat:
        stages, ref = _gsplat_stages(scene, view, K, size)
        rows += [(f"gsplat torch: {k}", v) for k, v in stages.items()]
        rows.append(("gsplat torch: total", sum(stages.values())))
        hit = torch.isfinite(ref["depth"])
        check = {
            "max_abs_diff_color": (render.color - ref["color"]).abs().max().item(),
            "max_abs_diff_alpha": (render.alpha - ref["alpha"]).abs().max().item(),
            "max_rel_diff_depth": (
                (render.depth[hit] - ref["depth"][hit]).abs() / ref["depth"][hit]
            )
            .max()
            .item(),
            "same_empty_pixels": bool(torch.equal(torch.isinf(render.depth), ~hit)),
        }

    print(
        f"Gaussian splats, colour + depth, {args.n} Gaussians, {size}x{size}, CPU "
        f"({torch.get_num_threads()} torch threads), coverage {render.alpha.mean():.3f}"
    )
    print(f"{'method':<48} {'seconds':>9} {'M Gaussians/s':>14}")
    for name, seconds in rows:
        print(f"{name:<48} {seconds:>9.3f} {args.n / seconds / 1e6:>14.3f}")
    for key, value in check.items():
        print(f"{key}: {value}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "gaussian splat colour + depth",
        "n": args.n,
        "size": [size, size],
        "repeats": args.repeats,
        "timing": "rendiff: median wall time after one warm-up call; gsplat: one call",
        "note": (
            "gsplat's torch _rasterize_to_pixels needs its CUDA extension and nerfacc, so its "
            "compositing is replaced by a per-pixel loop written from gsplat's CUDA kernel"
        ),
        "coverage": render.alpha.mean().item(),
        "results": [{"method": name, "seconds": seconds} for name, seconds in rows],
        "check_vs_gsplat": check,
        "machine": _machine(),
    }
    out = RESULTS / "gaussian_raster_cpu.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
