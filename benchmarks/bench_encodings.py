"""Map encodings (depth, normal, depth -> normals, flow): throughput of the shipped path.

On CPU the shipped path is the torch reference of each encoding (``rendiff.kernels.encodings``),
written to make few passes (in-place after the first temporary). It is compared with the naive
composition of torch ops that defines the same encoding (the first version of the module, one
temporary per op), and checked to give bit-identical output; depth -> normals (a checking tool)
kept its plain composition as its reference, so it has no alternative on CPU. Timing Triton's
interpreter would measure numpy, not the kernel, so it is not timed. On CUDA the Triton kernels
are compared with the torch references on the GPU, and checked to agree within float32 rounding.

Bandwidth is the minimum traffic of an encoding (its input read once, its output written once)
over the time; a plain tensor copy into a preallocated tensor (read + write, 32 bytes a pixel)
gives the machine's achievable figure for context.

Prints a table and writes ``benchmarks/results/encodings_<device>.json`` with the machine.

    python benchmarks/bench_encodings.py [--frames 8] [--size 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _machine import machine_info  # benchmarks/ is on sys.path when run as a script

from rendiff.kernels import encodings as enc

RESULTS = Path(__file__).resolve().parent / "results"


# --- the naive compositions (one temporary per op) ---------------------------------------------


def _naive_depth(depth: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(depth) & (depth > 0)
    inv = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    if not bool(valid.any()):
        return torch.zeros_like(depth, dtype=torch.float32)
    lo, hi = inv[valid].min(), inv[valid].max()
    span = (hi - lo).clamp_min(1e-8)
    out = 0.05 + 0.95 * (inv - lo) / span if float(hi - lo) > 1e-8 else torch.ones_like(inv)
    return torch.where(valid, out, torch.zeros_like(out)).float()


def _naive_normal(normal: torch.Tensor) -> torch.Tensor:
    empty = normal.abs().sum(-1, keepdim=True) == 0
    rgb = (0.5 - 0.5 * normal).clamp(0.0, 1.0)
    return torch.where(empty, torch.zeros_like(rgb), rgb).float()


def _naive_flow(flow: torch.Tensor) -> torch.Tensor:
    wheel = enc.colour_wheel().to(flow.device)
    ncols = wheel.shape[0]
    u, v = flow[..., 0].float(), flow[..., 1].float()
    mag = torch.sqrt(u * u + v * v)
    rad = mag / max(float(mag.max()), 1e-8)
    angle = torch.atan2(-v, -u) / math.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = fk.floor().long().clamp(0, ncols - 1)
    k1 = (k0 + 1) % ncols
    f = (fk - k0.float())[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]
    r = rad[..., None]
    col = torch.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return col.clamp(0.0, 1.0)


# --- inputs and timing -------------------------------------------------------------------------


def _inputs(T: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A clip of smooth depth with empty sky, unit normals, and a swirling flow field."""
    g = torch.Generator().manual_seed(0)
    v, u = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    t = torch.linspace(0, 1, T)[:, None, None]
    depth = 3.0 + 0.5 * torch.sin(3 * u + t) * torch.cos(2 * v) + 0.01 * torch.rand(
        T, size, size, generator=g)
    depth = torch.where(v[None] < -0.6, math.inf, depth)
    normal = torch.nn.functional.normalize(torch.randn(T, size, size, 3, generator=g), dim=-1)
    normal[:, : size // 5] = 0.0
    flow = torch.stack([-v * 10 + t, u * 10 - t], -1).expand(T, size, size, 2).contiguous()
    f = size / 2 / math.tan(math.radians(30))
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])
    return {k: x.to(device) for k, x in
            {"depth": depth, "normal": normal, "flow": flow, "K": K}.items()}


def _time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up call, in seconds (on a shared machine the
    minimum is the steadier figure; the median moves with the load)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = _inputs(args.frames, args.size, device)
    px = args.frames * args.size * args.size
    if device.type == "cuda":
        alt_name = "torch reference on the GPU"
        alternatives = {
            "depth": lambda: enc._depth_to_control_reference(x["depth"]),
            "normal": lambda: enc._normal_to_control_reference(x["normal"]),
            "depth_to_normals": lambda: enc._depth_to_normals_reference(x["depth"], x["K"]),
            "flow": lambda: enc._flow_to_color_reference(x["flow"]),
        }
        tolerance = {"depth": 1e-6, "normal": 0.0, "depth_to_normals": 1e-5, "flow": 1e-5}
    else:
        alt_name = "naive torch composition"
        alternatives = {
            "depth": lambda: _naive_depth(x["depth"]),
            "normal": lambda: _naive_normal(x["normal"]),
            "depth_to_normals": None,  # its reference is the plain composition already
            "flow": lambda: _naive_flow(x["flow"]),
        }
        tolerance = dict.fromkeys(alternatives, 0.0)
    ops = {
        "depth": (4 + 4, lambda: enc.depth_to_control(x["depth"])),
        "normal": (12 + 12, lambda: enc.normal_to_control(x["normal"])),
        "depth_to_normals": (4 + 12, lambda: enc.depth_to_normals(x["depth"], x["K"])),
        "flow": (8 + 12, lambda: enc.flow_to_color(x["flow"])),
    }
    shipped = "Triton kernel" if device.type == "cuda" else "torch reference (shipped)"
    copy_src = torch.rand(px * 8, device=device)  # 32 B per pixel, the largest encoding's
    copy_dst = torch.empty_like(copy_src)
    copy_s = _time(lambda: copy_dst.copy_(copy_src), device, args.repeats)
    copy_gbs = 2 * copy_src.numel() * 4 / copy_s / 1e9

    print(f"{args.frames} x {args.size} x {args.size} on {device.type}; "
          f"tensor copy {copy_gbs:.1f} GB/s")
    print(f"{'encoding':18s} {shipped:>26s} {alt_name:>26s} {'speed-up':>9s} {'GB/s':>7s} "
          f"{'of copy':>8s}")
    rows = []
    for name, (bytes_px, fn) in ops.items():
        alt = alternatives[name]
        got = fn()
        t_ship = _time(fn, device, args.repeats)
        gbs = bytes_px * px / t_ship / 1e9
        row = {"encoding": name, "seconds": t_ship, "bytes_per_pixel": bytes_px,
               "gb_per_s": gbs, "fraction_of_copy": gbs / copy_gbs}
        if alt is not None:
            want = alt()
            torch.testing.assert_close(got, want, atol=tolerance[name], rtol=0, equal_nan=True)
            t_alt = _time(alt, device, args.repeats)
            row |= {"alternative_seconds": t_alt, "speedup": t_alt / t_ship,
                    "max_abs_diff": float((got - want).abs().nan_to_num().max())}
            alt_txt = f"{t_alt * 1e3:23.2f} ms {t_alt / t_ship:8.2f}x"
        else:
            alt_txt = f"{'(same code)':>26s} {'-':>9s}"
        rows.append(row)
        print(f"{name:18s} {t_ship * 1e3:23.2f} ms {alt_txt} {gbs:7.2f} {gbs / copy_gbs:7.1%}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"encodings_{device.type}.json"
    out.write_text(json.dumps({
        "benchmark": "map encodings (depth, normal, depth -> normals, flow)",
        "shape": [args.frames, args.size, args.size], "repeats": args.repeats,
        "timing": "fastest of the repeats after one warm-up call",
        "shipped": shipped, "alternative": alt_name,
        "bandwidth": "minimum traffic: input read once + output written once",
        "copy_gb_per_s": copy_gbs, "results": rows,
        "machine": machine_info(device=torch.cuda.get_device_name() if device.type == "cuda"
                                else "cpu"),
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
