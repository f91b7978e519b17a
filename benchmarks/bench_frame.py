"""Every layer of a built-in scene's frame against Open3D's depth + normal ray casting of the same
geometry, one CPU core.

    python benchmarks/bench_frame.py [--frames 4] [--scenes falling_objects robot_arm walking_human]

For each mesh scene and size (512x512, 1280x720), in one run:

- **rendiff, all layers**: ``rendiff.render`` with shadows (rgb, albedo, depth, normal, alpha,
  instance, semantic, shading, both flows, pose), seconds per frame;
- **rendiff, mesh depth + normal**: ``rasterize_triangles`` + ``mesh_normals_camera`` of the
  frame's meshes, concatenated as render does;
- **Open3D** ``RaycastingScene`` of the same triangles: build + one ray per pixel centre, depth
  and the hit triangle's normal in camera space (what a ray-casting renderer of moving meshes pays
  every frame).

The torch references (``RENDIFF_CPU_KERNELS=torch``) are timed beside the default compiled CPU
kernels for both rendiff columns.

The process is pinned to one core (``os.sched_setaffinity``, so Open3D's worker threads share it)
and torch runs one thread. Ratios are per frame, medians over the frames. Prints a table, writes
``benchmarks/results/frame_cpu.json`` with the machine and its load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from _machine import machine_info, with_cpu_kernels  # noqa: E402  (benchmarks/ on sys.path)

import rendiff
from rendiff.engine.meshes import vertex_normals
from rendiff.kernels.mesh_raster import mesh_normals_camera, rasterize_triangles

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = ((512, 512), (1280, 720))


def _frame_mesh(traj, k: int):
    verts, faces, offset = [], [], 0
    for m in traj.meshes:
        verts.append(m.vertices[k])
        faces.append(m.faces + offset)
        offset += m.vertices.shape[1]
    return torch.cat(verts), torch.cat(faces)


def _ours(verts, faces, view, K, w, h):
    frags = rasterize_triangles(verts, faces, view, K, w, h)
    return frags.depth, mesh_normals_camera(verts, faces, vertex_normals(verts, faces), view, frags)


def _open3d(verts, faces, view, K, w, h):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts.numpy().astype(np.float32)),
                        o3d.core.Tensor(faces.numpy().astype(np.uint32)))
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    d_cam = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K.numpy().astype(np.float64)).T
    R, t = view[:3, :3].numpy().astype(np.float64), view[:3, 3].numpy().astype(np.float64)
    rays = np.concatenate([np.broadcast_to(-R.T @ t, d_cam.shape), d_cam @ R], -1)
    hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
    depth = hit["t_hit"].numpy()  # rays have z = 1 in camera space: t is the depth
    n = hit["primitive_normals"].numpy() @ R.T
    n = np.where(((n * d_cam).sum(-1) > 0)[..., None], -n, n)
    n[~np.isfinite(depth)] = 0
    return depth, n


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--scenes", nargs="+", default=["falling_objects", "robot_arm",
                                                     "walking_human"])
    ap.add_argument("--cpu", type=int, default=0, help="the core to pin the process to")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    rows = []
    print(f"{'scene':16s} {'size':>9s} {'all layers':>11s} {'mesh d+n':>9s} {'open3d':>8s} "
          f"{'all/o3d':>8s} {'d+n/o3d':>8s} {'torch refs: all/o3d':>20s} {'d+n/o3d':>8s}"
          "  (ms per frame, median)")
    for name in args.scenes:
        for w, h in SIZES:
            scene = rendiff.builtin_scene(name).model_copy(
                update={"frames": args.frames, "size": (w, h)})
            traj = rendiff.simulate(scene, progress=False)
            render = partial(rendiff.render, traj, progress=False)
            t_all, t_all_ref = [], []
            for kind, out in (("warp", t_all), ("torch", t_all_ref)):
                with_cpu_kernels(kind, render)  # warm-up
                out.append(min(with_cpu_kernels(kind, partial(_seconds, render))
                               for _ in range(2)) / traj.frames)
            ours, ours_ref, o3d_t, hits = [], [], [], []
            for k in range(traj.frames):
                verts, faces = _frame_mesh(traj, k)
                view, K = traj.cameras.viewmats[k], traj.cameras.K[k]
                args_k = (verts, faces, view, K, w, h)
                ours.append(with_cpu_kernels("warp", partial(_seconds, partial(_ours, *args_k))))
                ours_ref.append(with_cpu_kernels("torch",
                                                  partial(_seconds, partial(_ours, *args_k))))
                o3d_t.append(_seconds(partial(_open3d, *args_k)))
                d_ours, _ = _ours(*args_k)
                d_o3d, _ = _open3d(*args_k)
                hits.append(float((torch.isfinite(d_ours).numpy() == np.isfinite(d_o3d)).mean()))
            row = {"scene": name, "size": [w, h], "frames": traj.frames,
                   "triangles": int(_frame_mesh(traj, 0)[1].shape[0]),
                   "all_layers_s": t_all[0], "mesh_depth_normal_s": statistics.median(ours),
                   "all_layers_torch_references_s": t_all_ref[0],
                   "mesh_depth_normal_torch_references_s": statistics.median(ours_ref),
                   "open3d_s": statistics.median(o3d_t), "hit_mask_agreement": min(hits)}
            o3d_s = row["open3d_s"]
            row["all_layers_over_open3d"] = row["all_layers_s"] / o3d_s
            row["depth_normal_over_open3d"] = row["mesh_depth_normal_s"] / o3d_s
            row["torch_references_all_layers_over_open3d"] = t_all_ref[0] / o3d_s
            row["torch_references_depth_normal_over_open3d"] = (
                row["mesh_depth_normal_torch_references_s"] / o3d_s)
            rows.append(row)
            print(f"{name:16s} {w:>4d}x{h:<4d} {t_all[0] * 1e3:11.0f} "
                  f"{row['mesh_depth_normal_s'] * 1e3:9.0f} {o3d_s * 1e3:8.0f} "
                  f"{row['all_layers_over_open3d']:7.1f}x {row['depth_normal_over_open3d']:7.2f}x "
                  f"{row['torch_references_all_layers_over_open3d']:19.1f}x "
                  f"{row['torch_references_depth_normal_over_open3d']:7.2f}x")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "frame_cpu.json"
    out.write_text(json.dumps({
        "benchmark": "all layers of a frame vs Open3D ray casting, one core",
        "timing": "all layers: the faster of two renders of the clip after a warm-up, per frame; "
                  "depth+normal "
                  "and Open3D: median over the frames; compiled CPU kernels unless the key names "
                  "the torch references", "results": rows,
        "machine": machine_info(open3d=o3d.__version__)}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
