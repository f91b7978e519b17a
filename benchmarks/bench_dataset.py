"""Data-set throughput: clips per hour at Kubric MOVi's setting (24 frames, 256x256, every
annotation), made in-process, with 2 local worker processes, and on a local 2-CPU Ray.

    python benchmarks/bench_dataset.py [--spec examples/falling_objects_dataset.yaml]
                                       [--clips 6] [--frames 24] [--size 256]

The three modes make the same clips (indices 0..N-1 of the same spec) into fresh folders; the
ratios against in-process are the figures to read (this machine is shared and noisy). Prints a
table, writes benchmarks/results/dataset.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

from rendiff.dataset.runner import RunOptions, make_dataset
from rendiff.dataset.spec import load_dataset_spec

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "examples/falling_objects_dataset.yaml")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--modes", default="inprocess,workers2,ray2")
    args = ap.parse_args()
    spec = load_dataset_spec(args.spec).model_copy(
        update={"frames": args.frames, "size": (args.size, args.size)})
    modes = {"inprocess": RunOptions(clips=args.clips, progress=False),
             "workers2": RunOptions(clips=args.clips, workers=2, progress=False),
             "ray2": RunOptions(clips=args.clips, workers=2, ray_address="local",
                                progress=False)}
    rows = []
    print(f"{args.spec.name}: {args.clips} clips of {args.frames} frames at "
          f"{args.size}x{args.size}, all annotations")
    print(f"{'mode':12s} {'seconds':>8s} {'clips/hour':>11s} {'s/clip':>7s} {'vs in-process':>14s}")
    base = None
    for name in args.modes.split(","):
        tmp = Path(tempfile.mkdtemp(prefix=f"rendiff-bench-{name}-"))
        try:
            t0 = time.perf_counter()
            report = make_dataset(spec, tmp / "out", modes[name])
            wall = time.perf_counter() - t0  # includes worker / Ray start-up and the index
            if report.failed:
                raise RuntimeError(f"{name}: {len(report.failed)} clips failed: "
                                   f"{report.failed[0]['error']}")
            size = sum(p.stat().st_size for p in (tmp / "out").rglob("*") if p.is_file())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        cph = 3600 * args.clips / wall
        base = base or cph
        row = {"mode": name, "clips": args.clips, "seconds": wall, "clips_per_hour": cph,
               "seconds_per_clip": wall / args.clips, "ratio_vs_inprocess": cph / base,
               "mb_per_clip": size / args.clips / 2**20}
        rows.append(row)
        print(f"{name:12s} {wall:8.1f} {cph:11.0f} {wall / args.clips:7.1f} "
              f"{cph / base:13.2f}x")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "dataset.json"
    out.write_text(json.dumps({
        "benchmark": "rendiff dataset clips per hour (all annotations)",
        "spec": args.spec.name, "frames": args.frames, "size": args.size,
        "kubric_setting": "MOVi: 24 frames at 256x256 per clip", "results": rows,
        "machine": machine_info()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
