"""Real spherical harmonics (degree 0..3) for view-dependent Gaussian colour.

The basis, its ordering and signs follow 3D Gaussian Splatting and gsplat (Sloan, "Efficient
Spherical Harmonic Evaluation", JCGT 2013), so coefficients trained with either load unchanged.
Colour is ``max(sum_k c_k Y_k(d) + 0.5, 0)``: the +0.5 offset and the clamp are the 3DGS
convention (gsplat's ``rasterization`` applies them after ``spherical_harmonics``).

This is an elementwise op over a handful of coefficients; plain torch is as fast as a kernel
would be, so there is no Triton path.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SH_C0", "eval_sh", "num_sh_bases", "rgb_to_sh", "sh_to_color"]

SH_C0 = 0.28209479177387814
"""Constant of the degree-0 basis function Y_0^0 = 1 / (2 sqrt(pi))."""

_C1 = 0.4886025119029199
_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of basis functions up to and including ``degree``: (degree + 1)^2."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    return (degree + 1) ** 2


def _sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Basis functions at unit directions.

    Args:
        degree: highest degree, 0..3.
        dirs: Tensor  # [..., 3] unit vectors.

    Returns:
        Tensor  # [..., (degree + 1)^2]
    """
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Evaluate SH coefficients in the given directions (no offset, no clamp).

    Args:
        degree: highest degree used, 0..3; coefficients past (degree + 1)^2 are ignored, so a
            model trained to degree 3 can be rendered at a lower degree.
        dirs: Tensor  # [..., 3] directions, need not be normalised (zero vectors give the
            degree-0 term only).
        coeffs: Tensor  # [..., K, 3] with K >= (degree + 1)^2.

    Returns:
        Tensor  # [..., 3]
    """
    n = num_sh_bases(degree)
    if coeffs.shape[-2] < n:
        raise ValueError(f"degree {degree} needs {n} coefficients, got {coeffs.shape[-2]}")
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    basis = _sh_basis(degree, dirs).to(coeffs.dtype)
    return (basis[..., None] * coeffs[..., :n, :]).sum(dim=-2)


def sh_to_color(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """View-dependent colour as 3DGS renders it: ``max(eval_sh(...) + 0.5, 0)``.

    Args:
        degree: highest degree used, 0..3.
        dirs: Tensor  # [..., 3] from the camera centre towards each Gaussian.
        coeffs: Tensor  # [..., K, 3]

    Returns:
        Tensor  # [..., 3]
    """
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Degree-0 coefficient that ``sh_to_color`` maps back to ``rgb``.

    Args:
        rgb: Tensor  # [..., 3]

    Returns:
        Tensor  # [..., 3], to be placed at basis index 0 of a [..., K, 3] coefficient tensor.
    """
    return (rgb - 0.5) / SH_C0
