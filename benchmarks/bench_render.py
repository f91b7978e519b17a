"""All layers of the built-in scenes' frames: frames per second of rendiff.render on CPU.

    python benchmarks/bench_render.py [--frames 16] [--size 128]

Named alternatives in the same run: the torch references instead of the compiled CPU kernels
(``RENDIFF_CPU_KERNELS=torch``), each with and without shadow maps (what shadows cost), and the
compiled kernels with 2 torch threads instead of 1. The shadow share is 1 - (frames/s with
shadows) / (frames/s without), the two timed in turn. Prints a table, writes
benchmarks/results/render_cpu_SIZE.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _machine import machine_info, with_cpu_kernels  # noqa: E402  (benchmarks/ on sys.path)

import rendiff

RESULTS = Path(__file__).resolve().parent / "results"


def _fps(traj, shadows: bool, threads: int, repeats: int, cpu: str = "warp") -> float:
    torch.set_num_threads(threads)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with_cpu_kernels(cpu, lambda: rendiff.render(traj, shadows=shadows, progress=False))
        best = min(best, time.perf_counter() - t0)
    return traj.frames / best


def _fps_pair(traj, threads: int, repeats: int, cpu: str = "warp") -> tuple[float, float]:
    """Frames per second with and without shadows, the two timed in turn (best of
    ``repeats`` each), so that a slow spell of a shared machine falls on both."""
    on = off = 0.0
    for _ in range(repeats):
        on = max(on, _fps(traj, True, threads, 1, cpu))
        off = max(off, _fps(traj, False, threads, 1, cpu))
    return on, off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows = []
    print(f"{'scene':20s} {'1 thread':>9s} {'no shadows':>11s} {'share':>6s} {'2 threads':>10s} "
          f"{'torch refs':>11s} {'no shadows':>11s} {'share':>6s}  "
          f"(frames/s, {args.size}x{args.size})")
    for name in rendiff.list_builtin_scenes():
        scene = rendiff.builtin_scene(name).model_copy(
            update={"frames": args.frames, "size": (args.size, args.size)})
        traj = rendiff.simulate(scene, progress=False)
        on, off = _fps_pair(traj, 1, args.repeats)
        ref_on, ref_off = _fps_pair(traj, 1, args.repeats, "torch")
        row = {"scene": name, "frames": args.frames, "size": args.size,
               "fps_1_thread": on, "fps_1_thread_no_shadows": off,
               "fps_2_threads": _fps(traj, True, 2, args.repeats),
               "fps_torch_references": ref_on, "fps_torch_references_no_shadows": ref_off}
        row["shadow_share"] = 1 - row["fps_1_thread"] / row["fps_1_thread_no_shadows"]
        row["shadow_share_torch_references"] = (
            1 - row["fps_torch_references"] / row["fps_torch_references_no_shadows"])
        rows.append(row)
        print(f"{name:20s} {row['fps_1_thread']:9.1f} {row['fps_1_thread_no_shadows']:11.1f} "
              f"{row['shadow_share']:6.0%} {row['fps_2_threads']:10.1f} "
              f"{row['fps_torch_references']:11.1f} {row['fps_torch_references_no_shadows']:11.1f}"
              f" {row['shadow_share_torch_references']:6.0%}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"render_cpu_{args.size}.json"
    out.write_text(json.dumps({"benchmark": "rendiff.render, all layers", "results": rows,
                               "machine": machine_info()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
