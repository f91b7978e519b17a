"""3D Gaussian clouds: the 3DGS ``.ply`` format in and out, and clouds built from code.

A `GaussianCloud` holds activated parameters (linear scales, opacities in [0, 1], unit
quaternions (w, x, y, z)), which is what renderers and physics consume. The ``.ply`` files keep
the layout of the original 3D Gaussian Splatting code, so its viewers and trainers read ours
and we read theirs:

    x y z  nx ny nz  f_dc_0..2  f_rest_0..(3(K-1)-1)  opacity  scale_0..2  rot_0..3

all ``float`` (float32), binary little-endian, one ``vertex`` element. ``opacity`` is stored as a
logit, ``scale_*`` as natural logarithms, ``rot_*`` as (w, x, y, z) (3DGS stores them
unnormalised; we normalise on load). ``f_rest`` is channel-major: the K-1 higher-order
coefficients of red, then those of green, then those of blue.

Round trips: positions, quaternions and SH coefficients come back bit for bit; opacities and
scales pass through float32 logit / log and come back to within a few float32 ulps (the
transforms are done in float64, but a float32 logit or log cannot represent every float32
opacity or scale exactly).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from rendiff.engine.transforms import matrix_to_quat, quat_multiply, quat_to_matrix

__all__ = [
    "ISOTROPY",
    "SH_C0",
    "GaussianCloud",
    "splat_normals",
    "concat",
    "from_mesh",
    "from_points",
    "from_primitive",
    "check_ply",
    "load_ply",
    "save_ply",
]

SH_C0 = 0.28209479177387814
"""The degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): RGB = 0.5 + SH_C0 * dc."""

_LOGIT_LIMIT = 30.0  # sigmoid(+-30) rounds to float32 1.0 and ~1e-13: opacities 0 and 1 survive
_LOG_SCALE_MIN = -30.0


@dataclass
class GaussianCloud:
    """N anisotropic 3D Gaussians with spherical-harmonic colour.

    Attributes:
        means: Tensor      # [N, 3] float32 positions (world or local frame)
        quats: Tensor      # [N, 4] float32 unit quaternions (w, x, y, z), local -> world rotation
        scales: Tensor     # [N, 3] float32 linear standard deviations along the local axes
        opacities: Tensor  # [N] float32 in [0, 1]
        sh: Tensor         # [N, K, 3] float32 SH coefficients, K = (degree + 1)^2; sh[:, 0] is DC
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianCloud.{name} has shape {got}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(
                f"GaussianCloud.sh has shape {tuple(self.sh.shape)}, expected [N, K, 3]"
            )
        _sh_degree(self.sh.shape[1])

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        """The spherical-harmonic degree d, with K = (d + 1)^2 coefficients per channel."""
        return _sh_degree(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> GaussianCloud:
        """The same cloud with every tensor on `device`."""
        return GaussianCloud(
            self.means.to(device),
            self.quats.to(device),
            self.scales.to(device),
            self.opacities.to(device),
            self.sh.to(device),
        )

    def transformed(self, R: Tensor, t: Tensor) -> GaussianCloud:
        """The cloud moved by the rigid transform x -> R x + t.

        Means are rotated and translated and each quaternion is pre-multiplied by R's. The
        higher-order SH coefficients are left as they are (view-dependent colour keeps its
        original orientation); the DC term, which carries the base colour, is unaffected.

        Args:
            R: Tensor  # [3, 3] rotation matrix (det +1)
            t: Tensor  # [3] translation
        """
        R = torch.as_tensor(R, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device)
        eye = torch.eye(3, device=self.device)
        if R.shape != (3, 3) or not torch.allclose(R @ R.T, eye, atol=1e-4):
            raise ValueError("transformed: R must be a [3, 3] rotation matrix")
        if torch.linalg.det(R) < 0:
            raise ValueError("transformed: R is a reflection (det -1), not a rotation")
        q_r = matrix_to_quat(R[None])[0]
        quats = quat_multiply(q_r.expand_as(self.quats), self.quats)
        return GaussianCloud(
            self.means @ R.T + t,
            quats / quats.norm(dim=-1, keepdim=True),
            self.scales.clone(),
            self.opacities.clone(),
            self.sh.clone(),
        )

    def colors(self) -> Tensor:
        """Base RGB from the DC term, 0.5 + SH_C0 * dc, clamped to [0, 1].

        Returns:
            Tensor  # [N, 3] float32
        """
        return (0.5 + SH_C0 * self.sh[:, 0]).clamp(0.0, 1.0)


def concat(clouds: Sequence[GaussianCloud]) -> GaussianCloud:
    """One cloud holding all of `clouds` in order; lower SH degrees are zero-padded."""
    if not clouds:
        raise ValueError("concat: need at least one cloud")
    k = max(c.sh.shape[1] for c in clouds)
    device = clouds[0].device
    sh = []
    for c in clouds:
        pad = torch.zeros(len(c), k - c.sh.shape[1], 3, dtype=c.sh.dtype, device=device)
        sh.append(torch.cat([c.sh.to(device), pad], dim=1))
    return GaussianCloud(
        torch.cat([c.means.to(device) for c in clouds]),
        torch.cat([c.quats.to(device) for c in clouds]),
        torch.cat([c.scales.to(device) for c in clouds]),
        torch.cat([c.opacities.to(device) for c in clouds]),
        torch.cat(sh),
    )


def _sh_degree(k: int) -> int:
    d = math.isqrt(k) - 1
    if k < 1 or (d + 1) ** 2 != k:
        raise ValueError(f"{k} SH coefficients per channel is not (degree + 1)^2")
    return d


# ---------------------------------------------------------------------------------------------
# quaternions (w, x, y, z)



def _frames_to_quats(tangent: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Quaternions of frames x = tangent, y = normal x tangent, z = normal.  [N, 3] -> [N, 4]."""
    x = tangent / np.linalg.norm(tangent, axis=1, keepdims=True)
    z = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    x = x - (x * z).sum(1, keepdims=True) * z
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(z, x)
    R = torch.from_numpy(np.stack([x, y, z], axis=2))  # columns
    return matrix_to_quat(R.double()).numpy()


def _any_tangent(normal: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each normal.  [N, 3] -> [N, 3]."""
    helper = np.zeros_like(normal)
    use_x = np.abs(normal[:, 2]) > 0.9
    helper[use_x, 0] = 1.0
    helper[~use_x, 2] = 1.0
    t = np.cross(helper, normal)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# .ply


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _ply_property_names(k: int) -> list[str]:
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * (k - 1))]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def save_ply(cloud: GaussianCloud, path: str | Path) -> None:
    """Write `cloud` as a binary little-endian 3DGS ``.ply`` (layout in the module docstring)."""
    path = Path(path)
    n, k = len(cloud), cloud.sh.shape[1]
    names = _ply_property_names(k)
    data = np.zeros(n, dtype=[(name, "<f4") for name in names])
    means = cloud.means.detach().cpu().float().numpy()
    quats = cloud.quats.detach().cpu().float().numpy()
    sh = cloud.sh.detach().cpu().float().numpy()
    opac = cloud.opacities.detach().cpu().double().numpy()
    scales = cloud.scales.detach().cpu().double().numpy()
    for i, axis in enumerate("xyz"):
        data[axis] = means[:, i]
    for c in range(3):
        data[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    for i in range(rest.shape[1]):
        data[f"f_rest_{i}"] = rest[:, i]
    with np.errstate(divide="ignore"):
        logit = np.log(opac) - np.log1p(-opac)
        log_scale = np.log(scales)
    data["opacity"] = np.clip(logit, -_LOGIT_LIMIT, _LOGIT_LIMIT)
    for i in range(3):
        data[f"scale_{i}"] = np.maximum(log_scale[:, i], _LOG_SCALE_MIN)
    for i in range(4):
        data[f"rot_{i}"] = quats[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\n"
        + "".join(f"property float {name}\n" for name in names)
        + "end_header\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(data.tobytes())


def _parse_header(path: Path, raw: bytes) -> tuple[str, list[tuple[str, int, list]], int]:
    """Format, elements [(name, count, [(prop, dtype or None for lists)])], and data offset."""
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a .ply file (no 'ply' magic or no 'end_header')")
    newline = raw.find(b"\n", end)
    header = raw[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = None, []
    for line in header[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise ValueError(f"{path}: property before any element in the header")
            if words[1] == "list":
                elements[-1][2].append((words[-1], None))
            else:
                if words[1] not in _PLY_TYPES:
                    raise ValueError(f"{path}: unknown property type '{words[1]}'")
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise ValueError(f"{path}: unsupported .ply format '{fmt}'")
    return fmt, elements, newline + 1


def _read_vertices(path: Path) -> np.ndarray:
    """The ``vertex`` element of a .ply file as a structured array."""
    raw = path.read_bytes()
    fmt, elements, offset = _parse_header(path, raw)
    order = "<" if fmt == "binary_little_endian" else ">"
    if fmt == "ascii":
        lines = raw[offset:].decode("ascii").splitlines()
    for name, count, props in elements:
        if name == "vertex" and any(dt is None for _, dt in props):
            raise ValueError(f"{path}: list properties in the vertex element are not supported")
        if name != "vertex" and any(dt is None for _, dt in props):
            raise ValueError(f"{path}: element '{name}' before 'vertex' has list properties")
        dtype = np.dtype([(p, order + dt) for p, dt in props])
        if name != "vertex":
            if fmt == "ascii":
                lines = lines[count:]
            else:
                offset += count * dtype.itemsize
            continue
        if fmt == "ascii":
            table = np.array([row.split() for row in lines[:count]], dtype=np.float64)
            if table.shape != (count, len(props)):
                raise ValueError(f"{path}: expected {count} vertex rows of {len(props)} values")
            out = np.zeros(count, dtype=dtype)
            for i, (p, _) in enumerate(props):
                out[p] = table[:, i]
            return out
        if offset + count * dtype.itemsize > len(raw):
            raise ValueError(f"{path}: file is truncated ({count} vertices announced)")
        return np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    raise ValueError(f"{path}: no 'vertex' element")


#: The vertex properties of a 3DGS .ply file that rendiff needs.
_PLY_MAX_VERTICES = 5_000_000
_PLY_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
                 "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def check_ply(path: str | Path) -> None:
    """What can be known of a 3DGS ``.ply`` without loading it (scene validation): the header,
    the required vertex properties, a file long enough for the vertices it announces, and finite
    positions (read through a memory map). Raises ``ValueError`` naming the file."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    fmt, elements, offset = _parse_header(path, head)
    if fmt == "ascii":
        load_ply(path)
        return
    order = "<" if fmt == "binary_little_endian" else ">"
    for name, count, props in elements:
        if any(dt is None for _, dt in props):
            raise ValueError(f"{path}: list properties in element '{name}' are not supported")
        dtype = np.dtype([(p, order + dt) for p, dt in props])
        if name != "vertex":
            offset += count * dtype.itemsize
            continue
        missing = [p for p in _PLY_REQUIRED if p not in dtype.names]
        if missing:
            raise ValueError(f"{path}: missing vertex propert{'ies' if len(missing) > 1 else 'y'}"
                             f" {', '.join(repr(m) for m in missing)}")
        if count > _PLY_MAX_VERTICES:
            raise ValueError(f"{path}: {count:,} Gaussians (at most {_PLY_MAX_VERTICES:,}, as "
                             "a scene's Gaussians.count)")
        if offset + count * dtype.itemsize > path.stat().st_size:
            raise ValueError(f"{path}: file is truncated ({count} vertices announced)")
        if count:
            table = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
            if not all(np.isfinite(table[c]).all() for c in ("x", "y", "z")):
                raise ValueError(f"{path}: vertex positions hold NaN or inf")
        return
    raise ValueError(f"{path}: no 'vertex' element")


def load_ply(path: str | Path) -> GaussianCloud:
    """Read a 3DGS ``.ply`` (binary either endianness, or ascii) into a `GaussianCloud`.

    Raises:
        ValueError: naming the file and what is wrong (a missing property, an ``f_rest`` count
            that is not 3 ((d + 1)^2 - 1), a malformed header).
    """
    path = Path(path)
    v = _read_vertices(path)
    names = set(v.dtype.names or ())
    for name in _PLY_REQUIRED:
        if name not in names:
            raise ValueError(f"{path}: missing vertex property '{name}'")
    rest_ids = sorted(int(m.group(1)) for p in names if (m := re.fullmatch(r"f_rest_(\d+)", p)))
    if rest_ids != list(range(len(rest_ids))):
        raise ValueError(f"{path}: f_rest_* properties are not numbered 0..{len(rest_ids) - 1}")
    if len(rest_ids) % 3:
        raise ValueError(f"{path}: {len(rest_ids)} f_rest_* properties is not a multiple of 3")
    k = len(rest_ids) // 3 + 1
    try:
        _sh_degree(k)
    except ValueError as e:
        raise ValueError(f"{path}: {len(rest_ids)} f_rest_* properties: {e}") from None
    n = len(v)

    def cols(*props: str) -> np.ndarray:
        out = np.empty((n, len(props)), dtype=np.float64)
        for i, p in enumerate(props):
            out[:, i] = v[p]
        return out

    means = cols("x", "y", "z").astype(np.float32)
    dc = cols("f_dc_0", "f_dc_1", "f_dc_2").astype(np.float32)
    rest = cols(*[f"f_rest_{i}" for i in rest_ids]).astype(np.float32)
    sh = np.concatenate([dc[:, None, :], rest.reshape(n, 3, k - 1).transpose(0, 2, 1)], axis=1)
    opacities = (1.0 / (1.0 + np.exp(-cols("opacity")[:, 0]))).astype(np.float32)
    scales = np.exp(cols("scale_0", "scale_1", "scale_2")).astype(np.float32)
    rot64 = cols("rot_0", "rot_1", "rot_2", "rot_3")
    norm = np.linalg.norm(rot64, axis=1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError(f"{path}: a Gaussian has an all-zero rotation quaternion")
    rot = rot64.astype(np.float32)
    unnormalised = np.abs(norm[:, 0] - 1.0) > 1e-6  # keep already-unit values bit for bit
    rot[unnormalised] = (rot64[unnormalised] / norm[unnormalised]).astype(np.float32)
    return GaussianCloud(
        torch.from_numpy(means),
        torch.from_numpy(np.ascontiguousarray(rot)),
        torch.from_numpy(scales),
        torch.from_numpy(opacities),
        torch.from_numpy(np.ascontiguousarray(sh)),
    )


# ---------------------------------------------------------------------------------------------
# clouds from code


def _rgb_to_dc(rgb: np.ndarray) -> np.ndarray:
    return ((rgb - 0.5) / SH_C0).astype(np.float32)


def _broadcast_colors(colors: object, n: int, what: str) -> np.ndarray:
    c = np.asarray(_numpy(colors), dtype=np.float64)
    if c.shape == (3,):
        c = np.broadcast_to(c, (n, 3))
    if c.shape != (n, 3):
        raise ValueError(f"{what} must be [3] or [{n}, 3], got {c.shape}")
    return c


def _numpy(x: object) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _cloud(
    points: np.ndarray,
    quats: np.ndarray,
    scales: np.ndarray,
    opacity: float | np.ndarray,
    rgb: np.ndarray,
) -> GaussianCloud:
    n = points.shape[0]
    opac = np.broadcast_to(np.asarray(opacity, dtype=np.float32), (n,))
    return GaussianCloud(
        torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(quats, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(scales, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(opac)),
        torch.from_numpy(_rgb_to_dc(rgb)[:, None, :]),
    )


def from_points(
    points: Tensor | np.ndarray,
    colors: Tensor | np.ndarray | Sequence[float],
    scale: float | None = None,
    opacity: float = 0.9,
) -> GaussianCloud:
    """Isotropic degree-0 Gaussians at `points`.

    Args:
        points: [N, 3] positions.
        colors: [N, 3] or [3] RGB in [0, 1].
        scale: standard deviation of every Gaussian; None takes, per point, the RMS distance to
            its three nearest neighbours (the usual 3DGS initialisation), so clouds of any density
            cover their surface.
        opacity: opacity of every Gaussian.
    """
    pts = np.asarray(_numpy(points), dtype=np.float64).reshape(-1, 3)
    n = pts.shape[0]
    rgb = _broadcast_colors(colors, n, "colors")
    if scale is None:
        if n < 2:
            raise ValueError("from_points: give `scale` for fewer than two points")
        kk = min(4, n)
        d, _ = cKDTree(pts).query(pts, k=kk)
        s = np.sqrt(np.mean(d[:, 1:] ** 2, axis=1))
        s = np.maximum(s, 1e-7)
    else:
        s = np.full(n, float(scale))
    quats = np.zeros((n, 4))
    quats[:, 0] = 1.0
    return _cloud(pts, quats, np.repeat(s[:, None], 3, axis=1), opacity, rgb)


def _discs(
    points: np.ndarray,
    normals: np.ndarray,
    tangents: np.ndarray,
    area: float,
    thickness: float,
    opacity: float,
    rgb: np.ndarray,
) -> GaussianCloud:
    """Flat Gaussians on a surface: in-plane std from the sample spacing, short axis = normal."""
    n = points.shape[0]
    sigma = 0.5 * math.sqrt(area / max(n, 1))
    scales = np.tile([sigma, sigma, sigma * thickness], (n, 1))
    return _cloud(points, _frames_to_quats(tangents, normals), scales, opacity, rgb)


def from_mesh(
    verts: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    n: int,
    colors: Tensor | np.ndarray | Sequence[float] | None = None,
    vertex_colors: Tensor | np.ndarray | None = None,
    seed: int = 0,
    thickness: float = 0.1,
    opacity: float = 0.9,
) -> GaussianCloud:
    """`n` flat Gaussians sampled uniformly by area over a triangle mesh's surface.

    Each Gaussian is a disc in its triangle's plane: local x along the triangle's first edge,
    local z (the shortest axis) along the face normal (right-hand rule on the winding). The
    in-plane standard deviation is half the mean sample spacing sqrt(area / n); the normal-axis
    one is `thickness` times that.

    Args:
        verts: [V, 3] vertex positions.
        faces: [F, 3] vertex indices.
        n: number of Gaussians.
        colors: one RGB [3] or per-face RGB [F, 3] in [0, 1] (default mid grey).
        vertex_colors: per-vertex RGB [V, 3], interpolated barycentrically; overrides `colors`.
        seed: sampling seed (same seed, same cloud).
        thickness: ratio of the normal-axis scale to the in-plane scale.
        opacity: opacity of every Gaussian.
    """
    v = np.asarray(_numpy(verts), dtype=np.float64)
    f = np.asarray(_numpy(faces), dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    dbl_area = np.linalg.norm(cross, axis=1)
    total = dbl_area.sum() / 2
    if total <= 0:
        raise ValueError("from_mesh: the mesh has zero surface area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(f), size=n, p=dbl_area / dbl_area.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    w = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)  # uniform barycentric coordinates
    pts = w[:, :1] * a[face] + w[:, 1:2] * b[face] + w[:, 2:] * c[face]
    normals = cross[face] / dbl_area[face, None]
    tangents = b[face] - a[face]
    if vertex_colors is not None:
        vc = np.asarray(_numpy(vertex_colors), dtype=np.float64)
        if vc.shape != (len(v), 3):
            raise ValueError(f"vertex_colors must be [{len(v)}, 3], got {vc.shape}")
        rgb = np.einsum("nk,nkc->nc", w, vc[f[face]])
    elif colors is None:
        rgb = np.full((n, 3), 0.5)
    else:
        col = np.asarray(_numpy(colors), dtype=np.float64)
        if col.shape not in ((3,), (len(f), 3)):
            raise ValueError(f"colors must be [3] or per-face [{len(f)}, 3], got {col.shape}")
        rgb = col[face] if col.ndim == 2 else np.broadcast_to(col, (n, 3))
    return _discs(pts, normals, tangents, total, thickness, opacity, rgb)


def from_primitive(
    kind: str,
    n: int,
    seed: int = 0,
    color: Sequence[float] = (0.7, 0.7, 0.7),
    thickness: float = 0.1,
    opacity: float = 0.9,
    **size: float | Sequence[float],
) -> GaussianCloud:
    """`n` flat Gaussians sampled uniformly by area over an analytic surface centred at the origin.

    Shapes and their size keywords (defaults in brackets), all in metres:
        'sphere': radius [0.5]
        'box':    half_extents [(0.5, 0.5, 0.5)]
        'torus':  radius [0.5] (centre to tube centre, in the XY plane), tube [0.15]

    Each Gaussian is a disc tangent to the surface with its shortest axis along the outward
    normal, sized as in `from_mesh`.
    """
    rng = np.random.default_rng(seed)
    allowed = {"sphere": {"radius"}, "box": {"half_extents"}, "torus": {"radius", "tube"}}
    if kind not in allowed:
        raise ValueError(f"from_primitive: unknown kind '{kind}' (sphere, box, torus)")
    extra = set(size) - allowed[kind]
    if extra:
        raise ValueError(f"from_primitive('{kind}'): unknown size keyword(s) {sorted(extra)}")
    if kind == "sphere":
        r = float(size.get("radius", 0.5))
        normals = rng.standard_normal((n, 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        pts, area = r * normals, 4 * math.pi * r * r
    elif kind == "box":
        h = np.broadcast_to(np.asarray(size.get("half_extents", 0.5), dtype=np.float64), (3,))
        face_area = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]]) * 4
        probs = np.repeat(face_area, 2) / (2 * face_area.sum())  # faces +x, -x, +y, -y, +z, -z
        face = rng.choice(6, size=n, p=probs)
        axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
        pts = (rng.random((n, 3)) * 2 - 1) * h
        pts[np.arange(n), axis] = sign * h[axis]
        normals = np.zeros((n, 3))
        normals[np.arange(n), axis] = sign
        area = 2 * face_area.sum()
    else:
        big, small = float(size.get("radius", 0.5)), float(size.get("tube", 0.15))
        if small >= big:
            raise ValueError("from_primitive('torus'): tube must be smaller than radius")
        u_all, v_all = [], []
        while sum(len(u) for u in u_all) < n:  # rejection: area element is (R + r cos v)
            u, v = rng.random((2, 2 * n)) * 2 * math.pi
            keep = rng.random(2 * n) * (big + small) < big + small * np.cos(v)
            u_all.append(u[keep])
            v_all.append(v[keep])
        u, v = np.concatenate(u_all)[:n], np.concatenate(v_all)[:n]
        normals = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=1)
        ring = np.stack([np.cos(u), np.sin(u), np.zeros(n)], axis=1)
        pts = big * ring + small * normals
        area = 4 * math.pi**2 * big * small
    rgb = _broadcast_colors(color, n, "color")
    return _discs(pts, normals, _any_tangent(normals), area, thickness, opacity, rgb)


#: a Gaussian whose shortest scale is more than this fraction of its middle one has no
#: shortest axis worth calling its normal (a round splat: 3DGS's isotropic initialisation)
ISOTROPY = 0.7


def splat_normals(means: Tensor, quats: Tensor, scales: Tensor, k: int = 16) -> Tensor:
    """Each Gaussian's surface normal in its own frame, for shading and the normal layer.

    A flat splat's normal is its shortest axis. A near-isotropic one (shortest scale above
    :data:`ISOTROPY` of the middle one) has none: its normal is the cloud's local surface there,
    the direction of least spread of its ``k`` nearest neighbours' centres (PCA), turned away from
    the cloud's centroid, then expressed in the Gaussian's frame so that it turns with the
    Gaussian when the cloud moves or deforms.

    Args:
        means: Tensor  # [N, 3] centres (one frame, any world placement)
        quats: Tensor  # [N, 4] (w, x, y, z) local -> world
        scales: Tensor  # [N, 3] standard deviations
    Returns:
        Tensor  # [N, 3] float32 unit normals in each Gaussian's frame
    """
    n = means.shape[0]
    s, axis = scales.float().sort(dim=-1)
    out = torch.nn.functional.one_hot(axis[:, 0], 3).float()
    round_ = s[:, 0] > ISOTROPY * s[:, 1]
    if n < 4 or not bool(round_.any()):
        return out
    pts = means.detach().double().cpu().numpy()
    _, idx = cKDTree(pts).query(pts[round_.cpu().numpy()], k=min(k, n))
    nbr = torch.from_numpy(pts[idx])  # [M, k, 3]
    centred = nbr - nbr.mean(1, keepdim=True)
    _, vecs = torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # ascending eigenvalues
    normal = vecs[..., 0]  # least spread
    outward = torch.from_numpy(pts[round_.cpu().numpy()]) - torch.from_numpy(pts.mean(0))
    normal = torch.where(((normal * outward).sum(-1) < 0)[:, None], -normal, normal)
    R = quat_to_matrix(quats[round_].double().cpu())  # local -> world
    local = (R.transpose(1, 2) @ normal[..., None])[..., 0]
    out[round_.cpu()] = torch.nn.functional.normalize(local, dim=-1).float()
    return out.to(means.device)
