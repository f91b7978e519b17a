"""The rasterizers' compiled CPU path: Warp kernels run on the CPU.

On CPU tensors the torch references spend their time in element-wise work on every candidate
(triangle-pixel or Gaussian-pixel pair) and in gathers and mask compaction; compiled loops do
the same work once per pixel, and stop where a pixel is done. Warp is already a dependency
(Newton's physics), compiles CPU kernels with its own bundled compiler (no system compiler
needed) and caches them in ``~/.cache/warp`` (``tools/setup.sh`` runs :func:`warmup` at install
time; compiling them all takes a few seconds).

Each kernel is a single-threaded loop (Warp's CPU launches are serial; the z-buffer and binning
kernels are launched as one thread that walks the triangles or Gaussians itself, so their order
is explicit):

* :func:`zbuffer` - coverage and depth test, **bit for bit** the torch reference's
  (``mesh_raster._rasterize_reference``): the same pixel bounds, row spans, edge functions and
  float32 operations in the same order (Warp's code generator writes one operation per
  statement, so nothing is contracted to FMA), nearest depth kept, exact ties to the lower
  triangle index;
* :func:`resolve` - perspective-correct barycentrics of each pixel's winning sub-triangle mapped
  back to its face (``mesh_raster._resolve``);
* :func:`interpolate` - per-pixel attributes (``mesh_raster.interpolate``);
* :func:`oriented_normals` - face normals gathered and shading normals turned to face the camera
  (``mesh_raster.orient_normals``);
* :func:`pcf_lookup` - the shadow maps' percentage-closer test, bit for bit (``shadow._lookup``);
* :func:`shadow_test` - a directional or spot light's whole test per pixel: into the light's
  view, bias, PCF (``shadow.shadow_visibility`` without compacting the masked pixels);
* :func:`pixel_motion` - a surface point's motion to another frame's camera
  (``renderer._pixel_motion``);
* :func:`shade` - every light's Lambert + Blinn-Phong term per pixel (``shading._shade_reference``);
* :func:`bin_tiles` - Gaussians listed per screen tile front to back, exactly
  ``gaussian_raster._bin_tiles``'s lists, without sorting (tile, Gaussian) pairs;
* :func:`composite` - front-to-back blending per pixel (``gaussian_raster._composite_reference``,
  gsplat's rules: alpha below 1/255 skipped, a pixel stops before transmittance <= 1e-4).

Those not marked exact agree with the references to float rounding (tests/test_warp_cpu.py).
The rasterizers choose this path for CPU tensors unless ``RENDIFF_CPU_KERNELS=torch`` (read at
every call) asks for the torch references (``_dispatch.use_warp_cpu``).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile

import numpy as np
import torch
import warp as wp
from torch import Tensor

# No start-up banner or per-module "load on device" lines on stdout; warnings and errors remain.
wp.config.quiet = True
wp.config.log_level = wp.LOG_WARNING

__all__ = [
    "affine_reciprocal_", "bin_tiles", "clamp_uint8", "composite", "depth_uint8", "flow_uint8",
    "ids_uint8", "init_warp", "interpolate", "inverse_depth_range", "normal_uint8",
    "oriented_normals", "pcf_lookup", "pixel_motion", "project", "resolve", "shade", "shadow_test",
    "warmup", "zbuffer",
]

#: What Warp's native library prints on stderr at start-up on every machine without an NVIDIA
#: driver: a notice, not an error, and the only line it prints there.
_NO_DRIVER_NOTICE = "Could not find or load the NVIDIA CUDA driver"


def init_warp(quiet: bool = False) -> None:
    """Starts Warp now instead of at its first use. ``quiet``: drop the native library's "Could
    not find or load the NVIDIA CUDA driver" notice (printed on every CPU-only machine), so a
    ``--quiet`` run prints nothing but errors; anything else it prints still reaches stderr."""
    if not quiet:
        wp.init()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            wp.init()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode(errors="replace")
    for line in text.splitlines():
        if line.strip() and _NO_DRIVER_NOTICE not in line:
            print(line, file=sys.stderr)


_started = False


def _start() -> None:
    """Warp started (quietly: a render needs no note that CUDA is absent) before a launch."""
    global _started
    if not _started:
        init_warp(quiet=True)
        _started = True


@wp.func
def _row_span(x0: float, y0: float, x1: float, y1: float, x2: float, y2: float, py: wp.float64,
              j0: int, j1: int) -> wp.vec2i:
    """Columns [js, je] worth testing on the row through py (``mesh_raster._row_spans``): the
    triangle's extent along the row, in float64, widened by a pixel each side, within [j0, j1]."""
    lo = wp.float64(wp.inf)
    hi = wp.float64(-wp.inf)
    xs = wp.vec3d(wp.float64(x0), wp.float64(x1), wp.float64(x2))
    ys = wp.vec3d(wp.float64(y0), wp.float64(y1), wp.float64(y2))
    for e in range(3):
        xa = xs[e]
        ya = ys[e]
        xb = xs[(e + 1) % 3]
        yb = ys[(e + 1) % 3]
        if wp.min(ya, yb) <= py and py <= wp.max(ya, yb) and ya != yb:
            xc = xa + (py - ya) / (yb - ya) * (xb - xa)
            lo = wp.min(lo, xc)
            hi = wp.max(hi, xc)
    lo = wp.clamp(lo, wp.float64(-2.0), wp.float64(1.0e9))
    hi = wp.clamp(hi, wp.float64(-2.0), wp.float64(1.0e9))
    js = wp.max(int(wp.ceil(lo - wp.float64(0.5))) - 1, j0)
    je = wp.min(int(wp.floor(hi - wp.float64(0.5))) + 1, j1)
    return wp.vec2i(js, je)


@wp.func
def _edges(x0: float, y0: float, x1: float, y1: float, x2: float, y2: float, px: float,
           py: float) -> wp.vec3:
    """Edge functions of the point (px, py) against a triangle (``mesh_raster._edge_weights``,
    the same operations in the same order)."""
    return wp.vec3((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1),
                   (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2),
                   (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0))


@wp.kernel
def _zbuffer_kernel(
    screen: wp.array2d(dtype=wp.float32),  # [T, 9] (u0, v0, u1, v1, u2, v2, 1/z0, 1/z1, 1/z2)
    height: int,
    width: int,
    depth: wp.array(dtype=wp.float32),  # [H * W] in: +inf; out: nearest depth
    index: wp.array(dtype=wp.int32),  # [H * W] in: -1; out: its sub-triangle (unused if depth_only)
    depth_only: int,
):
    for t in range(screen.shape[0]):
        x0 = screen[t, 0]
        y0 = screen[t, 1]
        x1 = screen[t, 2]
        y1 = screen[t, 3]
        x2 = screen[t, 4]
        y2 = screen[t, 5]
        z0 = screen[t, 6]
        z1 = screen[t, 7]
        z2 = screen[t, 8]
        finite = True
        for c in range(9):
            if not wp.isfinite(screen[t, c]):
                finite = False
        if not finite:
            continue
        wmax = float(width) + 1.0
        hmax = float(height) + 1.0
        j0 = wp.max(int(wp.ceil(wp.clamp(wp.min(wp.min(x0, x1), x2), -1.0, wmax) - 0.5)), 0)
        j1 = wp.min(int(wp.floor(wp.clamp(wp.max(wp.max(x0, x1), x2), -1.0, wmax) - 0.5)),
                    width - 1)
        i0 = wp.max(int(wp.ceil(wp.clamp(wp.min(wp.min(y0, y1), y2), -1.0, hmax) - 0.5)), 0)
        i1 = wp.min(int(wp.floor(wp.clamp(wp.max(wp.max(y0, y1), y2), -1.0, hmax) - 0.5)),
                    height - 1)
        for i in range(i0, i1 + 1):
            py = float(i) + 0.5
            span = _row_span(x0, y0, x1, y1, x2, y2, wp.float64(i) + wp.float64(0.5), j0, j1)
            for j in range(span[0], span[1] + 1):
                e = _edges(x0, y0, x1, y1, x2, y2, float(j) + 0.5, py)
                w0 = e[0]
                w1 = e[1]
                w2 = e[2]
                area = w0 + w1 + w2
                hit = False
                if w0 >= 0.0 and w1 >= 0.0 and w2 >= 0.0 and area > 0.0:
                    hit = True
                if w0 <= 0.0 and w1 <= 0.0 and w2 <= 0.0 and area < 0.0:
                    hit = True
                if hit:
                    d = 1.0 / (w0 / area * z0 + w1 / area * z1 + w2 / area * z2)
                    p = i * width + j
                    if d < depth[p]:  # triangles ascend: an exact tie keeps the lower index
                        depth[p] = d
                        if depth_only == 0:
                            index[p] = t


@wp.kernel
def _resolve_kernel(
    screen: wp.array2d(dtype=wp.float32),  # [T, 9]
    weights: wp.array3d(dtype=wp.float32),  # [T, 3, 3] sub-vertex weights over the face's
    sub_face: wp.array(dtype=wp.int64),  # [T] original face of each sub-triangle
    clipped: int,
    width: int,
    index: wp.array(dtype=wp.int32),  # [H * W] sub-triangle per pixel, -1 where empty
    face_id: wp.array(dtype=wp.int64),  # [H * W] out, -1 where empty
    bary: wp.array2d(dtype=wp.float32),  # [H * W, 3] out, 0 where empty
):
    p = wp.tid()
    t = index[p]
    if t < 0:
        face_id[p] = wp.int64(-1)
        return
    px = float(p % width) + 0.5
    py = float(p // width) + 0.5
    e = _edges(screen[t, 0], screen[t, 1], screen[t, 2], screen[t, 3], screen[t, 4],
               screen[t, 5], px, py)
    b0 = e[0] * screen[t, 6]  # perspective correction: screen weights / z
    b1 = e[1] * screen[t, 7]
    b2 = e[2] * screen[t, 8]
    total = b0 + b1 + b2
    b0 = b0 / total
    b1 = b1 / total
    b2 = b2 / total
    if clipped != 0:
        for c in range(3):
            bary[p, c] = b0 * weights[t, 0, c] + b1 * weights[t, 1, c] + b2 * weights[t, 2, c]
    else:
        bary[p, 0] = b0
        bary[p, 1] = b1
        bary[p, 2] = b2
    face_id[p] = sub_face[t]


@wp.kernel
def _interpolate_kernel(
    attrs: wp.array2d(dtype=wp.float32),  # [V, C]
    faces: wp.array2d(dtype=wp.int64),  # [F, 3]
    face_id: wp.array(dtype=wp.int64),  # [P]
    bary: wp.array2d(dtype=wp.float32),  # [P, 3]
    out: wp.array2d(dtype=wp.float32),  # [P, C] zeros in, blended where hit
):
    p = wp.tid()
    f = face_id[p]
    if f < wp.int64(0):
        return
    a = faces[f, 0]
    b = faces[f, 1]
    c = faces[f, 2]
    w0 = bary[p, 0]
    w1 = bary[p, 1]
    w2 = bary[p, 2]
    for k in range(attrs.shape[1]):
        out[p, k] = attrs[a, k] * w0 + attrs[b, k] * w1 + attrs[c, k] * w2


@wp.func
def _unit(x: wp.vec3) -> wp.vec3:
    """``torch.nn.functional.normalize``: x / max(|x|, 1e-12)."""
    return x / wp.max(wp.length(x), 1.0e-12)


@wp.kernel
def _orient_kernel(
    n: wp.array(dtype=wp.vec3),  # [P] shading normals (any length), 0 where empty
    point: wp.array(dtype=wp.vec3),  # [P] camera-space surface points
    face_n: wp.array(dtype=wp.vec3),  # [F] camera-space geometric normals of the faces
    face_id: wp.array(dtype=wp.int64),  # [P] face hit, -1 where empty
    use_face_n: int,  # 1: the face normal is the shading normal (``n`` unused)
    tilt: float,
    out: wp.array(dtype=wp.vec3),  # [P] zeros in
):
    p = wp.tid()
    f = face_id[p]
    if f < wp.int64(0):
        return
    g = face_n[f]
    m = g
    if use_face_n == 0:
        m = n[p]
    x = point[p]
    if wp.dot(g, x) > 0.0:
        m = -m
    m = _unit(m)
    v = _unit(x)
    nv = wp.dot(m, v)
    if nv > 0.0:
        m = _unit(m - (nv + tilt) * v)
    out[p] = m


@wp.func
def _pcf(depth: wp.array2d(dtype=wp.float32), u: float, v: float, z: float, bias: float,
         pcf: int, clamp: int) -> float:
    """The fraction of the (2 pcf + 1)^2 texels around (u, v) whose depth reaches z - bias; 1
    unless z > 0 and (or ``clamp``) the texel is on the map (``shadow._lookup``, bit for bit)."""
    h = depth.shape[0]
    w = depth.shape[1]
    j = int(wp.floor(u))
    i = int(wp.floor(v))
    if not (z > 0.0) or (clamp == 0 and (j < 0 or j >= w or i < 0 or i >= h)):
        return 1.0
    # the point clamped one texel past the edge, each tap clamped to the map
    ci = wp.clamp(i, -1, h)
    cj = wp.clamp(j, -1, w)
    reach = z - bias
    lit = int(0)
    for di in range(-pcf, pcf + 1):
        ti = wp.clamp(ci + di, 0, h - 1)
        for dj in range(-pcf, pcf + 1):
            if depth[ti, wp.clamp(cj + dj, 0, w - 1)] >= reach:
                lit += 1
    return float(lit) / float((2 * pcf + 1) * (2 * pcf + 1))


@wp.kernel
def _pcf_kernel(
    depth: wp.array2d(dtype=wp.float32),  # [h, w] shadow map, +inf where empty
    u: wp.array(dtype=wp.float32),  # [M] map coordinates
    v: wp.array(dtype=wp.float32),
    z: wp.array(dtype=wp.float32),  # [M] light-camera depth
    bias: wp.array(dtype=wp.float32),  # [M]
    pcf: int,
    clamp: int,
    out: wp.array(dtype=wp.float32),  # [M] fraction lit
):
    m = wp.tid()
    out[m] = _pcf(depth, u[m], v[m], z[m], bias[m], pcf, clamp)


@wp.func
def _tile_range(m: float, r: float, tile_size: int, limit: int) -> wp.vec2i:
    """Tiles [lo, hi) a Gaussian's bounding box touches along one axis (``_bin_tiles``)."""
    ts = float(tile_size)
    lo = wp.min(wp.max(int(wp.floor(m / ts - r / ts)), 0), limit)
    hi = wp.min(wp.max(int(wp.ceil(m / ts + r / ts)), 0), limit)
    return wp.vec2i(lo, hi)


@wp.kernel
def _bin_kernel(
    means2d: wp.array2d(dtype=wp.float32),  # [N, 2]
    radii: wp.array2d(dtype=wp.float32),  # [N, 2] whole pixels, 0 for culled Gaussians
    order: wp.array(dtype=wp.int64),  # [N] Gaussians front to back (ties by index)
    tiles_x: int,
    tiles_y: int,
    tile_size: int,
    fill: int,  # 0: count each tile's Gaussians into cursor; 1: write them at cursor
    cursor: wp.array(dtype=wp.int64),  # [n_tiles] counts, or each tile's next free slot
    flat_ids: wp.array(dtype=wp.int32),  # [M] out (fill = 1)
):
    for n in range(order.shape[0]):
        g = int(order[n])
        if radii[g, 0] <= 0.0 or radii[g, 1] <= 0.0:
            continue
        xs = _tile_range(means2d[g, 0], radii[g, 0], tile_size, tiles_x)
        ys = _tile_range(means2d[g, 1], radii[g, 1], tile_size, tiles_y)
        for ty in range(ys[0], ys[1]):
            for tx in range(xs[0], xs[1]):
                tile = ty * tiles_x + tx
                if fill != 0:
                    flat_ids[int(cursor[tile])] = g
                cursor[tile] = cursor[tile] + wp.int64(1)


@wp.kernel
def _composite_kernel(
    params: wp.array2d(dtype=wp.float32),  # [N, 6] mean x, mean y, a / 2, b, c / 2, log(opacity)
    payload: wp.array2d(dtype=wp.float32),  # [N, D]
    offsets: wp.array(dtype=wp.int64),  # [n_tiles + 1] tile t owns flat_ids[offsets[t]:...]
    flat_ids: wp.array(dtype=wp.int32),  # [M] per tile, front to back
    width: int,
    tiles_x: int,
    tile_size: int,
    alpha_floor: float,  # the float just below 1/255: alphas above it count
    track_best: int,  # 0: leave best at -1 (depth passes)
    t_stop: float,  # stop after the Gaussian that takes T to this or below (0: never)
    acc: wp.array2d(dtype=wp.float32),  # [H * W, D] zeros in: sum of weight x payload
    trans: wp.array(dtype=wp.float32),  # [H * W] out: final transmittance
    best: wp.array(dtype=wp.int64),  # [H * W] out: the Gaussian of largest weight, -1 if none
):
    p = wp.tid()
    i = p // width
    j = p % width
    tile = (i // tile_size) * tiles_x + j // tile_size
    px = float(j) + 0.5
    py = float(i) + 0.5
    t = float(1.0)
    best_w = float(0.0)
    best_g = wp.int64(-1)
    for k in range(int(offsets[tile]), int(offsets[tile + 1])):
        g = flat_ids[k]
        dx = params[g, 0] - px
        dy = params[g, 1] - py
        sigma = params[g, 4] * dy * dy + params[g, 2] * dx * dx + dy * (params[g, 3] * dx)
        # alphas below exp(-5.6) < 1/255 are skipped before their exp (the same ones as the
        # reference's threshold, which this still applies)
        if sigma < 0.0 or params[g, 5] - sigma < -5.6:
            continue
        alpha = wp.min(wp.exp(wp.max(params[g, 5] - sigma, -16.0)), 0.999)
        if alpha <= alpha_floor:
            continue
        t_next = t * (1.0 - alpha)
        if t_next <= 1.0e-4:  # this Gaussian would end the pixel: left out, as in gsplat
            break
        w = alpha * t
        for c in range(payload.shape[1]):
            acc[p, c] = acc[p, c] + w * payload[g, c]  # (+= would be an atomic add)
        if track_best != 0 and w > best_w:
            best_w = w
            best_g = wp.int64(g)
        t = t_next
        if t <= t_stop:
            break
    trans[p] = t
    best[p] = best_g


@wp.kernel
def _shade_kernel(
    points: wp.array(dtype=wp.vec3),  # [N] camera-space points
    normal: wp.array(dtype=wp.vec3),  # [N] unit normals, 0 where empty
    albedo: wp.array(dtype=wp.vec3),  # [N]
    specular: wp.array(dtype=wp.float32),  # [N]
    roughness: wp.array(dtype=wp.float32),  # [N]
    mask: wp.array(dtype=wp.int8),  # [N]
    lights: wp.array2d(dtype=wp.float32),  # [L, 12] kind, position, direction, radiance, cos
    env: wp.array(dtype=wp.float32),  # [30] ambient (3), then SH radiance [9, 3]
    has_sh: int,
    vis: wp.array2d(dtype=wp.float32),  # [L, N] (read only when has_vis)
    has_vis: int,
    shading: wp.array(dtype=wp.float32),  # [N] out
    irr_out: wp.array(dtype=wp.vec3),  # [N] out
    rgb_out: wp.array(dtype=wp.vec3),  # [N] out
):
    p = wp.tid()
    if mask[p] == wp.int8(0):
        shading[p] = 0.0
        irr_out[p] = wp.vec3(0.0)
        rgb_out[p] = wp.vec3(0.0)
        return
    x = points[p]
    n = normal[p]
    v = -x / wp.max(wp.length(x), 1.0e-9)
    r = wp.clamp(roughness[p], 0.02, 1.0)
    r2 = r * r
    expo = wp.clamp(2.0 / (r2 * r2) - 2.0, 1.0, 4096.0)
    irr = wp.vec3(env[0], env[1], env[2])
    if has_sh != 0:  # Ramamoorthi-Hanrahan irradiance per channel, divided by pi
        for c in range(3):
            e = (0.886227 * env[3 + c]
                 + 1.023328 * (env[12 + c] * n[0] + env[6 + c] * n[1] + env[9 + c] * n[2])
                 + 0.743125 * env[21 + c] * n[2] * n[2] - 0.247708 * env[21 + c]
                 + 0.429043 * env[27 + c] * (n[0] * n[0] - n[1] * n[1])
                 + 0.858086 * (env[15 + c] * n[0] * n[1] + env[24 + c] * n[0] * n[2]
                               + env[18 + c] * n[1] * n[2]))
            irr[c] = irr[c] + wp.max(e / 3.141592653589793, 0.0)
    spec = wp.vec3(0.0)
    for i in range(lights.shape[0]):
        kind = lights[i, 0]
        d = wp.vec3(lights[i, 4], lights[i, 5], lights[i, 6])
        to_light = wp.vec3(lights[i, 1], lights[i, 2], lights[i, 3]) - x
        d2 = wp.max(wp.dot(to_light, to_light), 1.0e-6)
        l_dir = -d
        atten = float(1.0)
        if kind != 0.0:
            l_dir = to_light / wp.sqrt(d2)
            atten = 1.0 / d2
        if kind == 2.0:
            lo = lights[i, 10]
            s = wp.clamp((-wp.dot(l_dir, d) - lo) / wp.max(lights[i, 11] - lo, 1.0e-6), 0.0, 1.0)
            atten = atten * (s * s * (3.0 - 2.0 * s))
        if has_vis != 0:
            atten = atten * vis[i, p]
        ndl = wp.max(wp.dot(n, l_dir), 0.0)
        h = l_dir + v
        ndh = wp.max(wp.dot(n, h) / wp.max(wp.length(h), 1.0e-9), 0.0)
        lobe = float(0.0)
        if ndh > 0.0 and specular[p] != 0.0:  # (a lobe times ks = 0 adds nothing)
            lobe = wp.pow(ndh, expo)
        radiance = wp.vec3(lights[i, 7], lights[i, 8], lights[i, 9])
        diffuse = atten * ndl
        irr = irr + radiance * diffuse
        spec = spec + radiance * (diffuse * specular[p] * lobe)
    shading[p] = (irr[0] + irr[1] + irr[2]) / 3.0
    irr_out[p] = irr
    rgb_out[p] = wp.cw_mul(albedo[p], irr) + spec


@wp.kernel
def _shadow_test_kernel(
    points: wp.array(dtype=wp.vec3),  # [N] world positions
    mask: wp.array(dtype=wp.int8),  # [N] 0: no surface (lit)
    normals: wp.array(dtype=wp.vec3),  # [N] world normals (read only when has_normals)
    has_normals: int,
    rot: wp.mat33,  # world -> light camera
    trans: wp.vec3,
    proj: wp.vec4,  # ortho: (sx, sy, cx, cy); perspective: (fx, fy, cx, cy)
    ortho: int,
    light: wp.vec3,  # ortho: unit direction towards the light; perspective: light position
    bias: float,  # >= 0: this bias everywhere; < 0: one texel plus the slope's depth change
    default_slope: float,
    depth: wp.array2d(dtype=wp.float32),  # [h, w] shadow map
    pcf: int,
    clamp: int,
    out: wp.array(dtype=wp.float32),  # [N] fraction lit
):
    p = wp.tid()
    if mask[p] == wp.int8(0):
        out[p] = 1.0
        return
    x = points[p]
    c = rot * x + trans
    z = c[2]
    u = float(0.0)
    v = float(0.0)
    texel = float(0.0)
    to_light = light
    if ortho != 0:
        u = proj[0] * c[0] + proj[2]
        v = proj[1] * c[1] + proj[3]
        texel = 1.0 / proj[0]
    else:
        zs = wp.max(z, 1.0e-9)
        u = proj[0] * c[0] / zs + proj[2]
        v = proj[1] * c[1] / zs + proj[3]
        texel = zs / proj[0]
        to_light = wp.normalize(light - x)
    b = bias
    if bias < 0.0:
        slope = default_slope
        if has_normals != 0:
            cos = wp.clamp(wp.abs(wp.dot(wp.normalize(normals[p]), to_light)), 0.0995, 1.0)
            slope = wp.sqrt(1.0 - cos * cos) / cos
        b = texel * (1.0 + 1.4142135623730951 * float(pcf + 1) * slope)
    out[p] = _pcf(depth, u, v, z, b, pcf, clamp)


@wp.kernel
def _motion_kernel(
    src: wp.array2d(dtype=wp.float32),  # [N, C] per-pixel channels holding world points
    col: int,  # the point's first channel
    hit: wp.array(dtype=wp.int8),  # [N]
    rot: wp.mat33,  # the other frame's world -> camera
    trans: wp.vec3,
    k0: wp.vec3,  # its intrinsics' first row
    k1: wp.vec3,  # and second row
    near: float,
    width: int,
    out: wp.array2d(dtype=wp.float32),  # [N, 2] out: pixel motion, 0 where not hit or behind
):
    p = wp.tid()
    out[p, 0] = 0.0
    out[p, 1] = 0.0
    if hit[p] == wp.int8(0):
        return
    c = rot * wp.vec3(src[p, col], src[p, col + 1], src[p, col + 2]) + trans
    if c[2] <= near:
        return
    zs = wp.max(c[2], 1.0e-6)
    x = c[0] / zs
    y = c[1] / zs
    out[p, 0] = k0[0] * x + k0[1] * y + k0[2] - (float(p % width) + 0.5)
    out[p, 1] = k1[0] * x + k1[1] * y + k1[2] - (float(p // width) + 0.5)


@wp.kernel
def _affine_reciprocal_kernel(x: wp.array(dtype=wp.float32), a: float, b: float):
    p = wp.tid()
    if wp.isfinite(x[p]):
        x[p] = a - b / x[p]


@wp.kernel
def _project_kernel(
    means: wp.array(dtype=wp.vec3),
    quats: wp.array(dtype=wp.vec4),  # (w, x, y, z)
    scales: wp.array(dtype=wp.vec3),
    opacities: wp.array(dtype=wp.float32),
    R: wp.mat33,
    t: wp.vec3,
    intr: wp.vec4,  # fx, fy, cx, cy
    lims: wp.vec4,  # x +, x -, y +, y - (the Jacobian's clamp on x / z and y / z)
    width: int,
    height: int,
    near: float,
    far: float,
    eps2d: float,
    alpha_min: float,
    extent_max: float,
    means2d: wp.array2d(dtype=wp.float32),
    conics: wp.array2d(dtype=wp.float32),
    radii: wp.array2d(dtype=wp.int32),
    means_c: wp.array(dtype=wp.vec3),
    rot_c: wp.array(dtype=wp.mat33),
):
    i = wp.tid()
    mc = R * means[i] + t
    q = quats[i]
    qn = q / wp.max(wp.length(q), 1.0e-12)
    w = qn[0]
    x = qn[1]
    y = qn[2]
    z = qn[3]
    rot = wp.mat33(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
                   2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
                   2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))
    rc = R * rot
    m = rc * wp.diag(scales[i])  # each axis scaled by its standard deviation
    cov = m * wp.transpose(m)
    zc = mc[2]
    in_range = zc > near and zc < far
    zz = wp.where(in_range, zc, 1.0)
    fx = intr[0]
    fy = intr[1]
    tx = zz * wp.min(wp.max(mc[0] / zz, -lims[1]), lims[0])
    ty = zz * wp.min(wp.max(mc[1] / zz, -lims[3]), lims[2])
    j00 = fx / zz
    j02 = -fx * tx / (zz * zz)
    j11 = fy / zz
    j12 = -fy * ty / (zz * zz)
    # J cov J^T for J = [[j00, 0, j02], [0, j11, j12]]
    r00 = j00 * cov[0, 0] + j02 * cov[2, 0]
    r01 = j00 * cov[0, 1] + j02 * cov[2, 1]
    r02 = j00 * cov[0, 2] + j02 * cov[2, 2]
    r10 = j11 * cov[1, 0] + j12 * cov[2, 0]
    r11 = j11 * cov[1, 1] + j12 * cov[2, 1]
    r12 = j11 * cov[1, 2] + j12 * cov[2, 2]
    a = r00 * j00 + r02 * j02 + eps2d
    b = 0.5 * ((r01 * j11 + r02 * j12) + (r10 * j00 + r12 * j02))
    c = r11 * j11 + r12 * j12 + eps2d
    det = a * c - b * b
    valid = in_range and det > 0.0 and opacities[i] >= alpha_min
    if not valid:
        det = 1.0
    conics[i, 0] = c / det
    conics[i, 1] = -b / det
    conics[i, 2] = a / det
    u = fx * mc[0] / zz + intr[2]
    v = fy * mc[1] / zz + intr[3]
    extent = wp.min(wp.sqrt(2.0 * wp.log(wp.max(opacities[i], alpha_min) / alpha_min)),
                    extent_max)
    rx = wp.ceil(extent * wp.sqrt(wp.max(a, 0.0)))
    ry = wp.ceil(extent * wp.sqrt(wp.max(c, 0.0)))
    valid = valid and (rx > 0.0 or ry > 0.0)
    valid = valid and u + rx > 0.0 and u - rx < float(width)
    valid = valid and v + ry > 0.0 and v - ry < float(height)
    if valid:
        means2d[i, 0] = u
        means2d[i, 1] = v
        radii[i, 0] = int(rx)
        radii[i, 1] = int(ry)
    else:
        means2d[i, 0] = 0.0
        means2d[i, 1] = 0.0
        radii[i, 0] = 0
        radii[i, 1] = 0
    means_c[i] = mc
    rot_c[i] = rc


@wp.func
def _u8(x: float) -> wp.uint8:
    """``rendiff.io.video.to_uint8`` of one value: NaN to 0, clipped to [0, 1], times 255 plus
    0.5, truncated (the same float32 operations)."""
    y = float(0.0)
    if not wp.isnan(x):
        y = wp.clamp(x, 0.0, 1.0)
    y = y * 255.0
    y = y + 0.5
    return wp.uint8(int(y))


@wp.kernel
def _clamp_u8_kernel(x: wp.array2d(dtype=wp.float32), block: int,
                     out: wp.array2d(dtype=wp.uint8)):
    start = wp.tid() * block
    grey = x.shape[1] == 1
    for p in range(start, wp.min(start + block, x.shape[0])):
        for c in range(3):
            out[p, c] = _u8(x[p, wp.where(grey, 0, c)])


@wp.func
def _inv_depth(d: float) -> float:
    """1 / max(d, 1e-6) for a valid depth (finite, > 0), else -1: what the range and the
    encoding both read, so the clip's nearest point encodes to exactly 1."""
    inv = float(-1.0)
    if wp.isfinite(d) and d > 0.0:
        inv = 1.0 / wp.max(d, 1.0e-6)
    return inv


@wp.kernel
def _inv_depth_range_kernel(depth: wp.array(dtype=wp.float32), out: wp.array(dtype=wp.float32)):
    # one thread: the smallest and largest inverse of a valid depth, and whether there was any
    lo = float(wp.inf)
    hi = float(-wp.inf)
    seen = float(0.0)
    for p in range(depth.shape[0]):
        inv = _inv_depth(depth[p])
        if inv > 0.0:
            lo = wp.min(lo, inv)
            hi = wp.max(hi, inv)
            seen = 1.0
    out[0] = lo
    out[1] = hi
    out[2] = seen


@wp.kernel
def _depth_u8_kernel(depth: wp.array(dtype=wp.float32), lo: float, span: float, scale: float,
                     floor: float, mode: int, block: int, out: wp.array2d(dtype=wp.uint8)):
    # mode 0: no valid pixel in the clip (all 0); 1: normalised inverse depth; 2: one depth (1)
    start = wp.tid() * block
    for p in range(start, wp.min(start + block, depth.shape[0])):
        inv = _inv_depth(depth[p])
        val = float(0.0)
        if mode > 0 and inv > 0.0:
            if mode == 1:
                x = inv - lo
                x = x * scale
                x = x / span
                val = x + floor
            else:
                val = 1.0
        q = _u8(val)
        for c in range(3):
            out[p, c] = q


@wp.kernel
def _normal_u8_kernel(normal: wp.array2d(dtype=wp.float32), block: int,
                      out: wp.array2d(dtype=wp.uint8)):
    start = wp.tid() * block
    for p in range(start, wp.min(start + block, normal.shape[0])):
        empty = normal[p, 0] == 0.0 and normal[p, 1] == 0.0 and normal[p, 2] == 0.0
        for c in range(3):
            q = wp.uint8(0)
            if not empty:
                x = normal[p, c] * -0.5
                q = _u8(x + 0.5)
            out[p, c] = q


@wp.kernel
def _ids_u8_kernel(ids: wp.array(dtype=wp.int32), lut: wp.array2d(dtype=wp.uint8), block: int,
                   out: wp.array2d(dtype=wp.uint8)):
    start = wp.tid() * block
    for p in range(start, wp.min(start + block, ids.shape[0])):
        i = ids[p]
        k = int(0)
        if i > 0:
            k = (i - 1) % 255 + 1
        for c in range(3):
            out[p, c] = lut[k, c]


@wp.func
def _flow_mag(u: float, v: float) -> float:
    """sqrt(u * u + v * v) in the reference's operations: the clip's largest and each pixel's
    come from here, so the largest flow has rad exactly 1."""
    uu = u * u
    vv = v * v
    return wp.sqrt(uu + vv)


@wp.kernel
def _flow_peak_kernel(flow: wp.array2d(dtype=wp.float32), out: wp.array(dtype=wp.float32)):
    # one thread: the largest magnitude
    peak = float(0.0)
    for p in range(flow.shape[0]):
        peak = wp.max(peak, _flow_mag(flow[p, 0], flow[p, 1]))
    out[0] = peak


@wp.func
def _flow_u8(flow: wp.array2d(dtype=wp.float32), bits: wp.array2d(dtype=wp.int32), p: int,
             norm: float, pi: float, wheel: wp.array2d(dtype=wp.float32),
             out: wp.array2d(dtype=wp.uint8)):
    u = flow[p, 0]
    v = flow[p, 1]
    if u == 0.0 and v == 0.0:  # no motion: white, as rad = 0
        for c in range(3):
            out[p, c] = wp.uint8(255)
    else:
        rad = _flow_mag(u, v) / norm
        ncols = wheel.shape[0]
        a = wp.atan2(-v, -u)
        if v == 0.0 and u > 0.0:
            # Warp negates as 0 - x (no -0.0): torch's atan2(-v, -u) is -pi for v = +0, pi for -0
            # (``bits``: the flow's bit pattern, the sign of v's zero)
            a = wp.where(bits[p, 1] >= 0, -pi, pi)
        fk = a / pi
        fk = fk + 1.0
        fk = fk / 2.0
        fk = fk * float(ncols - 1)
        k0f = wp.clamp(wp.floor(fk), 0.0, float(ncols - 1))
        f = fk - k0f
        g = 1.0 - f
        k0 = int(k0f)
        k1 = (k0 + 1) % ncols
        for c in range(3):
            a = wheel[k0, c] * g
            b = wheel[k1, c] * f
            col = a + b
            val = col * 0.75
            if rad <= 1.0:
                t = 1.0 - col
                t = t * rad
                val = 1.0 - t
            out[p, c] = _u8(val)


@wp.kernel
def _flow_u8_kernel(flow: wp.array2d(dtype=wp.float32), bits: wp.array2d(dtype=wp.int32),
                    norm: float, pi: float, wheel: wp.array2d(dtype=wp.float32), block: int,
                    out: wp.array2d(dtype=wp.uint8)):
    start = wp.tid() * block
    for p in range(start, wp.min(start + block, flow.shape[0])):
        _flow_u8(flow, bits, p, norm, pi, wheel, out)


def _arr(x: Tensor, dtype: torch.dtype = torch.float32, vec3: bool = False) -> wp.array:
    """A CPU tensor as a Warp array of ``dtype`` (converted and made contiguous only if needed),
    of ``wp.vec3`` rows with ``vec3``; the kernels write through outputs passed this way."""
    return wp.from_torch(x.to(dtype).contiguous(), dtype=wp.vec3 if vec3 else None)


def _rigid(view: Tensor) -> tuple[wp.mat33, wp.vec3]:
    """A [4, 4] transform's rotation and translation as Warp values."""
    m = view.detach().to("cpu", torch.float64)
    return (wp.mat33(*[float(x) for x in m[:3, :3].reshape(-1).tolist()]),
            wp.vec3(*[float(x) for x in m[:3, 3].tolist()]))


def zbuffer(screen: Tensor, height: int, width: int,
            depth_only: bool = False) -> tuple[Tensor, Tensor | None]:
    """``mesh_raster._rasterize_reference`` compiled: nearest depth [H, W] (+inf where empty) and
    sub-triangle index [H, W] int64 (-1 where empty; None with ``depth_only``), bit for bit."""
    _start()
    depth = torch.full((height * width,), float("inf"), device="cpu")
    index = torch.full((height * width,), -1, dtype=torch.int32, device="cpu")
    if screen.shape[0]:
        wp.launch(_zbuffer_kernel, dim=1, device="cpu",
                  inputs=[_arr(screen), height, width, _arr(depth), _arr(index, torch.int32),
                          int(depth_only)])
    if depth_only:
        return depth.view(height, width), None
    return depth.view(height, width), index.view(height, width).to(torch.int64)


def resolve(screen: Tensor, weights: Tensor, sub_face: Tensor, clipped: bool,
            index: Tensor) -> tuple[Tensor, Tensor]:
    """Face id [H, W] int64 and barycentrics [H, W, 3] of each pixel's winning sub-triangle
    (``mesh_raster._resolve``)."""
    _start()
    height, width = index.shape
    n = height * width
    face_id = torch.empty(n, dtype=torch.int64, device="cpu")
    bary = torch.zeros(n, 3, dtype=torch.float32, device="cpu")
    if n:
        wp.launch(_resolve_kernel, dim=n, device="cpu",
                  inputs=[_arr(screen), _arr(weights), _arr(sub_face, torch.int64),
                          int(clipped), width, _arr(index.reshape(-1), torch.int32),
                          _arr(face_id, torch.int64), _arr(bary)])
    return face_id.view(height, width), bary.view(height, width, 3)


def interpolate(attrs: Tensor, faces: Tensor, face_id: Tensor, bary: Tensor) -> Tensor:
    """``mesh_raster.interpolate`` for float32 attributes [V, C]: [*face_id.shape, C], 0 where
    empty."""
    _start()
    n, channels = face_id.numel(), attrs.shape[-1]
    out = torch.zeros(n, channels, dtype=torch.float32, device="cpu")
    if n and channels:
        wp.launch(_interpolate_kernel, dim=n, device="cpu",
                  inputs=[_arr(attrs), _arr(faces, torch.int64),
                          _arr(face_id.reshape(-1), torch.int64), _arr(bary.reshape(-1, 3)),
                          _arr(out)])
    return out.view(*face_id.shape, channels)


def oriented_normals(n: Tensor | None, point: Tensor, face_n: Tensor, face_id: Tensor,
                     tilt: float) -> Tensor:
    """``mesh_raster.orient_normals(n, point, face_n[face_id])`` for pixels [...] (``n`` None:
    each pixel's face normal): unit normals facing the camera, 0 where ``face_id`` is -1."""
    _start()
    shape = face_id.shape
    out = torch.zeros(face_id.numel(), 3, dtype=torch.float32, device="cpu")
    point = point.reshape(-1, 3)
    if out.shape[0]:
        wp.launch(_orient_kernel, dim=out.shape[0], device="cpu",
                  inputs=[_arr(point if n is None else n.reshape(-1, 3), vec3=True),
                          _arr(point, vec3=True), _arr(face_n, vec3=True),
                          _arr(face_id.reshape(-1), torch.int64), int(n is None), float(tilt),
                          _arr(out, vec3=True)])
    return out.view(*shape, 3)


def project(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmat: Tensor,
            K: Tensor, width: int, height: int, near: float, far: float, eps2d: float,
            alpha_min: float, extent_max: float, lims: tuple[float, float, float, float]
            ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``gaussian_raster._project`` compiled, one Gaussian per thread: means2d [N, 2], conics
    [N, 3], radii [N, 2] int32 (0 = culled), camera-space means [N, 3] and rotations [N, 3, 3];
    equal to rounding (``lims``: the Jacobian's clamp on x / z and y / z, + and - for each)."""
    _start()
    n = means.shape[0]
    means2d = torch.empty(n, 2, dtype=torch.float32, device="cpu")
    conics = torch.empty(n, 3, dtype=torch.float32, device="cpu")
    radii = torch.empty(n, 2, dtype=torch.int32, device="cpu")
    means_c = torch.empty(n, 3, dtype=torch.float32, device="cpu")
    rot_c = torch.empty(n, 3, 3, dtype=torch.float32, device="cpu")
    if n:
        k = K.detach().to("cpu", torch.float64)
        wp.launch(_project_kernel, dim=n, device="cpu",
                  inputs=[_arr(means, vec3=True), wp.from_torch(quats.float().contiguous(),
                                                                  dtype=wp.vec4),
                          _arr(scales, vec3=True), _arr(opacities.reshape(-1)), *_rigid(viewmat),
                          wp.vec4(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])),
                          wp.vec4(*[float(v) for v in lims]), int(width), int(height),
                          float(near), float(far), float(eps2d), float(alpha_min),
                          float(extent_max), _arr(means2d), _arr(conics), _arr(radii, torch.int32),
                          _arr(means_c, vec3=True),
                          wp.from_torch(rot_c, dtype=wp.mat33)])
    return means2d, conics, radii, means_c, rot_c


def pcf_lookup(depth: Tensor, u: Tensor, v: Tensor, z: Tensor, bias: Tensor, pcf: int,
               clamp: bool) -> Tensor:
    """``shadow._lookup`` compiled: the fraction of the (2 pcf + 1)^2 taps around each point's
    texel [M] whose map depth reaches the point, 1 off the map; bit for bit."""
    _start()
    out = torch.empty(z.shape[0], dtype=torch.float32, device="cpu")
    if out.shape[0]:
        wp.launch(_pcf_kernel, dim=out.shape[0], device="cpu",
                  inputs=[_arr(depth), _arr(u), _arr(v), _arr(z), _arr(bias), int(pcf),
                          int(clamp), _arr(out)])
    return out


def depth_order(depths: Tensor) -> Tensor:
    """``torch.argsort(depths, stable=True)`` [N] int64 for the positive depths among
    ``depths`` [N] float32 (the others, which binning skips, come first): each depth's bits
    (positive floats order like them) above its index make unique int64 keys, whose plain sort
    is the stable order; numpy's int64 sort is 5-8x faster than torch's stable argsort."""
    n = depths.shape[0]
    bits = depths.to(torch.float32).contiguous().view(torch.int32)
    keys = (bits.to(torch.int64) << 32) | torch.arange(n, device="cpu")
    return torch.from_numpy(np.sort(keys.numpy()) & 0xFFFFFFFF)


def bin_tiles(means2d: Tensor, radii: Tensor, depths: Tensor, tiles_x: int, tiles_y: int,
              tile_size: int) -> tuple[Tensor, Tensor]:
    """``gaussian_raster._bin_tiles`` without sorting the (tile, Gaussian) pairs: Gaussians are
    sorted once by depth, then counted into their tiles and written in that order. The same
    offsets [n_tiles + 1] int64 and lists [M] int32, exactly."""
    _start()
    n_tiles = tiles_x * tiles_y
    order = depth_order(depths)
    counts = torch.zeros(n_tiles, dtype=torch.int64, device="cpu")
    args = [_arr(means2d), _arr(radii), _arr(order, torch.int64), tiles_x, tiles_y,
            int(tile_size)]
    empty = torch.zeros(0, dtype=torch.int32, device="cpu")
    wp.launch(_bin_kernel, dim=1, device="cpu",
              inputs=[*args, 0, _arr(counts, torch.int64), _arr(empty, torch.int32)])
    offsets = torch.zeros(n_tiles + 1, dtype=torch.int64, device="cpu")
    torch.cumsum(counts, 0, out=offsets[1:])
    flat_ids = torch.empty(int(offsets[-1]), dtype=torch.int32, device="cpu")
    cursor = offsets[:-1].clone()
    wp.launch(_bin_kernel, dim=1, device="cpu",
              inputs=[*args, 1, _arr(cursor, torch.int64), _arr(flat_ids, torch.int32)])
    return offsets, flat_ids


def composite(params: Tensor, payload: Tensor, offsets: Tensor, flat_ids: Tensor, width: int,
              height: int, tiles_x: int, tile_size: int, alpha_floor: float,
              track_best: bool = True, t_stop: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """``gaussian_raster._composite_reference`` compiled, one pixel at a time front to back:
    acc [H, W, D], transmittance [H, W], best Gaussian [H, W] (-1 without ``track_best``);
    equal to rounding (``t_stop`` as there)."""
    _start()
    n, d = height * width, payload.shape[1]
    acc = torch.zeros(n, d, dtype=torch.float32, device="cpu")
    trans = torch.empty(n, dtype=torch.float32, device="cpu")
    best = torch.empty(n, dtype=torch.int64, device="cpu")
    if n:
        wp.launch(_composite_kernel, dim=n, device="cpu",
                  inputs=[_arr(params), _arr(payload), _arr(offsets, torch.int64),
                          _arr(flat_ids, torch.int32), width, tiles_x, int(tile_size),
                          float(alpha_floor), int(track_best), float(t_stop), _arr(acc),
                          _arr(trans), _arr(best, torch.int64)])
    return acc.view(height, width, d), trans.view(height, width), best.view(height, width)


def shade(points: Tensor, normal: Tensor, albedo: Tensor, specular: Tensor, roughness: Tensor,
          mask: Tensor, lights: Tensor, env: Tensor, has_sh: bool,
          visibility: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``shading._shade_reference`` compiled, one pixel at a time over all lights (packed as the
    Triton kernel takes them: ``lights`` [L, 12], ``env`` [30]): shading [H, W], irradiance and
    rgb [H, W, 3], 0 outside ``mask``; equal to rounding."""
    _start()
    shape = normal.shape[:-1]
    n = normal[..., 0].numel()
    shading = torch.empty(n, dtype=torch.float32, device="cpu")
    irr = torch.empty(n, 3, dtype=torch.float32, device="cpu")
    rgb = torch.empty(n, 3, dtype=torch.float32, device="cpu")
    vis = (visibility.reshape(-1, n) if visibility is not None
           else torch.ones(1, 1, device="cpu"))
    if n:
        wp.launch(_shade_kernel, dim=n, device="cpu",
                  inputs=[*[_arr(x.reshape(n, 3), vec3=True) for x in (points, normal, albedo)],
                          _arr(specular.reshape(n)), _arr(roughness.reshape(n)),
                          _arr(mask.reshape(n), torch.int8), _arr(lights), _arr(env),
                          int(has_sh), _arr(vis), int(visibility is not None), _arr(shading),
                          _arr(irr, vec3=True), _arr(rgb, vec3=True)])
    return shading.view(shape), irr.view(*shape, 3), rgb.view(*shape, 3)


def shadow_test(points: Tensor, mask: Tensor, normals: Tensor | None, view: Tensor,
                proj: tuple[float, float, float, float], ortho: bool, light: Tensor,
                bias: float | None, default_slope: float, depth: Tensor, pcf: int,
                clamp: bool) -> Tensor:
    """``shadow.shadow_visibility``'s test of one map for every pixel in one pass: each masked
    world point [..., 3] taken into the light's view (``view`` [4, 4], orthographic scale or
    pinhole intrinsics ``proj``), its bias (``bias``, or one texel plus the depth change of its
    slope to the light: ``light`` is the unit direction towards it for an orthographic view, its
    position for a pinhole one) and the PCF lookup (``shadow._lookup``). Returns [...] fraction
    lit, 1 off the mask; equal to the reference up to a tap at rounding distance."""
    _start()
    shape = mask.shape
    n = mask.numel()
    out = torch.empty(n, dtype=torch.float32, device="cpu")
    if n:
        pts = points.reshape(n, 3)
        wp.launch(_shadow_test_kernel, dim=n, device="cpu",
                  inputs=[_arr(pts, vec3=True), _arr(mask.reshape(n), torch.int8),
                          _arr(pts if normals is None else normals.reshape(n, 3), vec3=True),
                          int(normals is not None),
                          *_rigid(view), wp.vec4(*[float(x) for x in proj]), int(ortho),
                          wp.vec3(*[float(x) for x in light.reshape(3).tolist()]),
                          -1.0 if bias is None else float(bias), float(default_slope),
                          _arr(depth), int(pcf), int(clamp), _arr(out)])
    return out.view(shape)


def pixel_motion(channels: Tensor, col: int, hit: Tensor, viewmat: Tensor, K: Tensor,
                 near: float) -> Tensor:
    """Each hit pixel's world point (``channels`` [H, W, C] at ``col:col + 3``) projected by
    another frame's camera (``viewmat``, ``K``), minus the pixel centre: [H, W, 2] motion in
    pixels, 0 where not hit or not in front of that camera (``renderer._pixel_motion``)."""
    _start()
    height, width, c = channels.shape
    n = height * width
    out = torch.empty(n, 2, dtype=torch.float32, device="cpu")
    if n:
        k = K.to(torch.float64).tolist()
        wp.launch(_motion_kernel, dim=n, device="cpu",
                  inputs=[_arr(channels.reshape(n, c)), int(col), _arr(hit.reshape(n), torch.int8),
                          *_rigid(viewmat), wp.vec3(*k[0]), wp.vec3(*k[1]), float(near), width,
                          _arr(out)])
    return out.view(height, width, 2)


def affine_reciprocal_(x: Tensor, a: float, b: float) -> Tensor:
    """``x`` replaced by ``a - b / x`` where finite (the orthographic shadow map's depth from its
    pinhole stand-in, ``shadow.mesh_depth_fn``), in place; returns ``x``."""
    _start()
    if x.numel():
        flat = x.view(-1)
        assert flat.is_contiguous() and flat.dtype == torch.float32
        wp.launch(_affine_reciprocal_kernel, dim=flat.numel(), device="cpu",
                  inputs=[wp.from_torch(flat), float(a), float(b)])
    return x


#: Pixels per Warp thread in the uint8 encodings: a CPU launch's cost per thread is most of a
#: simple pixel's (1.7x faster than a thread per pixel on a 720p clip).
_PX_BLOCK = 256


def _blocks(n: int) -> int:
    return -(-n // _PX_BLOCK)


def _u8_out(shape: torch.Size) -> tuple[Tensor, wp.array]:
    out = torch.empty(*shape, 3, dtype=torch.uint8, device="cpu")
    return out, wp.from_torch(out.view(-1, 3))


def clamp_uint8(x: Tensor, grey: bool = False) -> Tensor:
    """``to_uint8(x.clamp(0, 1))`` of float32 [..., 3] (``grey``: [...], repeated in 3 channels):
    uint8 [..., 3], bit for bit."""
    _start()
    shape = x.shape if grey else x.shape[:-1]
    out, dst = _u8_out(shape)
    if out.numel():
        n = out.shape[:-1].numel()
        wp.launch(_clamp_u8_kernel, dim=_blocks(n), device="cpu",
                  inputs=[_arr(x.reshape(-1, 1 if grey else 3)), _PX_BLOCK, dst])
    return out


def inverse_depth_range(depth: Tensor) -> tuple[float, float] | None:
    """``encodings.inverse_depth_range(depth)`` in one pass, exactly: the smallest and largest
    1 / depth over the finite depth > 0 (clamped to 1e-6), None where there is none."""
    _start()
    out = torch.zeros(3, dtype=torch.float32, device="cpu")
    if depth.numel():
        wp.launch(_inv_depth_range_kernel, dim=1, device="cpu",
                  inputs=[_arr(depth.reshape(-1)), _arr(out)])
    lo, hi, seen = out.tolist()
    return (lo, hi) if seen else None


def depth_uint8(depth: Tensor, inv_range: tuple[float, float] | None, floor: float) -> Tensor:
    """``to_uint8`` of ``encodings._depth_to_control_reference(depth, inv_range=inv_range)`` in
    3 channels (the clip's range; None: no valid pixel): uint8 [..., 3], the same float32
    operations."""
    _start()
    out, dst = _u8_out(depth.shape)
    mode, lo, span = 0, 0.0, 1.0
    if inv_range is not None:
        lo32, hi32 = torch.tensor(inv_range, dtype=torch.float32)
        mode = 1 if float(hi32 - lo32) > 1e-8 else 2
        lo, span = float(lo32), float(hi32 - lo32)
    if out.numel():
        wp.launch(_depth_u8_kernel, dim=_blocks(depth.numel()), device="cpu",
                  inputs=[_arr(depth.reshape(-1)), lo, span, 1.0 - floor, floor, mode, _PX_BLOCK,
                          dst])
    return out


def normal_uint8(normal: Tensor) -> Tensor:
    """``to_uint8`` of ``encodings._normal_to_control_reference(normal)``: uint8 [..., 3]."""
    _start()
    out, dst = _u8_out(normal.shape[:-1])
    if out.numel():
        wp.launch(_normal_u8_kernel, dim=_blocks(out.shape[:-1].numel()), device="cpu",
                  inputs=[_arr(normal.reshape(-1, 3)), _PX_BLOCK, dst])
    return out


def ids_uint8(ids: Tensor, lut: Tensor) -> Tensor:
    """int32 ids [...] to the colours of the uint8 palette ``lut`` [256, 3] as
    ``encodings.ids_to_color`` picks them: uint8 [..., 3], exactly."""
    _start()
    out, dst = _u8_out(ids.shape)
    if out.numel():
        wp.launch(_ids_u8_kernel, dim=_blocks(ids.numel()), device="cpu",
                  inputs=[_arr(ids.reshape(-1), torch.int32), wp.from_torch(lut.contiguous()),
                          _PX_BLOCK, dst])
    return out


def flow_uint8(flow: Tensor, wheel: Tensor, min_norm: float = 0.0) -> Tensor:
    """``to_uint8`` of ``encodings._flow_to_color_reference(flow, max_norm)`` (colour ``wheel``
    [N, 3]) with ``max_norm`` the largest magnitude in ``flow``, at least ``min_norm``: uint8
    [..., 3]. The reference's float32 operations, with Warp's atan2 and square root for torch's
    (a pixel at a rounding boundary may differ by one level); the largest magnitude is taken
    with the same square root as each pixel's, so the largest flow is drawn at full colour."""
    _start()
    out, dst = _u8_out(flow.shape[:-1])
    flat_t = flow.reshape(-1, 2).float().contiguous()
    flat = wp.from_torch(flat_t)
    peak = torch.zeros(1, dtype=torch.float32, device="cpu")
    if out.numel():
        wp.launch(_flow_peak_kernel, dim=1, device="cpu", inputs=[flat, _arr(peak)])
        wp.launch(_flow_u8_kernel, dim=_blocks(out.shape[:-1].numel()), device="cpu",
                  inputs=[flat, wp.from_torch(flat_t.view(torch.int32)),
                          float(max(float(peak), float(min_norm), 1e-8)),
                          float(torch.tensor(math.pi, dtype=torch.float32)), _arr(wheel),
                          _PX_BLOCK, dst])
    return out


def warmup() -> None:
    """Compiles (and caches in ``~/.cache/warp``) this module's kernels: one tiny triangle through
    each. Run once at install time."""
    screen = torch.tensor([[0.2, 0.2, 3.8, 0.4, 1.0, 3.5, 1.0, 1.0, 1.0]])
    _, index = zbuffer(screen, 4, 4)
    face_id, bary = resolve(screen, torch.eye(3)[None], torch.zeros(1, dtype=torch.int64), True,
                            index)
    interpolate(torch.ones(3, 2), torch.tensor([[0, 1, 2]]), face_id, bary)
    oriented_normals(None, torch.ones(4, 4, 3), torch.ones(1, 3), face_id, 1e-3)
    one = torch.ones(1)
    pcf_lookup(torch.ones(2, 2), one, one, one, one * 0.1, 1, False)
    offsets, flat_ids = bin_tiles(torch.tensor([[2.0, 2.0]]), torch.tensor([[2.0, 2.0]]), one,
                                  2, 2, 2)
    params = torch.tensor([[2.0, 2.0, 0.5, 0.0, 0.5, -0.1]])
    composite(params, torch.ones(1, 2), offsets, flat_ids, 4, 4, 2, 2, 1.0 / 256.0)
    shadow_test(torch.ones(2, 3), torch.ones(2, dtype=torch.bool), None, torch.eye(4),
                (1.0, 1.0, 0.0, 0.0), True, torch.tensor([0.0, 0.0, 1.0]), None, 1.7,
                torch.ones(2, 2), 1, False)
    pixel_motion(torch.ones(2, 2, 4), 1, torch.ones(2, 2, dtype=torch.bool), torch.eye(4),
                 torch.eye(3), 0.01)
    affine_reciprocal_(torch.ones(3), 2.0, 1.0)
    unit = torch.ones(2, 2, 3)
    shade(unit, unit, unit, torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool),
          torch.ones(1, 12), torch.ones(30), True, torch.ones(1, 2, 2))
    project(torch.ones(1, 3), torch.ones(1, 4), torch.ones(1, 3), one, torch.eye(4), torch.eye(3),
            4, 4, 0.01, 100.0, 0.3, 1.0 / 255.0, 3.33, (1.0, 1.0, 1.0, 1.0))
    depth = torch.ones(1, 2, 2)
    depth_uint8(depth, inverse_depth_range(depth), 0.05)
    normal_uint8(unit)
    ids_uint8(torch.ones(2, 2, dtype=torch.int32), torch.zeros(256, 3, dtype=torch.uint8))
    clamp_uint8(unit)
    flow_uint8(torch.ones(2, 2, 2), torch.ones(55, 3), 1.0)
