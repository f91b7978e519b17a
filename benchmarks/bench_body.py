"""SMPL posing speed on CPU: ``BodyModel.pose`` for 1, 10 and 100 people against smplx's forward.

For P people and F frames, ``BodyModel.pose`` skins P * F bodies (in chunks of 256 by default)
and adds the Z-up turn and the COCO / OpenPose keypoints; the baseline calls the same
``smplx.SMPL`` module's ``forward`` once on the whole batch. The difference is rendiff's
overhead. Random poses and shapes; the shipped stand-in body (same size and arithmetic as
SMPL: 6890 vertices, 24 joints, 207 pose correctives). Prints a table and writes
``benchmarks/results/body_cpu.json`` with the machine's description.

    python benchmarks/bench_body.py [--frames 5] [--repeats 9] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

from rendiff.engine.body import BodyModel

RESULTS = Path(__file__).resolve().parent / "results"


def _time_pair(a: Callable[[], object], b: Callable[[], object], repeats: int
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median wall and process-CPU seconds of one call of ``a`` and of ``b``, timed in
    alternation after a warm-up of each, so that load from other processes on a shared machine
    falls on both alike. CPU time is reported because wall time there also measures the others."""
    samples: dict[int, tuple[list[float], list[float]]] = {0: ([], []), 1: ([], [])}
    with torch.no_grad():
        a(), b()
        for _ in range(repeats):
            for k, fn in ((0, a), (1, b)):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                samples[k][0].append(time.perf_counter() - start)
                samples[k][1].append(time.process_time() - start_cpu)
    med = {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in samples.items()}
    return med[0], med[1]


def _machine() -> dict[str, object]:
    return machine_info(numpy=np.__version__, smplx=importlib.metadata.version("smplx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5, help="frames per call")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 gives steadier numbers on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    body = BodyModel()
    g = torch.Generator().manual_seed(0)
    print(f"SMPL posing on CPU ({body.kind} body), {args.frames} frames per call, "
          f"{torch.get_num_threads()} torch threads")
    print("ms per frame (P people); 'cpu' = process CPU time over all threads")
    print(f"{'people':>7} {'rendiff':>12} {'smplx':>12} {'rendiff cpu':>12} {'smplx cpu':>12} "
          f"{'overhead':>10} {'ovh. cpu':>10} {'bodies/s':>9}")
    results = []
    for people in args.people:
        n = people * args.frames
        go = torch.randn(people, args.frames, 3, generator=g) * 0.3
        bp = torch.randn(people, args.frames, 69, generator=g) * 0.3
        betas = torch.randn(people, 1, 10, generator=g)
        tr = torch.randn(people, args.frames, 3, generator=g)
        flat = dict(global_orient=go.reshape(n, 3), body_pose=bp.reshape(n, 69),
                    betas=betas.expand(people, args.frames, 10).reshape(n, 10),
                    transl=tr.reshape(n, 3))
        ours, ref = _time_pair(lambda: body.pose(go, bp, betas, tr),  # noqa: B023
                               lambda: body.smpl(**flat), args.repeats)  # noqa: B023
        per_frame = ours[0] / args.frames
        ref_frame = ref[0] / args.frames
        overhead = ours[0] / ref[0] - 1.0
        overhead_cpu = ours[1] / ref[1] - 1.0
        print(f"{people:>7} {per_frame * 1e3:>12.2f} {ref_frame * 1e3:>12.2f} "
              f"{ours[1] / args.frames * 1e3:>12.2f} {ref[1] / args.frames * 1e3:>12.2f} "
              f"{overhead * 100:>9.1f}% {overhead_cpu * 100:>9.1f}% {n / ours[0]:>9.0f}")
        results.append({
            "people": people, "frames_per_call": args.frames, "bodies_per_call": n,
            "rendiff_ms_per_frame": per_frame * 1e3, "rendiff_cpu_ms_per_frame":
                ours[1] / args.frames * 1e3,
            "smplx_forward_ms_per_frame": ref_frame * 1e3, "smplx_forward_cpu_ms_per_frame":
                ref[1] / args.frames * 1e3,
            "overhead_fraction": overhead, "overhead_fraction_cpu": overhead_cpu,
            "bodies_per_second": n / ours[0],
        })
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "body_cpu.json"
    out.write_text(json.dumps({
        "benchmark": "BodyModel.pose vs smplx.SMPL.forward",
        "body": body.kind,
        "vertices": body.num_vertices,
        "repeats": args.repeats,
        "timing": "median wall and process CPU time per call, rendiff and smplx timed in "
                  "alternation after a warm-up, no_grad",
        "results": results,
        "machine": _machine(),
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
