"""DDDM evaluation speed: residuals of 1M Gaussians (L = 3, 10 channels) per frame.

Compares `rendiff.kernels.dddm.dddm_residual` (torch reference on CPU, the Triton kernel on CUDA
when a GPU is present) with a plain numpy evaluation of the same formula, for one frame per call
and for a batch of frames per call. Prints a table and writes
``benchmarks/results/dddm_<device>.json`` with the machine's description.

    python benchmarks/bench_dddm.py [--n 1000000] [--frames 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

from rendiff.kernels.dddm import dddm_residual

RESULTS = Path(__file__).resolve().parent / "results"


def numpy_residual(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, tau: np.ndarray, t: float, s: float, o: float
) -> np.ndarray:
    """One frame, [N, C], by broadcasting: the obvious numpy translation of the formula."""
    L = a.shape[1]
    tp = (s * t + o - tau)[:, None]  # [N, 1]
    ls = np.arange(L, dtype=np.float32)
    powers = tp**ls  # [N, L]
    angle = np.float32(2 * np.pi) * tp * ls
    out = (powers[..., None] * a).sum(1)
    out += (np.sin(angle)[..., None] * b).sum(1)
    out += (np.cos(angle)[..., None] * c).sum(1)
    return out / L


def _time(
    fn: Callable[[], object], repeats: int, sync: Callable[[], None]
) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads) of one call.

    CPU time is reported too because wall time on a shared machine mostly measures the others.
    """
    fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _machine(device: torch.device) -> dict[str, object]:
    info = machine_info(numpy=np.__version__)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="Gaussians")
    parser.add_argument("--L", type=int, default=3, help="terms per family")
    parser.add_argument("--frames", type=int, default=8, help="frames in the batched call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    g = torch.Generator().manual_seed(0)
    poly, sin, cos = (torch.randn(args.n, args.L, 10, generator=g) * 0.1 for _ in range(3))
    tau = torch.rand(args.n, generator=g) * 0.1
    s, o = 0.5, 0.0
    a_np, b_np, c_np, tau_np = (x.numpy() for x in (poly, sin, cos, tau))
    dev = [x.to(device) for x in (poly, sin, cos, tau)]
    one = torch.tensor([0.37], device=device)
    many = torch.linspace(0, 2, args.frames, device=device)
    backend = "triton" if device.type == "cuda" else "torch reference"

    ours = dddm_residual(*dev, one, s, o)[0].cpu().numpy()
    ref = numpy_residual(a_np, b_np, c_np, tau_np, 0.37, s, o)
    max_diff = float(np.abs(ours - ref).max())

    rows = [
        (f"rendiff ({backend}), 1 frame/call", 1,
         _time(lambda: dddm_residual(*dev, one, s, o), args.repeats, sync)),
        (f"rendiff ({backend}), {args.frames} frames/call", args.frames,
         _time(lambda: dddm_residual(*dev, many, s, o), args.repeats, sync)),
        ("numpy, 1 frame/call", 1,
         _time(lambda: numpy_residual(a_np, b_np, c_np, tau_np, 0.37, s, o), args.repeats,
               lambda: None)),
    ]
    print(f"DDDM residuals, N = {args.n:,}, L = {args.L}, 10 channels, device {device}")
    print(f"{'method':<44} {'ms/frame':>10} {'CPU ms/frame':>13} {'M Gaussians/s':>14}")
    results = []
    for name, frames, (seconds, cpu_seconds) in rows:
        per_frame = seconds / frames
        rate = args.n / per_frame / 1e6
        cpu_ms = cpu_seconds / frames * 1e3
        print(f"{name:<44} {per_frame * 1e3:>10.2f} {cpu_ms:>13.2f} {rate:>14.1f}")
        results.append(
            {"method": name, "frames_per_call": frames, "seconds_per_call": seconds,
             "ms_per_frame": per_frame * 1e3, "cpu_ms_per_frame": cpu_ms,
             "million_gaussians_per_s": rate}
        )
    print(f"max |rendiff - numpy| = {max_diff:.2e}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"dddm_{device.type}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "dddm_residual",
                "n": args.n,
                "L": args.L,
                "channels": 10,
                "repeats": args.repeats,
                "timing": "median wall time (and process CPU time) after one warm-up call",
                "max_abs_diff_vs_numpy": max_diff,
                "results": results,
                "machine": _machine(device),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
