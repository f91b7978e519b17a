"""Control maps to uint8 (what rendiff.save writes as videos): the compiled CPU kernels against
the torch encodings they replace, per map, on one rendered clip.

    python benchmarks/bench_control_maps.py [--size 1280x720] [--frames 16] [--repeats 3]

`falling_objects` rendered once; each control layer encoded by
`conditioners.controls.control_image_uint8` with `RENDIFF_CPU_KERNELS=warp` (one pass per map,
kernels/warp_cpu.py) and `=torch` (the torch encodings four frames at a time, then
`rendiff.io.video.to_uint8`: the named alternative), best of `--repeats`, 1 torch thread; the
outputs compared (bytes that differ, the largest difference in levels). Prints a table, writes
benchmarks/results/control_maps.json with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info, with_cpu_kernels  # noqa: E402  (benchmarks/ on sys.path)

import rendiff
from rendiff import Layer
from rendiff.conditioners.controls import control_image_uint8

RESULTS = Path(__file__).resolve().parent / "results"
MAPS = (Layer.DEPTH, Layer.NORMAL, Layer.SEMANTIC, Layer.INSTANCE, Layer.SHADING, Layer.ALBEDO,
        Layer.FLOW, Layer.FLOW_BACKWARD, Layer.ALPHA, Layer.RGB)


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.split("x"))
    return w, h


def _best(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=_size, default=(1280, 720))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "control_maps.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = args.frames, args.size
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    rows = []
    print("| map | compiled ms | torch ms | speed-up | bytes differing | largest difference |")
    print("|---|---|---|---|---|---|")
    for layer in MAPS:
        runs = {cpu: _best(partial(with_cpu_kernels, cpu,
                                   partial(control_image_uint8, layer, layers[layer])),
                           args.repeats)
                for cpu in ("warp", "torch")}
        (fast, ours), (slow, ref) = runs["warp"], runs["torch"]
        diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
        rows.append({"map": layer.value, "compiled_s": fast, "torch_s": slow,
                     "bytes_differing": int((diff > 0).sum()), "max_difference": int(diff.max()),
                     "bytes": int(diff.size)})
        print(f"| {layer.value} | {fast * 1e3:.0f} | {slow * 1e3:.0f} | {slow / fast:.1f}x | "
              f"{rows[-1]['bytes_differing']} of {diff.size:,} | {rows[-1]['max_difference']} |",
              flush=True)
    total_fast = sum(r["compiled_s"] for r in rows)
    total_slow = sum(r["torch_s"] for r in rows)
    print(f"| all | {total_fast * 1e3:.0f} | {total_slow * 1e3:.0f} | "
          f"{total_slow / total_fast:.1f}x | | |")
    result = {"size": list(args.size), "frames": args.frames, "rows": rows,
              "load_average": list(os.getloadavg()), "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
