"""Triangle-mesh rasterization with a z-buffer (the project's stand-in for pytorch3d's rasterizer).

`rasterize_triangles` turns a world-space triangle mesh and a pinhole camera (OpenCV convention,
pixel (i, j) centred at (u, v) = (j + 0.5, i + 0.5)) into per-pixel fragments: camera depth, the
index of the nearest face, and perspective-correct barycentrics of the hit point with respect to
that face's original three vertices. `interpolate` and `mesh_normals_camera` turn fragments into
attribute and normal images.

Pipeline:
1. Setup (torch, any device): vertices go to camera space, optional back-face culling, clipping
   against the plane z = near in camera space (a triangle crossing it becomes one or two
   sub-triangles whose vertices carry their weights over the original vertices), projection.
2. Coverage + depth test per pixel: `_rasterize_reference` (torch: candidate pixels from each
   triangle's span on each pixel row, nearest kept with `scatter_reduce(amin)` on packed
   (depth, triangle) keys) or `_rasterize_triton` (one program per 16x16 tile walking the
   triangles binned to it). Both test pixel centres with the same edge functions (inclusive on
   edges, either winding) and keep the smallest depth, exact ties going to the lower face index.
   The kernel runs without FMA contraction and with IEEE division, so the two agree bit for bit
   (checked through the interpreter).
3. Resolve (torch): recompute the winning sub-triangle's barycentrics at each covered pixel and map
   them back to the original face.

Dispatch (``rendiff.kernels._dispatch``, which documents the interpreter's limitation once):
Triton on CUDA tensors; on CPU the compiled Warp kernels of ``rendiff.kernels.warp_cpu`` (steps 2
and 3 and `interpolate`; the z-buffer bit for bit the torch reference's), or the torch reference
with the environment variable `RENDIFF_CPU_KERNELS=torch`; and Triton through its interpreter on
CPU when `RENDIFF_TRITON=interpret` is set (both read at each call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton
from ._dispatch import use_warp_cpu as _use_warp_cpu

__all__ = [
    "MeshFragments",
    "interpolate",
    "mesh_normals_camera",
    "orient_normals",
    "oriented_normals",
    "pixel_face_normals",
    "rasterize_depth",
    "rasterize_triangles",
]

_TILE = 16
_MAX_PAIRS = 1 << 20  # (triangle, pixel) candidates per chunk in the reference: ~60 MB
_MAX_ROWS = 1 << 18  # (triangle, pixel row) spans per chunk in the reference
_EMPTY_KEY = torch.iinfo(torch.int64).max


@dataclass
class MeshFragments:
    """What each pixel sees of a mesh.

    Attributes:
        depth: Tensor    # [H, W] float32 camera-space z of the nearest hit, +inf where empty
        face_id: Tensor  # [H, W] int64 index into `faces` of that hit, -1 where empty
        bary: Tensor     # [H, W, 3] float32 perspective-correct barycentrics of the hit point
                         # with respect to the face's three vertices (sum to 1), 0 where empty
    """

    depth: Tensor
    face_id: Tensor
    bary: Tensor


@dataclass
class _Setup:
    """Clipped, projected triangles ready for coverage tests (T sub-triangles).

    screen:  [T, 9] float32 (u0, v0, u1, v1, u2, v2, 1/z0, 1/z1, 1/z2) in pixels and 1/metres
    face:    [T] int64 original face index of each sub-triangle, ascending
    weights: [T, 3, 3] float32 row k = sub-vertex k as weights over the original face's vertices
    clipped: whether any face was cut by the near plane (else every ``weights`` is the identity)
    """

    screen: Tensor
    face: Tensor
    weights: Tensor
    clipped: bool = True


def _clip_near(tri: Tensor, face: Tensor, near: float) -> tuple[Tensor, Tensor, Tensor]:
    """Clip camera-space triangles [F, 3, 3] against z = near, keeping the part in front.

    A triangle with one vertex in front becomes one triangle, with two in front a quad split in
    two, with none it is dropped. Returns the sub-triangles [T, 3, 3], each corner's weights over
    the original face's vertices [T, 3, 3], and the face index [T], sorted by face.
    """
    eye = torch.eye(3, device=tri.device, dtype=tri.dtype)
    front = tri[..., 2] >= near  # [F, 3]
    n_front = front.sum(1)
    whole = n_front == 3
    out_v, out_w, out_f = [tri[whole]], [eye.expand(int(whole.sum()), 3, 3)], [face[whole]]

    cut = (n_front == 1) | (n_front == 2)
    v, f, one = tri[cut], face[cut], n_front[cut] == 1
    # Roll each cut triangle to (o, a, b), o the vertex alone on its side of the plane; a roll
    # keeps the winding.
    odd = (front[cut] == one[:, None]).to(torch.int64).argmax(1)
    roll = (odd[:, None] + torch.arange(3, device=tri.device)) % 3  # [P, 3]
    v = v.gather(1, roll[..., None].expand(-1, -1, 3))
    w = eye[roll]  # [P, 3, 3] one-hot weights of the rolled corners

    def on_plane(j: int) -> tuple[Tensor, Tensor]:
        """Where edge o -> j meets z = near: the point and its weights."""
        s = ((near - v[:, 0, 2]) / (v[:, j, 2] - v[:, 0, 2]))[:, None]
        point = v[:, 0] + s * (v[:, j] - v[:, 0])
        point[:, 2] = near
        return point, w[:, 0] + s * (w[:, j] - w[:, 0])

    (va, wa), (vb, wb) = on_plane(1), on_plane(2)
    # o in front: (o, oa, ob). o behind: the quad (a, b, ob, oa) as two triangles.
    pieces = [
        (one, [v[:, 0], va, vb], [w[:, 0], wa, wb]),
        (~one, [v[:, 1], v[:, 2], vb], [w[:, 1], w[:, 2], wb]),
        (~one, [v[:, 1], vb, va], [w[:, 1], wb, wa]),
    ]
    for mask, corners, weights in pieces:
        out_v.append(torch.stack(corners, 1)[mask])
        out_w.append(torch.stack(weights, 1)[mask])
        out_f.append(f[mask])
    face = torch.cat(out_f)
    order = torch.argsort(face, stable=True)
    return torch.cat(out_v)[order], torch.cat(out_w)[order], face[order]


def _setup(
    verts: Tensor, faces: Tensor, viewmat: Tensor, K: Tensor, near: float, cull_backfaces: bool
) -> _Setup:
    """Camera transform, back-face culling, near-plane clipping and projection."""
    cam = verts @ viewmat[:3, :3].T + viewmat[:3, 3]
    tri = cam[faces]  # [F, 3, 3]
    face = torch.arange(faces.shape[0], device=verts.device)
    if cull_backfaces:
        normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        front = (normal * tri[:, 0]).sum(-1) < 0  # normal points back towards the camera centre
        tri, face = tri[front], face[front]
    clipped = bool((tri[..., 2] < near).any())
    if clipped:
        tri, weights, face = _clip_near(tri, face, near)
    else:  # what _clip_near returns when nothing is cut: every face whole, in order
        weights = torch.eye(3, device=tri.device, dtype=tri.dtype).expand(tri.shape[0], 3, 3)
    inv_z = 1.0 / tri[..., 2]  # [T, 3]
    uv = (tri * inv_z[..., None]) @ K[:2].T  # [T, 3, 2]
    screen = torch.cat([uv.reshape(-1, 6), inv_z], 1).to(torch.float32).contiguous()
    return _Setup(screen, face, weights.to(torch.float32), clipped)


def _pixel_bounds(screen: Tensor, height: int, width: int) -> tuple[Tensor, ...]:
    """Inclusive pixel bounding boxes (i0, i1, j0, j1) of the sub-triangles, clamped to the image.

    Empty boxes have i1 < i0 or j1 < j0; triangles with a non-finite vertex get an empty box.
    """
    u, v = screen[:, 0:6:2], screen[:, 1:6:2]
    finite = torch.isfinite(screen).all(1)
    j0 = torch.ceil(u.amin(1).clamp(-1.0, width + 1.0) - 0.5).long().clamp(min=0)
    j1 = torch.floor(u.amax(1).clamp(-1.0, width + 1.0) - 0.5).long().clamp(max=width - 1)
    i0 = torch.ceil(v.amin(1).clamp(-1.0, height + 1.0) - 0.5).long().clamp(min=0)
    i1 = torch.floor(v.amax(1).clamp(-1.0, height + 1.0) - 0.5).long().clamp(max=height - 1)
    i1 = torch.where(finite, i1, i0 - 1)
    return i0, i1, j0, j1


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For counts [N], every (owner, k) with 0 <= k < counts[owner], owner ascending."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - first[owner]


def _chunks(counts: Tensor, budget: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges whose counts sum to at most `budget` (or one item)."""
    ends = torch.cumsum(counts, 0)
    ranges, start = [], 0
    while start < counts.numel():
        before = int(ends[start - 1]) if start else 0
        stop = max(int(torch.searchsorted(ends, before + budget, right=True)), start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges


def _row_spans(s: Tensor, i: Tensor, j0: Tensor, j1: Tensor) -> tuple[Tensor, Tensor]:
    """Columns [js, je] worth testing on pixel row i of each triangle s [R, 9].

    The triangle's extent along the row's centre line, widened by a pixel on each side so that
    rounding never loses a pixel (the edge-function test decides), clipped to the bounding box
    [j0, j1]. Computed in float64: clipped triangles can project to millions of pixels.
    """
    x, y = s[:, 0:6:2].double(), s[:, 1:6:2].double()
    xb, yb = x.roll(-1, 1), y.roll(-1, 1)  # the other ends of edges 01, 12, 20
    py = i.double()[:, None] + 0.5
    crosses = (torch.minimum(y, yb) <= py) & (py <= torch.maximum(y, yb)) & (y != yb)
    xc = x + (py - y) / torch.where(crosses, yb - y, 1.0) * (xb - x)
    lo = torch.where(crosses, xc, torch.inf).amin(1).clamp(-2.0, 1e9)
    hi = torch.where(crosses, xc, -torch.inf).amax(1).clamp(-2.0, 1e9)
    js = torch.maximum(torch.ceil(lo - 0.5).long() - 1, j0)
    je = torch.minimum(torch.floor(hi - 0.5).long() + 1, j1)
    return js, je


def _edge_weights(s: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Edge functions of pixel centres (px, py) against triangles s [..., 9], and their sum."""
    x0, y0, x1, y1, x2, y2 = s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 4], s[:, 5]
    w0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    w1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
    w2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
    return w0, w1, w2, w0 + w1 + w2


def _zbuffer_pairs(keys: Tensor, screen: Tensor, tri: Tensor, i: Tensor, j: Tensor) -> None:
    """Test (triangle, pixel) pairs for coverage; fold the covered ones into keys [H, W].

    The candidates come from each triangle's span on the row, so most are covered: every pair
    is folded, an uncovered one with the empty key, rather than compacting the covered ones
    first (six gathers for a few percent fewer pairs)."""
    s = screen[tri]
    w0, w1, w2, area = _edge_weights(s, j.to(torch.float32) + 0.5, i.to(torch.float32) + 0.5)
    pos = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (area > 0)
    neg = (w0 <= 0) & (w1 <= 0) & (w2 <= 0) & (area < 0)
    depth = 1.0 / (w0 / area * s[:, 6] + w1 / area * s[:, 7] + w2 / area * s[:, 8])
    key = (depth.view(torch.int32).to(torch.int64) << 32) | tri
    key = torch.where(pos | neg, key, _EMPTY_KEY)
    keys.view(-1).scatter_reduce_(0, i * keys.shape[1] + j, key, reduce="amin")


def _zbuffer_depth_pairs(zbuf: Tensor, screen: Tensor, tri: Tensor, i: Tensor, j: Tensor) -> None:
    """`_zbuffer_pairs` for depth alone: the nearest depth per pixel, no triangle index."""
    s = screen[tri]
    w0, w1, w2, area = _edge_weights(s, j.to(torch.float32) + 0.5, i.to(torch.float32) + 0.5)
    hit = (((w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (area > 0))
           | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0) & (area < 0)))
    depth = 1.0 / (w0 / area * s[:, 6] + w1 / area * s[:, 7] + w2 / area * s[:, 8])
    depth = torch.where(hit, depth, torch.inf)
    zbuf.view(-1).scatter_reduce_(0, i * zbuf.shape[1] + j, depth, reduce="amin")


def _rasterize_reference(
    screen: Tensor, height: int, width: int, depth_only: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Torch z-buffer: nearest covering sub-triangle per pixel.

    Candidates come per triangle and pixel row from the triangle's span on that row (a bounding
    box would test millions of empty pixels for a sliver clipped at the near plane), at most
    `_MAX_ROWS` rows and `_MAX_PAIRS` (triangle, pixel) pairs at a time. Each covered pair packs
    (depth bits << 32 | triangle) into an int64 key (positive floats order like their bit
    patterns) and `scatter_reduce(amin)` keeps the nearest per pixel.

    With ``depth_only`` the nearest depth is kept directly (`scatter_reduce(amin)` on the
    floats, the same minimum) and no index is returned.

    Returns:
        depth: Tensor  # [H, W] float32, +inf where empty
        index: Tensor  # [H, W] int64 sub-triangle index, -1 where empty (None if depth_only)
    """
    if depth_only:
        keys = torch.full((height, width), float("inf"), device=screen.device)
        fold = _zbuffer_depth_pairs
    else:
        keys = torch.full((height, width), _EMPTY_KEY, dtype=torch.int64, device=screen.device)
        fold = _zbuffer_pairs
    i0, i1, j0, j1 = _pixel_bounds(screen, height, width)
    n_rows = (i1 - i0 + 1).clamp(min=0)
    for a, b in _chunks(n_rows, _MAX_ROWS):
        tri, r = _expand(n_rows[a:b])
        tri += a
        i = i0[tri] + r
        js, je = _row_spans(screen[tri], i, j0[tri], j1[tri])
        n_cols = (je - js + 1).clamp(min=0)
        for c, d in _chunks(n_cols, _MAX_PAIRS):
            row, k = _expand(n_cols[c:d])
            row += c
            fold(keys, screen, tri[row], i[row], js[row] + k)
    if depth_only:
        return keys, None
    empty = keys == _EMPTY_KEY
    depth = (keys >> 32).to(torch.int32).view(torch.float32).masked_fill(empty, float("inf"))
    return depth, (keys & 0xFFFFFFFF).masked_fill(empty, -1)


@triton.jit
def _raster_tile_kernel(
    screen_ptr,  # [T, 9] float32
    tile_start_ptr,  # [n_tiles + 1] int32 offsets into tile_tris
    tile_tris_ptr,  # [n_pairs] int32 sub-triangles per tile, ascending within a tile
    depth_ptr,  # [H * W] float32 out
    index_ptr,  # [H * W] int32 out
    height,
    width,
    tiles_x,
    TILE: tl.constexpr,
):
    tile = tl.program_id(0)
    offs = tl.arange(0, TILE * TILE)
    row = (tile // tiles_x) * TILE + offs // TILE
    col = (tile % tiles_x) * TILE + offs % TILE
    valid = (row < height) & (col < width)
    px = col.to(tl.float32) + 0.5
    py = row.to(tl.float32) + 0.5
    best_depth = tl.full([TILE * TILE], float("inf"), tl.float32)
    best_index = tl.full([TILE * TILE], -1, tl.int32)
    start = tl.load(tile_start_ptr + tile)
    end = tl.load(tile_start_ptr + tile + 1)
    for k in range(start, end):
        t = tl.load(tile_tris_ptr + k)
        base = screen_ptr + t.to(tl.int64) * 9
        x0 = tl.load(base + 0)
        y0 = tl.load(base + 1)
        x1 = tl.load(base + 2)
        y1 = tl.load(base + 3)
        x2 = tl.load(base + 4)
        y2 = tl.load(base + 5)
        w0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
        w1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
        w2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        area = w0 + w1 + w2
        pos = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (area > 0)
        neg = (w0 <= 0) & (w1 <= 0) & (w2 <= 0) & (area < 0)
        area = tl.where(area == 0, 1.0, area)
        inv_z = (
            tl.div_rn(w0, area) * tl.load(base + 6)
            + tl.div_rn(w1, area) * tl.load(base + 7)
            + tl.div_rn(w2, area) * tl.load(base + 8)
        )
        depth = tl.div_rn(1.0, tl.where(pos | neg, inv_z, 1.0))
        closer = (pos | neg) & (depth < best_depth)
        best_depth = tl.where(closer, depth, best_depth)
        best_index = tl.where(closer, t, best_index)
    out = row * width + col
    tl.store(depth_ptr + out, best_depth, mask=valid)
    tl.store(index_ptr + out, best_index, mask=valid)


def _rasterize_triton(screen: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Same contract as `_rasterize_reference`: bins sub-triangles to 16x16 tiles (torch), then
    one Triton program per tile walks its triangles in index order over the tile's 256 pixels."""
    device = screen.device
    tiles_x, tiles_y = triton.cdiv(width, _TILE), triton.cdiv(height, _TILE)
    i0, i1, j0, j1 = _pixel_bounds(screen, height, width)
    ti0, tj0 = i0 // _TILE, j0 // _TILE
    n_ty, n_tx = (i1 // _TILE - ti0 + 1).clamp(min=0), (j1 // _TILE - tj0 + 1).clamp(min=0)
    tri, k = _expand(n_ty * n_tx)
    ty, tx = ti0[tri] + k // n_tx[tri], tj0[tri] + k % n_tx[tri]
    tile = ty * tiles_x + tx
    order = torch.argsort(tile * max(screen.shape[0], 1) + tri)
    tile_tris = tri[order].to(torch.int32).contiguous()
    counts = torch.bincount(tile, minlength=tiles_x * tiles_y)
    tile_start = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.int32, device=device)
    tile_start[1:] = torch.cumsum(counts, 0)
    if tile_tris.numel() == 0:  # nothing on screen: skip a launch with empty buffers
        depth = torch.full((height, width), float("inf"), device=device)
        return depth, torch.full((height, width), -1, dtype=torch.int64, device=device)
    depth = torch.empty(height * width, dtype=torch.float32, device=device)
    index = torch.empty(height * width, dtype=torch.int32, device=device)
    # No FMA contraction and IEEE division (div_rn): every operation then rounds like the torch
    # reference's, so both paths agree on coverage, depth and ties bit for bit.
    get_kernel(_raster_tile_kernel, screen.device)[(tiles_x * tiles_y,)](
        screen,
        tile_start,
        tile_tris,
        depth,
        index,
        height,
        width,
        tiles_x,
        TILE=_TILE,
        enable_fp_fusion=False,
    )
    return depth.view(height, width), index.view(height, width).to(torch.int64)


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as `_rasterize_triton` launches
# it; tests/test_mesh_raster.py checks that the launch and this table agree.
_AOT_VARIANTS = (
    (
        _raster_tile_kernel,
        {"screen_ptr": "*fp32", "tile_start_ptr": "*i32", "tile_tris_ptr": "*i32",
         "depth_ptr": "*fp32", "index_ptr": "*i32", "height": "i32", "width": "i32",
         "tiles_x": "i32"},
        {"TILE": _TILE},
        {"enable_fp_fusion": False},
    ),
)  # fmt: skip


def _resolve(setup: _Setup, depth: Tensor, index: Tensor) -> MeshFragments:
    """Barycentrics of each pixel's winning sub-triangle, mapped back to its original face."""
    height, width = depth.shape
    index = index.reshape(-1)
    pix = (index >= 0).nonzero().squeeze(1)
    t = index[pix]
    s = setup.screen[t]
    px, py = (pix % width).to(torch.float32) + 0.5, (pix // width).to(torch.float32) + 0.5
    w0, w1, w2, _ = _edge_weights(s, px, py)
    b = torch.stack([w0, w1, w2], 1) * s[:, 6:9]  # perspective correction: screen weights / z
    b = b / b.sum(1, keepdim=True)
    bary = torch.zeros(height * width, 3, dtype=torch.float32, device=depth.device)
    # sub-triangles of clipped faces map their barycentrics back to the face's vertices; with
    # no face clipped every map is the identity, and b is already the answer
    bary[pix] = torch.bmm(b[:, None], setup.weights[t])[:, 0] if setup.clipped else b
    face_id = torch.full_like(index, -1)
    face_id[pix] = setup.face[t]
    return MeshFragments(depth, face_id.view(height, width), bary.view(height, width, 3))


def _prepared(verts: Tensor, faces: Tensor, viewmat: Tensor, K: Tensor, near: float,
              cull_backfaces: bool) -> _Setup:
    """The public entry points' inputs as float32 / int64 on the vertices' device, set up."""
    device = verts.device
    verts = verts.to(torch.float32).reshape(-1, 3)
    faces = faces.to(device=device, dtype=torch.int64).reshape(-1, 3)
    viewmat = torch.as_tensor(viewmat, dtype=torch.float32, device=device)
    K = torch.as_tensor(K, dtype=torch.float32, device=device)
    return _setup(verts, faces, viewmat, K, float(near), cull_backfaces)


def rasterize_triangles(
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int vertex indices
    viewmat: Tensor,  # [4, 4] world-to-camera
    K: Tensor,  # [3, 3] intrinsics in pixels
    width: int,
    height: int,
    near: float = 0.01,
    cull_backfaces: bool = False,
) -> MeshFragments:
    """Rasterize a triangle mesh: nearest face, depth and barycentrics per pixel.

    Each pixel is sampled at its centre (j + 0.5, i + 0.5). Triangles are clipped against the
    camera-space plane z = near (the part behind it is dropped, the rest is kept); triangles whose
    normal (right-hand rule over the face's vertex order) points away from the camera are dropped
    only when `cull_backfaces`. The nearest surface wins; at exactly equal depth, the lower face
    index wins.

    Returns:
        MeshFragments with depth [H, W], face_id [H, W], bary [H, W, 3].
    """
    setup = _prepared(verts, faces, viewmat, K, near, cull_backfaces)
    if _use_triton(verts.device):
        depth, index = _rasterize_triton(setup.screen, int(height), int(width))
    elif _use_warp_cpu(verts.device):
        from . import warp_cpu

        depth, index = warp_cpu.zbuffer(setup.screen, int(height), int(width))
        face_id, bary = warp_cpu.resolve(setup.screen, setup.weights, setup.face, setup.clipped,
                                         index)
        return MeshFragments(depth, face_id, bary)
    else:
        depth, index = _rasterize_reference(setup.screen, int(height), int(width))
    return _resolve(setup, depth, index)


def rasterize_depth(
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int vertex indices
    viewmat: Tensor,  # [4, 4] world-to-camera
    K: Tensor,  # [3, 3] intrinsics in pixels
    width: int,
    height: int,
    near: float = 0.01,
) -> Tensor:
    """The depth of `rasterize_triangles` alone (shadow maps): the same coverage and nearest
    depth, bit for bit, without face ids or barycentrics.

    Returns:
        Tensor  # [H, W] float32 camera-space z of the nearest hit, +inf where empty
    """
    setup = _prepared(verts, faces, viewmat, K, near, False)
    return rasterize_screen_depth(setup.screen, height, width)


def rasterize_screen_depth(screen: Tensor, height: int, width: int) -> Tensor:
    """The z-buffer of triangles already set up in screen space: ``screen`` [T, 9] float32 rows
    (u0, v0, u1, v1, u2, v2, 1/z0, 1/z1, 1/z2), nothing clipped (every 1/z > 0). The nearest
    1 / (1/z interpolated linearly in the image) per pixel, +inf where empty (what
    :func:`rasterize_depth` returns for the triangles it sets up).

    Returns:
        Tensor  # [H, W] float32
    """
    if _use_triton(screen.device):
        return _rasterize_triton(screen, int(height), int(width))[0]
    if _use_warp_cpu(screen.device):
        from . import warp_cpu

        return warp_cpu.zbuffer(screen, int(height), int(width), depth_only=True)[0]
    return _rasterize_reference(screen, int(height), int(width), depth_only=True)[0]


def interpolate(
    attrs: Tensor,  # [V, C] per-vertex attributes
    faces: Tensor,  # [F, 3] int, the faces that were rasterized
    frags: MeshFragments,
) -> Tensor:
    """Per-pixel attributes blended with the fragments' barycentrics.

    Returns:
        Tensor  # [H, W, C] in attrs' dtype, 0 where empty
    """
    if attrs.dtype == torch.float32 and _use_warp_cpu(attrs.device):
        from . import warp_cpu

        return warp_cpu.interpolate(attrs, faces, frags.face_id, frags.bary)
    face_id = frags.face_id.reshape(-1)
    pix = (face_id >= 0).nonzero().squeeze(1)
    corner = faces.long()[face_id[pix]]  # [P, 3]
    b = frags.bary.reshape(-1, 3)[pix].to(attrs.dtype)
    blend = attrs.index_select(0, corner[:, 0]) * b[:, 0:1]
    for k in (1, 2):
        blend.addcmul_(attrs.index_select(0, corner[:, k]), b[:, k : k + 1])
    out = attrs.new_zeros(face_id.numel(), attrs.shape[-1])
    out[pix] = blend
    return out.view(*frags.face_id.shape, attrs.shape[-1])


def pixel_face_normals(
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int
    rotation: Tensor,  # [3, 3] world-to-camera rotation
    face_id: Tensor,  # [H, W] int64 face hit per pixel, -1 where empty
) -> Tensor:
    """Camera-space geometric normals (right-hand rule, unnormalised) of the face each pixel
    hit [H, W, 3], 0 where empty."""
    tri = (verts.to(torch.float32) @ rotation.T)[faces.long()]  # translation cancels in edges
    face_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return torch.where(face_id[..., None] >= 0, face_n[face_id.clamp(min=0)], 0.0)


#: How far a bent silhouette normal is tilted towards the camera past the view ray's
#: perpendicular (the sine of the angle), so that it still faces the camera.
_BEND_TILT = 1e-3


def orient_normals(
    n: Tensor,  # [..., 3] camera-space shading normals (interpolated, any length), 0 where empty
    point: Tensor,  # [..., 3] camera-space surface points (the view rays)
    face_n: Tensor,  # [..., 3] geometric normals of the faces hit (any length)
) -> Tensor:
    """Unit shading normals turned to face the camera, for two-sided surfaces.

    Where a pixel sees a face's back side (its geometric normal points away from the camera),
    the surface seen is the other side: the normal is negated. A smooth normal that still points
    away after that belongs to a front-facing face at a silhouette, bent past the view ray by the
    interpolation between a front and a back vertex; negating it would turn it nearly 180 degrees
    off, so it is bent instead onto the plane perpendicular to the view ray (keeping its direction
    across the silhouette, which is where the true surface normal lies), tilted slightly towards
    the camera.

    Returns:
        Tensor  # [..., 3] float32 unit normals, 0 where ``n`` is 0
    """
    back = (face_n * point).sum(-1, keepdim=True) > 0
    n = torch.nn.functional.normalize(torch.where(back, -n, n), dim=-1)
    v = torch.nn.functional.normalize(point, dim=-1)
    nv = (n * v).sum(-1, keepdim=True)
    bent = torch.nn.functional.normalize(n - (nv + _BEND_TILT) * v, dim=-1)
    return torch.where(nv > 0, bent, n)


def oriented_normals(
    n: Tensor | None,  # [..., 3] camera-space shading normals; None: each pixel's face normal
    point: Tensor,  # [..., 3] camera-space surface points
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int
    rotation: Tensor,  # [3, 3] world-to-camera rotation
    face_id: Tensor,  # [...] int64 face hit per pixel, -1 where empty
) -> Tensor:
    """``orient_normals(n, point, pixel_face_normals(verts, faces, rotation, face_id))``, 0 where
    ``face_id`` is -1 (compiled on CPU tensors: ``rendiff.kernels.warp_cpu.oriented_normals``).

    Returns:
        Tensor  # [..., 3] float32 unit normals facing the camera
    """
    if _use_warp_cpu(point.device):
        from . import warp_cpu

        tri = (verts.to(torch.float32) @ rotation.T)[faces.long()]
        face_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return warp_cpu.oriented_normals(n, point, face_n, face_id, _BEND_TILT)
    face_n = pixel_face_normals(verts, faces, rotation, face_id)
    out = orient_normals(face_n if n is None else n, point, face_n)
    return out if n is None else torch.where(face_id[..., None] >= 0, out, 0.0)


def mesh_normals_camera(
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int
    normals: Tensor | None,  # [V, 3] world vertex normals; None for flat face normals
    viewmat: Tensor,  # [4, 4] world-to-camera
    frags: MeshFragments,
) -> Tensor:
    """Camera-space unit normals per pixel, turned to face the camera.

    Vertex normals are interpolated with the barycentrics and renormalised; with `normals=None`
    each pixel gets its face's geometric normal. On a face seen from its back the normal is
    negated; an interpolated normal bent past the silhouette is bent back to face the camera
    (:func:`orient_normals`).

    Returns:
        Tensor  # [H, W, 3] float32, 0 where empty
    """
    viewmat = torch.as_tensor(viewmat, dtype=torch.float32, device=verts.device)
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    faces = faces.long()
    cam = verts.to(torch.float32) @ R.T + t
    if normals is None:
        return oriented_normals(None, interpolate(cam, faces, frags), verts, faces, R,
                                frags.face_id)
    both = interpolate(torch.cat([normals.to(torch.float32) @ R.T, cam], 1), faces, frags)
    return oriented_normals(both[..., :3], both[..., 3:], verts, faces, R, frags.face_id)
