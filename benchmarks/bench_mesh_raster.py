"""Mesh depth + normal images at 512x512 for ~100k triangles: rendiff's CPU rasterizer vs Open3D.

rendiff: `rasterize_triangles` then `mesh_normals_camera` (interpolated vertex normals), on CPU
through the compiled kernels and, in the same run, the torch references
(``RENDIFF_CPU_KERNELS=torch``). Open3D: `RaycastingScene` built from the triangles, one ray per
pixel centre, depth from `t_hit` and the hit triangle's normal (Open3D has no vertex-normal
interpolation), both turned into camera space; the scene build is part of its time, as a
renderer of moving meshes would rebuild it every frame. Two scenes: five overlapping icospheres
seen from outside (102,400 triangles), and a ground grid seen from 1.5 m above it (100,352
triangles, many of them clipped at the near plane). Prints a table and writes
``benchmarks/results/mesh_raster_cpu.json`` with the machine's description.

    python benchmarks/bench_mesh_raster.py [--size 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from _machine import machine_info, with_cpu_kernels  # noqa: E402  (benchmarks/ on sys.path)

from rendiff.engine.camera import look_at
from rendiff.engine.meshes import sphere
from rendiff.kernels.mesh_raster import mesh_normals_camera, rasterize_triangles

RESULTS = Path(__file__).resolve().parent / "results"


def _spheres() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    centres = [
        (-0.6, -0.3, 0.0),
        (0.6, -0.3, 0.0),
        (0.0, 0.4, 0.0),
        (-0.3, 0.0, 0.3),
        (0.3, 0.1, -0.3),
    ]
    parts = [sphere(0.5, 5).transformed(torch.eye(3), torch.tensor(c)) for c in centres]
    n = parts[0].verts.shape[0]
    verts = torch.cat([p.verts for p in parts])
    faces = torch.cat([p.faces + k * n for k, p in enumerate(parts)])
    normals = torch.cat([p.normals for p in parts])
    return verts, faces, normals, look_at((0.3, -3.0, 0.8), (0.0, 0.0, 0.0))


def _ground(n: int = 224, extent: float = 10.0):
    xs = torch.linspace(-extent, extent, n + 1)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    verts = torch.stack([gx.flatten(), gy.flatten(), torch.zeros((n + 1) ** 2)], 1)
    idx = torch.arange((n + 1) ** 2).view(n + 1, n + 1)
    a, b = idx[:-1, :-1].flatten(), idx[1:, :-1].flatten()
    c, d = idx[1:, 1:].flatten(), idx[:-1, 1:].flatten()
    faces = torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])
    normals = torch.tensor([[0.0, 0.0, 1.0]]).expand_as(verts).contiguous()
    return verts, faces, normals, look_at((0.05, 0.03, 1.5), (3.0, 0.0, 0.3))


def _ours(verts, faces, normals, view, K, size):
    frags = rasterize_triangles(verts, faces, view, K, size, size)
    return frags.depth, mesh_normals_camera(verts, faces, normals, view, frags), frags.face_id


def _open3d(verts_np, faces_np, view, K, size):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts_np), o3d.core.Tensor(faces_np))
    v, u = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    Kinv = np.linalg.inv(K.numpy().astype(np.float64))
    d_cam = np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T  # z = 1: t_hit is the depth
    R, t = view[:3, :3].numpy().astype(np.float64), view[:3, 3].numpy().astype(np.float64)
    rays = np.concatenate([np.broadcast_to(-R.T @ t, d_cam.shape), d_cam @ R], -1)
    hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
    depth = hit["t_hit"].numpy()
    n = hit["primitive_normals"].numpy() @ R.T
    n = np.where(((n * d_cam).sum(-1) > 0)[..., None], -n, n)
    n[~np.isfinite(depth)] = 0
    prim = hit["primitive_ids"].numpy().astype(np.int64)
    prim[~np.isfinite(depth)] = -1
    return depth, n, prim


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _machine() -> dict[str, object]:
    return machine_info(open3d=o3d.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image width and height")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size
    K = torch.tensor([[0.9 * size, 0.0, size / 2], [0.0, 0.9 * size, size / 2], [0, 0, 1]])

    print(f"mesh depth + normals, {size}x{size}, CPU ({torch.get_num_threads()} torch threads)")
    print(f"{'scene':<10} {'triangles':>10} {'method':<34} {'ms':>9} {'Mpix/s':>8}")
    results = []
    for name, build in (("spheres", _spheres), ("ground", _ground)):
        verts, faces, normals, view = build()
        verts_np = verts.numpy().astype(np.float32)
        faces_np = faces.numpy().astype(np.uint32)
        depth, normal, face_id = _ours(verts, faces, normals, view, K, size)
        depth_o3d, normal_o3d, prim_o3d = _open3d(verts_np, faces_np, view, K, size)
        hit, hit_o3d = torch.isfinite(depth).numpy(), np.isfinite(depth_o3d)
        same = hit & hit_o3d & (face_id.numpy() == prim_o3d)
        agreement = {
            "hit_mask_agreement": float((hit == hit_o3d).mean()),
            "face_id_agreement_on_hits": float(same.sum() / max((hit & hit_o3d).sum(), 1)),
            "max_abs_depth_diff_same_face": float(
                np.abs(depth.numpy()[same] - depth_o3d[same]).max()
            ),
            "coverage": float(hit.mean()),
        }
        ours = partial(_ours, verts, faces, normals, view, K, size)
        rows = [
            ("rendiff compiled CPU kernels", partial(with_cpu_kernels, "warp", ours)),
            ("rendiff torch reference", partial(with_cpu_kernels, "torch", ours)),
            (
                "open3d RaycastingScene build+cast",
                partial(_open3d, verts_np, faces_np, view, K, size),
            ),
        ]
        for method, fn in rows:
            seconds = _time(fn, args.repeats)
            rate = size * size / seconds / 1e6
            print(
                f"{name:<10} {faces.shape[0]:>10,} {method:<34} {seconds * 1e3:>9.1f} {rate:>8.2f}"
            )
            results.append(
                {"scene": name, "triangles": int(faces.shape[0]), "method": method,
                 "seconds": seconds, "megapixels_per_s": rate, **agreement}
            )  # fmt: skip
        print(
            f"{'':<10} agreement: hit mask {agreement['hit_mask_agreement']:.4f}, face id "
            f"{agreement['face_id_agreement_on_hits']:.4f}, max depth diff "
            f"{agreement['max_abs_depth_diff_same_face']:.1e} m"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "mesh_raster_cpu.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "mesh depth + normals",
                "size": [size, size],
                "repeats": args.repeats,
                "timing": "median wall time after one warm-up call",
                "results": results,
                "machine": _machine(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
