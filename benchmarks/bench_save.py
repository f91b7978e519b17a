"""Saving a run's outputs against rendering them, and rendiff's layers.npz writer against numpy's.

    python benchmarks/bench_save.py [--sizes 256x256 512x512 1280x720] [--frames 16] [--reps 3]

For `falling_objects` at each size, in one process with 1 torch thread: the render (simulate
excluded) and `rendiff.save` of all its outputs (layers.npz, control-map and render videos,
contact sheet, metadata), alternately `--reps` times (medians); then the same layers.npz written
with `np.savez_compressed` (zlib level 6, the named alternative) and with
`rendiff.io.npz.write_npz` (ISA-L level 2). Prints a table, writes benchmarks/results/save.json
with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

import rendiff
from rendiff.io.npz import write_npz

RESULTS = Path(__file__).resolve().parent / "results"


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.split("x"))
    return w, h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=_size,
                    default=[(256, 256), (512, 512), (1280, 720)])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3,
                    help="render and save alternately this many times; medians reported")
    ap.add_argument("--out", type=Path, default=RESULTS / "save.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    print("| size | render s | save s (all outputs) | save / render | layers.npz (ISA-L) s, MB | "
          "np.savez_compressed s, MB |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        scene = rendiff.builtin_scene("falling_objects")
        scene.frames, scene.size = args.frames, size
        traj = rendiff.simulate(scene, progress=False)
        renders, saves = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.reps):
                t0 = time.perf_counter()
                layers = rendiff.render(traj, progress=False)
                renders.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                rendiff.save(Path(tmp) / "out", layers)
                saves.append(time.perf_counter() - t0)
            render_s, save_s = statistics.median(renders), statistics.median(saves)
            arrays = layers.to_numpy()
            t0 = time.perf_counter()
            write_npz(Path(tmp) / "l1.npz", arrays)
            l1_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            np.savez_compressed(Path(tmp) / "l6.npz", **arrays)
            l6_s = time.perf_counter() - t0
            l1_mb = (Path(tmp) / "l1.npz").stat().st_size / 2**20
            l6_mb = (Path(tmp) / "l6.npz").stat().st_size / 2**20
        rows.append({"size": list(size), "render_s": render_s, "save_s": save_s,
                     "render_runs_s": renders, "save_runs_s": saves,
                     "npz_isal_s": l1_s, "npz_isal_mb": l1_mb,
                     "savez_compressed_s": l6_s, "savez_compressed_mb": l6_mb,
                     "load_average": list(os.getloadavg())})
        print(f"| {size[0]}x{size[1]} | {render_s:.2f} | {save_s:.2f} | {save_s / render_s:.2f} | "
              f"{l1_s:.2f}, {l1_mb:.0f} | "
              f"{l6_s:.2f}, {l6_mb:.0f} |", flush=True)
    result = {"frames": args.frames, "rows": rows, "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
