"""``rendiff.render`` end to end through the Triton kernels against the torch references.

Each built-in scene below is simulated once, small, and rendered twice: with the torch references
(the CPU default) and with ``RENDIFF_TRITON=interpret``, where every kernel wrapper launches its
Triton kernel through Triton's interpreter on the CPU tensors, so the whole argument plumbing of
the render step (layouts, dtypes, contiguity, partial tiles, shadow-map passes, skeleton drawing,
shading) runs as on a GPU. Every layer is then compared, and a spy on the kernels' launchers checks
that the Triton path was really taken (and never in the reference run).

The interpreter costs about 2 ms per (16x16 tile, triangle) pair, so after simulation every mesh
is reduced to a few hundred faces over its own vertices (vertex clustering: a coarser surface
with the same vertices, part labels, motion and skeleton), and the Gaussian cloud has
``_GAUSSIANS`` splats. The whole file takes about 35 s on one thread.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch

import rendiff
from rendiff import Layer
from rendiff.kernels._dispatch import CPU_ENV, ENV

SIZE = (40, 28)  # width, height: neither a multiple of the 16-pixel tiles (partial tiles)
FRAMES = 2  # flow needs a neighbour: frame 0 has forward flow, frame 1 backward flow
_GAUSSIANS = 300
_KERNEL_MODULES = ("mesh_raster", "gaussian_raster", "shading", "skeleton", "dddm", "encodings")

# Tolerances, (rtol, atol) per layer.
# Mesh-only scenes: the triangle kernel is built to agree with the reference bit for bit (no FMA
# contraction, IEEE division, same tie rule), and every layer but the lit ones is computed from
# its fragments by the same torch code, so those layers must be identical. The shading kernel
# evaluates the same formulas fused per pixel, in a different float32 order (< 1e-6 seen).
_MESH_TOL = {Layer.RGB: (0.0, 1e-5), Layer.SHADING: (0.0, 1e-5)}
# Scenes with Gaussians: the composite kernel blends in blocks of 16 Gaussians and computes
# opacity * exp(-s) where the reference uses exp(log(opacity) - s), so composited layers differ
# by float32 rounding (~1e-7 relative seen); depth in metres (~3 m), flow in pixels divided by
# alpha (< 1e-4 px seen).
_GAUSS_TOL = {
    Layer.RGB: (0.0, 1e-5),
    Layer.SHADING: (0.0, 1e-5),
    Layer.ALBEDO: (0.0, 1e-5),
    Layer.NORMAL: (0.0, 1e-5),
    Layer.ALPHA: (0.0, 1e-5),
    Layer.DEPTH: (1e-5, 1e-5),
    Layer.FLOW: (1e-5, 1e-3),
    Layer.FLOW_BACKWARD: (1e-5, 1e-3),
}
# Pixels allowed past those tolerances in scenes with Gaussians, as a fraction of all pixels:
# - rgb / shading: the directional shadow map of a cloud is rendered through a pinhole placed
#   ~1000 cloud extents away (engine/shadows.py), so the rounding differences above become
#   ~1e-4..1e-3 m of shadow depth; a 3x3 PCF tap whose receiver lies that close to the occluder
#   depth can flip, changing the pixel by at most one tap of the light: 0.75 / 9 = 0.083.
# - instance / semantic: a Gaussian pixel's id is the splat with the largest blend weight and is
#   used where alpha > 0.5; near-equal weights or alpha ~ 0.5 are ties either way.
_TIE_FRACTION = 0.005
_TIE_JUMP = {Layer.RGB: 0.1, Layer.SHADING: 0.1}


@dataclasses.dataclass(frozen=True)
class _Case:
    name: str
    gaussians: bool  # has a Gaussian cloud: _GAUSS_TOL and tie pixels apply
    kernels: tuple[str, ...]  # Triton kernels the render must launch
    face_budget: int  # faces kept per mesh (the body needs more to stay closed at this size)


CASES = [
    _Case("falling_objects", False, ("_raster_tile_kernel", "_shade_kernel"), 300),
    _Case("walking_human", False, ("_raster_tile_kernel", "_shade_kernel", "_skeleton_kernel"),
          1200),
    _Case("dynamic_gaussians", True,
          ("_raster_tile_kernel", "_composite_kernel", "_shade_kernel"), 300),
]


def _cluster_faces(verts: torch.Tensor, faces: torch.Tensor, budget: int) -> torch.Tensor:
    """At most ``budget`` faces over the same vertices, by vertex clustering: the vertices
    [V, 3] are snapped to a grid (coarsened until the budget holds), each cell is represented by
    its lowest-index vertex, and faces that collapse or repeat are dropped. Winding is kept."""
    lo, extent = verts.amin(0), float((verts.amax(0) - verts.amin(0)).max())
    cells = 64.0
    while faces.shape[0] > budget and cells >= 2:
        n = int(cells)
        key = ((verts - lo) / extent * n).floor().long().clamp(0, n - 1)
        _, cell = torch.unique((key[:, 0] * n + key[:, 1]) * n + key[:, 2], return_inverse=True)
        rep = torch.full((int(cell.max()) + 1,), verts.shape[0]).scatter_reduce(
            0, cell, torch.arange(verts.shape[0]), reduce="amin")
        f = rep[cell][faces]
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
        _, group = torch.unique(f.sort(1).values, dim=0, return_inverse=True)
        first = torch.full((int(group.max()) + 1,), f.shape[0]).scatter_reduce(
            0, group, torch.arange(f.shape[0]), reduce="amin")
        faces, cells = f[first.sort().values], cells * 0.8
    return faces


def _small_trajectory(case: _Case) -> rendiff.Trajectory:
    """The built-in scene at SIZE x FRAMES (fewer splats for dynamic_gaussians), simulated, with
    every mesh reduced to at most ``case.face_budget`` faces."""
    scene = rendiff.builtin_scene(case.name).model_copy(update={"frames": FRAMES, "size": SIZE})
    for entity in scene.entities:
        if isinstance(entity.geometry, rendiff.Gaussians):
            entity.geometry.count = _GAUSSIANS
    traj = rendiff.simulate(scene, progress=False)
    traj.meshes = [
        dataclasses.replace(m, faces=_cluster_faces(m.vertices[0], m.faces, case.face_budget))
        for m in traj.meshes
    ]
    return traj


class _LaunchSpy:
    """Wraps a kernel module's ``get_kernel`` and counts launches per kernel name."""

    def __init__(self, get_kernel: Callable[[Any, Any], Any], counts: Counter) -> None:
        self._get_kernel, self._counts = get_kernel, counts

    def __call__(self, kernel: Any, device: Any) -> Any:
        launcher, name, counts = self._get_kernel(kernel, device), kernel.fn.__name__, self._counts

        class _Counted:
            def __getitem__(self, grid: Any) -> Callable[..., Any]:
                launch = launcher[grid]

                def counted(*args: Any, **kwargs: Any) -> Any:
                    counts[name] += 1
                    return launch(*args, **kwargs)

                return counted

        return _Counted()


def _spy_launches(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counts: Counter = Counter()
    for mod_name in _KERNEL_MODULES:
        module = importlib.import_module(f"rendiff.kernels.{mod_name}")
        monkeypatch.setattr(module, "get_kernel", _LaunchSpy(module.get_kernel, counts))
    return counts


def _pixel_diff(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Largest absolute difference per pixel [T, H, W] (channels folded)."""
    d = (actual.double() - expected.double()).abs()
    return d.amax(-1) if d.dim() == 4 else d


def _compare(layer: Layer, actual: torch.Tensor, expected: torch.Tensor, case: _Case) -> None:
    """Asserts one layer of the Triton render against the reference render (module tolerances)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, layer
    tol = _GAUSS_TOL if case.gaussians else _MESH_TOL
    rtol, atol = tol.get(layer, (0.0, 0.0))
    ties_allowed = case.gaussians and (layer in _TIE_JUMP or not expected.dtype.is_floating_point)
    if not ties_allowed:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol,
                                   msg=lambda m: f"{case.name} layer {layer}: {m}")
        return
    if expected.dtype.is_floating_point:
        off = _pixel_diff(actual, expected) > atol
        worst = float(_pixel_diff(actual, expected).max())
        assert worst <= _TIE_JUMP[layer], f"{case.name} layer {layer}: max |diff| {worst}"
    else:
        off = actual != expected
    n_pixels = off.numel()
    assert int(off.sum()) <= _TIE_FRACTION * n_pixels, (
        f"{case.name} layer {layer}: {int(off.sum())} of {n_pixels} pixels differ "
        f"(first at {off.nonzero()[:5].tolist()})")


def _check_scene_is_not_trivial(case: _Case, ref: rendiff.Layers,
                                traj: rendiff.Trajectory) -> None:
    """The comparison means something: objects, motion, shadows, skeletons and splats are in
    view in the reference render."""
    T, H, W = ref[Layer.DEPTH].shape
    assert int(ref[Layer.INSTANCE].unique().numel()) >= 3, "expected the ground and objects"
    assert float(ref[Layer.FLOW].abs().amax()) > 0.05 and float(
        ref[Layer.FLOW_BACKWARD].abs().amax()) > 0.05, "expected motion"
    unshadowed = rendiff.render(traj, [Layer.SHADING], shadows=False, progress=False)
    shadowed = (unshadowed[Layer.SHADING] - ref[Layer.SHADING]) > 0.1
    assert int(shadowed.sum()) >= 5, "expected shadows in view"
    if case.name == "walking_human":
        drawn = ref[Layer.POSE].abs().sum(-1) > 0
        assert all(int(drawn[k].sum()) > 20 for k in range(T)), "expected a skeleton per frame"
    if case.gaussians:
        cloud = {g.instance_id for g in traj.gaussians}
        solid = torch.isin(ref[Layer.INSTANCE], torch.tensor(sorted(cloud), dtype=torch.int32))
        assert int(solid.sum()) > 0.02 * T * H * W, "expected the cloud in view"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_render_through_triton_interpreter_matches_references(
    case: _Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every layer of a Triton-path render equals the reference render (module tolerances)."""
    traj = _small_trajectory(case)
    counts = _spy_launches(monkeypatch)

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv(CPU_ENV, "torch")  # the torch references, not the compiled CPU kernels
    ref = rendiff.render(traj, progress=False)
    assert not counts, f"reference render launched Triton kernels: {dict(counts)}"
    _check_scene_is_not_trivial(case, ref, traj)

    monkeypatch.setenv(ENV, "interpret")
    tri = rendiff.render(traj, progress=False)
    monkeypatch.delenv(ENV)

    # Which kernels ran: per frame the camera's triangles (and, in the Gaussian scene, splats),
    # the directional light's shadow map of the casters, and the shading; the skeletons of every
    # frame in one launch. The ground plane receives but casts nothing, so it is not drawn into
    # the shadow map: in the Gaussian scene, where it is the only mesh, the triangle kernel runs
    # for the camera alone.
    assert set(counts) == set(case.kernels), dict(counts)
    for name in case.kernels:
        least = {"_shade_kernel": FRAMES, "_skeleton_kernel": 1}.get(name, 2 * FRAMES)
        if name == "_raster_tile_kernel" and case.gaussians:
            least = FRAMES
        assert counts[name] >= least, (name, dict(counts))

    assert list(tri) == list(ref)
    failures = []
    for layer in ref:
        try:
            _compare(layer, tri[layer], ref[layer], case)
        except AssertionError as err:
            failures.append(str(err))
    assert not failures, "\n".join(failures)
