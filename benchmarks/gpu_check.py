"""One command for a GPU: every kernel on CUDA against its torch reference, a built-in scene
rendered on CUDA against the CPU render, gsplat's CUDA rasterizer against ours, the elementwise
kernels' bandwidth against the card's peak, and generation frames per second; one JSON out.

    python benchmarks/gpu_check.py                     # on a GPU machine (under 8 min on an H100)
    python benchmarks/gpu_check.py --dry-run           # anywhere: tiny sizes on the CPU

With ``--dry-run`` every check runs end to end on the CPU at small sizes, the kernels through
Triton's interpreter (``RENDIFF_TRITON=interpret``) so that their launch code runs, and the checks
that need CUDA libraries (gsplat) record why they were skipped; the test suite runs it, so the
script cannot rot between GPU sessions. Results: ``benchmarks/results/gpu_check.json`` (or
``gpu_check_dry.json``), a table on stdout.

Each check compares a device result with the CPU reference computed from the same inputs, and
writes its largest difference beside its tolerance; a failed check does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import machine_info  # noqa: E402

#: peak memory bandwidth by card name fragment, GB/s (vendor datasheets)
PEAK_GBPS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 NVL": 3900.0, "H100 PCIe": 2000.0,
             "H100": 3350.0, "A100-SXM4-80GB": 2039.0, "A100": 1555.0, "L40S": 864.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable, device: torch.device, repeat: int = 3,
           warm: bool = True) -> tuple[object, float]:
    if warm:
        fn()  # warm-up: compilation
        _sync(device)
    out = None
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return out, best


def _max_diff(a, b) -> float:
    a, b = torch.as_tensor(a).detach().cpu().double(), torch.as_tensor(b).detach().cpu().double()
    fin = torch.isfinite(a) & torch.isfinite(b)
    if not torch.equal(torch.isfinite(a), torch.isfinite(b)):
        return math.inf
    return float((a[fin] - b[fin]).abs().max()) if bool(fin.any()) else 0.0


def _reference(fn: Callable, *args, **kw):
    """``fn`` on CPU copies of its tensor arguments with the torch references (no Triton)."""
    cpu = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
    cpu_kw = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    saved = os.environ.get("RENDIFF_TRITON")
    os.environ["RENDIFF_TRITON"] = "off"
    try:
        return fn(*cpu, **cpu_kw)
    finally:
        if saved is None:
            os.environ.pop("RENDIFF_TRITON", None)
        else:
            os.environ["RENDIFF_TRITON"] = saved


def _camera(width: int, height: int, device: torch.device):
    from rendiff.engine.camera import intrinsics, look_at

    K = intrinsics(width, height, 50.0).to(device)
    view = look_at(torch.tensor([[0.0, -3.0, 1.5]]), torch.tensor([[0.0, 0.0, 0.5]]))[0]
    return view.to(device), K


def check_kernels(device: torch.device, small: bool) -> list[dict]:
    """Each kernel's public function on ``device`` against its torch reference on the CPU."""
    from rendiff.engine import meshes
    from rendiff.kernels import dddm, encodings, gaussian_raster, mesh_raster, shading, skeleton

    g = torch.Generator().manual_seed(0)
    W, H = (40, 28) if small else (1280, 720)
    T = 2 if small else 16
    view, K = _camera(W, H, device)
    rows = []

    def row(name: str, fn: Callable, tol: float, compare: Callable[[object, object], float],
            *args, **kw) -> None:
        try:
            got, seconds = _timed(lambda: fn(*args, **kw), device)
            ref = _reference(fn, *args, **kw)
            diff = compare(got, ref)
            rows.append({"check": f"kernel {name}", "max_diff": diff, "tolerance": tol,
                         "ok": diff <= tol, "seconds": seconds})
        except Exception as e:  # recorded, the other checks go on
            rows.append({"check": f"kernel {name}", "ok": False, "error": _error(e)})

    depth = (1 + 3 * torch.rand(T, H, W, generator=g)).to(device)
    normal = torch.nn.functional.normalize(torch.randn(T, H, W, 3, generator=g), dim=-1).to(device)
    flow = (10 * torch.randn(T, H, W, 2, generator=g)).to(device)
    Ks = K.expand(T, 3, 3).contiguous()
    row("encodings.depth_to_control", encodings.depth_to_control, 1e-6, _max_diff, depth)
    row("encodings.normal_to_control", encodings.normal_to_control, 1e-6, _max_diff, normal)
    row("encodings.depth_to_normals", encodings.depth_to_normals, 1e-4, _max_diff, depth, Ks)
    row("encodings.flow_to_color", encodings.flow_to_color, 1e-5, _max_diff, flow)

    sphere = meshes.sphere(0.5, subdivisions=2 if small else 5)
    verts = (sphere.verts + torch.tensor([0.0, 0.0, 0.5])).to(device)
    faces = sphere.faces.to(device)
    row("mesh_raster.rasterize_triangles", mesh_raster.rasterize_triangles, 0.0,
        lambda a, b: max(_max_diff(a.depth, b.depth), _max_diff(a.face_id, b.face_id)),
        verts, faces, view, K, W, H)
    row("mesh_raster.rasterize_depth", mesh_raster.rasterize_depth, 0.0, _max_diff,
        verts, faces, view, K, W, H)

    from rendiff.engine.gaussians import from_primitive

    cloud = from_primitive("sphere", 300 if small else 200_000, seed=0, radius=0.5)
    gauss = [x.to(device) for x in (cloud.means + torch.tensor([0.0, 0.0, 0.5]), cloud.quats,
                                     cloud.scales * 2, cloud.opacities, cloud.colors())]
    row("gaussian_raster.rasterize_gaussians", gaussian_raster.rasterize_gaussians, 1e-4,
        lambda a, b: max(_max_diff(a.color, b.color), _max_diff(a.alpha, b.alpha)),
        *gauss, view, K, W, H)

    pts = torch.stack(torch.meshgrid(torch.linspace(-1, 1, W), torch.linspace(-1, 1, H),
                                     indexing="xy"), -1)
    points = torch.cat([pts, 3 + 0 * pts[..., :1]], -1).to(device)
    lights = shading.LightSet(torch.tensor([0, 1]), torch.tensor([[0.0, 0, 0], [0.5, -1, 1]]),
                              torch.tensor([[0.3, -0.2, 1.0], [0.0, 0, 0]]),
                              torch.tensor([[1.0, 1, 1], [2.0, 2, 2]]), torch.tensor([-1.0, -1]),
                              torch.tensor([-1.0, -1]))
    lights = shading.LightSet(*(x.to(device) for x in (lights.kind, lights.position,
                                                       lights.direction, lights.radiance,
                                                       lights.cos_outer, lights.cos_inner)))
    lights.ambient = torch.full((3,), 0.1, device=device)
    row("shading.shade", shading.shade, 1e-5,
        lambda a, b: max(_max_diff(a.rgb, b.rgb), _max_diff(a.shading, b.shading)),
        points, normal[0], torch.rand(H, W, 3, generator=g).to(device), lights)

    kp = torch.cat([torch.rand(T, 1, 18, 2, generator=g) * torch.tensor([W, H]),
                    torch.ones(T, 1, 18, 1)], -1).to(device)
    row("skeleton.draw_openpose", skeleton.draw_openpose, 1e-6, _max_diff, kp, W, H)

    n = 200 if small else 500_000
    coeffs = [torch.randn(n, 4, 7, generator=g).to(device) for _ in range(3)]
    row("dddm.dddm_residual", dddm.dddm_residual, 1e-4, _max_diff, *coeffs,
        torch.rand(n, generator=g).to(device), torch.linspace(0, 1, T).to(device))
    return rows


def check_scene(device: torch.device, small: bool) -> list[dict]:
    """A built-in scene rendered on ``device`` against the same trajectory rendered on the CPU."""
    import rendiff
    from rendiff import Layer

    rows = []
    # dry run: the interpreter costs ~2 ms per (16x16 tile, triangle), so a tiny image and no
    # shadow maps (at least 256 x 256 texels each)
    size, shadows = ((24, 16), False) if small else ((512, 512), True)
    for name in ("falling_objects", "dynamic_gaussians"):
        try:
            scene = rendiff.builtin_scene(name).model_copy(update={
                "frames": 2 if small else 16, "size": size})
            traj = rendiff.simulate(scene, progress=False)
            (got, seconds) = _timed(lambda t=traj: rendiff.render(
                t, device=device, progress=False, shadows=shadows), device, 1, warm=not small)
            ref = _reference(rendiff.render, traj, progress=False, shadows=shadows)
            diffs = {}
            for layer in (Layer.RGB, Layer.DEPTH, Layer.NORMAL, Layer.ALPHA, Layer.FLOW):
                diffs[layer.value] = _max_diff(got[layer], ref[layer])
            ids = float((got[Layer.INSTANCE].cpu() != ref[Layer.INSTANCE]).float().mean())
            tol = 1e-3
            rows.append({"check": f"scene {name}", "seconds": seconds, "max_diff": diffs,
                         "instance_mismatch": ids, "tolerance": tol,
                         "ok": all(d <= tol for k, d in diffs.items() if k != "depth")
                         and ids <= 0.005})
        except Exception as e:
            rows.append({"check": f"scene {name}", "ok": False, "error": _error(e)})
    return rows


def check_gsplat(device: torch.device, small: bool) -> list[dict]:
    """gsplat's CUDA ``rasterization`` against ours, 1M Gaussians at 1920x1080."""
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return [{"check": "gsplat 1M Gaussians 1920x1080", "ok": None,
                 "skipped": "gsplat is not installed (pip install gsplat on the GPU machine)"}]
    if device.type != "cuda":
        return [{"check": "gsplat 1M Gaussians 1920x1080", "ok": None,
                 "skipped": "gsplat's rasterizer needs CUDA"}]
    from gsplat import rasterization

    from rendiff.engine.gaussians import from_primitive
    from rendiff.kernels.gaussian_raster import rasterize_gaussians

    W, H = 1920, 1080
    cloud = from_primitive("sphere", 1_000_000, seed=0, radius=0.5)
    means, quats, scales, opac, cols = (x.to(device) for x in (
        cloud.means + torch.tensor([0.0, 0.0, 0.5]), cloud.quats, cloud.scales * 2,
        cloud.opacities, cloud.colors()))
    view, K = _camera(W, H, device)
    ours, t_ours = _timed(lambda: rasterize_gaussians(means, quats, scales, opac, cols, view, K,
                                                      W, H), device)
    theirs, t_gs = _timed(lambda: rasterization(means, quats, scales, opac, cols, view[None],
                                                K[None], W, H, packed=False), device)
    diff = float((ours.color - theirs[0][0]).abs().mean())
    return [{"check": "gsplat 1M Gaussians 1920x1080", "seconds": t_ours, "gsplat_seconds": t_gs,
             "ratio_vs_gsplat": t_ours / t_gs, "mean_abs_colour_diff": diff,
             "ok": diff < 0.02}]


def check_bandwidth(device: torch.device, small: bool) -> list[dict]:
    """The elementwise encodings' effective bandwidth (bytes read + written / time) against the
    card's peak."""
    from rendiff.kernels import encodings

    T, H, W = (2, 28, 40) if small else (64, 1080, 1920)
    depth = torch.rand(T, H, W, device=device) + 1
    normal = torch.rand(T, H, W, 3, device=device)
    flow = torch.rand(T, H, W, 2, device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_GBPS.items() if k in name), None)
    rows = []
    for label, fn, arg, nbytes in (
        ("depth_to_control", encodings.depth_to_control, depth, depth.numel() * (4 + 4 * 3)),
        ("normal_to_control", encodings.normal_to_control, normal, normal.numel() * (4 + 4)),
        ("flow_to_color", encodings.flow_to_color, flow, flow.numel() * 4 + T * H * W * 12),
    ):
        _, seconds = _timed(lambda f=fn, a=arg: f(a), device)
        gbps = nbytes / seconds / 1e9
        rows.append({"check": f"bandwidth {label}", "GB_per_s": gbps, "peak_GB_per_s": peak,
                     "fraction_of_peak": gbps / peak if peak else None, "ok": True})
    return rows


def check_generation(device: torch.device, small: bool) -> list[dict]:
    """The shipped default model: frames generated per second (16 frames, 128x128, 10 steps)."""
    import rendiff

    scene = rendiff.builtin_scene("falling_objects").model_copy(update={
        "frames": 4 if small else 16, "size": (32, 32) if small else (128, 128)})
    layers = _reference(rendiff.render, rendiff.simulate(scene, progress=False),
                        progress=False).to(device)
    steps = 2 if small else 10
    video, seconds = _timed(lambda: rendiff.generate(layers, steps=steps, device=str(device),
                                                     progress=False), device, 1)
    ok = bool(torch.isfinite(video).all())
    return [{"check": "generation default model", "frames": layers.frames, "steps": steps,
             "seconds": seconds, "frames_per_second": layers.frames / seconds, "ok": ok}]


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}" + (
        " | " + traceback.format_exc(limit=-2).splitlines()[-3].strip())


CHECKS = (check_kernels, check_scene, check_gsplat, check_bandwidth, check_generation)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny sizes on the CPU, kernels through Triton's interpreter")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.dry_run:
        os.environ["RENDIFF_TRITON"] = "interpret"
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device here; use --dry-run to check the script on the CPU")
            return 2
        device = torch.device("cuda")
    out = args.out or ROOT / "benchmarks" / "results" / (
        "gpu_check_dry.json" if args.dry_run else "gpu_check.json")
    t0 = time.perf_counter()
    rows: list[dict] = []
    for check in CHECKS:
        t = time.perf_counter()
        try:
            rows += check(device, args.dry_run)
        except Exception as e:
            rows.append({"check": check.__name__, "ok": False, "error": _error(e)})
        print(f"{check.__name__}: {time.perf_counter() - t:.1f} s", flush=True)
    result = {"machine": machine_info(), "device": str(device), "dry_run": args.dry_run,
              "seconds": time.perf_counter() - t0, "checks": rows}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"\n{'check':<42} {'ok':<6} detail")
    for r in rows:
        detail = r.get("error") or r.get("skipped") or ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
            if k not in ("check", "ok") and not isinstance(v, dict))
        print(f"{r['check']:<42} {str(r['ok']):<6} {detail}")
    print(f"\n{len(rows)} checks in {result['seconds']:.1f} s -> {out}")
    failed = [r for r in rows if r["ok"] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
