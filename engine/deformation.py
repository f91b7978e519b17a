"""4D Gaussians: Gaussian-Flow's dual-domain deformation model (DDDM) on a `GaussianCloud`.

Each Gaussian of a canonical cloud carries, for ten channels

    0-2  dx, dy, dz            position residual (metres)
    3-6  dqw, dqx, dqy, dqz    quaternion residual
    7-9  dr, dg, db            base-colour residual (RGB units)

a residual r(t') = (1/L) sum_{l<L} [a_l t'^l + b_l sin(2 pi l t') + c_l cos(2 pi l t')] with
t' = s t + o - tau_i (see `rendiff.kernels.dddm`, which evaluates it). At time t the deformed
Gaussian has mean mu + r_xyz, rotation normalise(q + r_q) and DC colour dc + r_rgb / SH_C0 (the
residual is added in RGB space; opacity, scales and higher SH are not deformed, as in the paper).

Files: a DDDM is stored next to its cloud's ``.ply`` as a ``.npz`` (by convention the same stem,
``scene.ply`` + ``scene.dddm.npz``) holding float32 arrays ``poly``, ``sin``, ``cos`` [N, L, 10],
``tau`` [N], float64 scalars ``time_scale``, ``time_offset`` and the string ``format`` =
``rendiff-dddm-1``. The .ply stays a plain 3DGS file that every 3DGS tool reads: it holds the
canonical cloud (for a fitted DDDM, the state at `fit_dddm`'s reference frame).

Fitting (`fit_dddm`) turns per-frame trajectories (e.g. from the physics simulation) into a DDDM:
for fixed tau, s and o the residual is linear in (a, b, c), so ``method='lstsq'`` solves one
least-squares problem whose design matrix is shared by all Gaussians; ``method='adam'`` refines
that solution by gradient descent on all coefficients and the time centres tau, optionally with
the paper's k-nearest-neighbour rigidity loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from rendiff.engine.gaussians import SH_C0, GaussianCloud
from rendiff.engine.transforms import quat_to_matrix
from rendiff.kernels.dddm import dddm_residual

__all__ = ["DDDM", "NUM_CHANNELS", "deform", "fit_dddm", "load_dddm", "save_dddm"]

NUM_CHANNELS = 10
"""Channels of a DDDM: position (3), quaternion (4), base colour (3)."""

_POS, _ROT, _RGB = slice(0, 3), slice(3, 7), slice(7, 10)
_FORMAT = "rendiff-dddm-1"


@dataclass
class DDDM:
    """Per-Gaussian dual-domain deformation coefficients.

    Attributes:
        poly: Tensor  # [N, L, 10] float32 polynomial coefficients a_l
        sin: Tensor   # [N, L, 10] float32 sine coefficients b_l
        cos: Tensor   # [N, L, 10] float32 cosine coefficients c_l
        tau: Tensor   # [N] float32 per-Gaussian time centres
        time_scale: global s in t' = s t + o - tau (1 / clip duration after `fit_dddm`)
        time_offset: global o

    Terms b_0 (sin 0 = 0) and c_0 (a constant, like a_0) are redundant; `fit_dddm` leaves them 0.
    """

    poly: Tensor
    sin: Tensor
    cos: Tensor
    tau: Tensor
    time_scale: float = 1.0
    time_offset: float = 0.0

    def __post_init__(self) -> None:
        self.time_scale, self.time_offset = float(self.time_scale), float(self.time_offset)
        if self.poly.ndim != 3 or self.poly.shape[2] != NUM_CHANNELS:
            raise ValueError(
                f"DDDM.poly must be [N, L, {NUM_CHANNELS}], got {tuple(self.poly.shape)}"
            )
        for name in ("sin", "cos"):
            if getattr(self, name).shape != self.poly.shape:
                raise ValueError(f"DDDM.{name} must match poly's shape {tuple(self.poly.shape)}")
        if self.tau.shape != self.poly.shape[:1]:
            raise ValueError(
                f"DDDM.tau must be [{self.poly.shape[0]}], got {tuple(self.tau.shape)}"
            )

    def __len__(self) -> int:
        return self.poly.shape[0]

    @property
    def num_terms(self) -> int:
        """L, the number of terms of each family."""
        return self.poly.shape[1]

    @property
    def num_params(self) -> int:
        """Stored numbers: 3 * N * L * 10 coefficients, N time centres, and s and o."""
        return 3 * self.poly.numel() + self.tau.numel() + 2

    @classmethod
    def zeros(cls, n: int, L: int = 3, device: torch.device | str = "cpu") -> DDDM:
        """A DDDM that leaves `n` Gaussians where they are."""
        z = torch.zeros(n, L, NUM_CHANNELS, device=device)
        return cls(z, z.clone(), z.clone(), torch.zeros(n, device=device))

    def to(self, device: torch.device | str) -> DDDM:
        return DDDM(
            self.poly.to(device), self.sin.to(device), self.cos.to(device), self.tau.to(device),
            self.time_scale, self.time_offset,
        )

    def save(self, path: str | Path) -> None:
        """Same as `save_dddm(self, path)`."""
        save_dddm(self, path)

    @classmethod
    def load(cls, path: str | Path) -> DDDM:
        """Same as `load_dddm(path)`."""
        return load_dddm(path)

    def residual(self, t: float | Tensor) -> Tensor:
        """Residuals at times `t`.

        Args:
            t: float or Tensor  # [T] seconds
        Returns:
            Tensor  # [T, N, 10]
        """
        return dddm_residual(
            self.poly, self.sin, self.cos, self.tau,
            torch.as_tensor(t, dtype=torch.float32, device=self.poly.device).reshape(-1),
            self.time_scale, self.time_offset,
        )


def save_dddm(dddm: DDDM, path: str | Path) -> None:
    """Write `dddm` as a ``.npz`` (layout in the module docstring) at exactly `path`."""
    with open(path, "wb") as f:  # a file object: numpy would append ".npz" to a bare name
        np.savez(
            f,
            format=np.array(_FORMAT),
            poly=dddm.poly.detach().cpu().float().numpy(),
            sin=dddm.sin.detach().cpu().float().numpy(),
            cos=dddm.cos.detach().cpu().float().numpy(),
            tau=dddm.tau.detach().cpu().float().numpy(),
            time_scale=np.float64(dddm.time_scale),
            time_offset=np.float64(dddm.time_offset),
        )


def load_dddm(path: str | Path) -> DDDM:
    """Read a DDDM written by `save_dddm`; ValueError naming the file and what is missing."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        for key in ("format", "poly", "sin", "cos", "tau", "time_scale", "time_offset"):
            if key not in z.files:
                raise ValueError(f"{path}: missing array '{key}' (not a rendiff DDDM file)")
        if str(z["format"]) != _FORMAT:
            raise ValueError(f"{path}: format '{z['format']}', expected '{_FORMAT}'")
        return DDDM(
            torch.from_numpy(z["poly"]), torch.from_numpy(z["sin"]), torch.from_numpy(z["cos"]),
            torch.from_numpy(z["tau"]), float(z["time_scale"]), float(z["time_offset"]),
        )


def _apply(cloud: GaussianCloud, r: Tensor) -> GaussianCloud:
    """The cloud with one frame's residual r [N, 10] applied."""
    q = cloud.quats + r[:, _ROT]
    sh = cloud.sh.clone()
    sh[:, 0] = sh[:, 0] + r[:, _RGB] / SH_C0
    return GaussianCloud(
        cloud.means + r[:, _POS],
        q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12),
        cloud.scales,
        cloud.opacities,
        sh,
    )


def deform(
    cloud: GaussianCloud, dddm: DDDM, t: float | Tensor
) -> GaussianCloud | list[GaussianCloud]:
    """The canonical `cloud` deformed by `dddm` at time(s) `t`.

    Args:
        cloud: the canonical cloud, N Gaussians.
        dddm: N Gaussians' coefficients.
        t: a float or 0-d tensor (returns one cloud), or a Tensor [T] (returns a list of T
            clouds, evaluated in one kernel launch).
    """
    if len(dddm) != len(cloud):
        raise ValueError(f"deform: cloud has {len(cloud)} Gaussians, dddm {len(dddm)}")
    times = torch.as_tensor(t, dtype=torch.float32, device=cloud.device)
    r = dddm.to(cloud.device).residual(times)  # [T, N, 10]
    if times.ndim == 0:
        return _apply(cloud, r[0])
    return [_apply(cloud, r_t) for r_t in r]


def _design_matrix(tp: Tensor, L: int) -> Tensor:
    """Least-squares design matrix [T, 3L-2] for t' [T].

    Columns t'^l (l < L), sin(2 pi l t') and cos(2 pi l t') (1 <= l < L), all divided by L.
    """
    ls = torch.arange(L, dtype=tp.dtype, device=tp.device)
    angle = 2 * math.pi * tp[:, None] * ls[1:]
    return torch.cat([tp[:, None] ** ls, torch.sin(angle), torch.cos(angle)], dim=1) / L


def _continuous_quats(quats: Tensor) -> Tensor:
    """Flip signs so each frame's quaternion is in the previous one's hemisphere.  [T, N, 4]."""
    out = quats.clone()
    for i in range(1, out.shape[0]):
        flip = (out[i] * out[i - 1]).sum(-1, keepdim=True) < 0
        out[i] = torch.where(flip, -out[i], out[i])
    return out


def _knn(points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Indices [N, k] and squared distances [N, k] of each point's k nearest other points."""
    pts = points.detach().cpu().double().numpy()
    k = min(k, len(pts) - 1)
    d, idx = cKDTree(pts).query(pts, k=k + 1)
    return (
        torch.from_numpy(idx[:, 1:]).to(points.device),
        torch.from_numpy(d[:, 1:] ** 2).float().to(points.device),
    )


def fit_dddm(
    times: Tensor,
    positions: Tensor,
    L: int = 3,
    quats: Tensor | None = None,
    colors: Tensor | None = None,
    method: str = "lstsq",
    rigidity: float = 0.0,
    k: int = 20,
    rigidity_scale: float | None = None,
    steps: int = 500,
    lr: float = 1e-3,
    canonical: GaussianCloud | None = None,
    seed: int = 0,
) -> tuple[DDDM, dict[str, float]]:
    """Fit a DDDM to per-frame Gaussian states.

    The residual is fitted relative to `canonical` (its means, quats, and DC colours
    0.5 + SH_C0 dc), or, when None, relative to the first frame's state: deform that cloud
    with the result.
    Time is normalised so the clip maps to t' in [0, 1]: s = 1 / (t_max - t_min), o = -s t_min.
    Quaternion signs are made continuous over time before fitting (q and -q are one rotation).

    Args:
        times: Tensor      # [T] seconds
        positions: Tensor  # [T, N, 3]
        L: terms per family.
        quats: Tensor      # [T, N, 4] (w, x, y, z) or None (rotation residual left 0)
        colors: Tensor     # [T, N, 3] RGB or None (colour residual left 0)
        method: 'lstsq' (exact least squares in (a, b, c) with tau = 0; needs T >= 3L - 2) or
            'adam' (starts from the least-squares solution, then optimises a, b, c and tau by
            Adam on the mean squared error plus `rigidity` times the rigidity loss).
        rigidity: weight of Gaussian-Flow's kNN rigidity loss ('adam' only). For neighbours j of
            i (found at the canonical positions) and consecutive frames t, t+1 it penalises
            w_ij |o_ij(t) - R_i(t) R_i(t+1)^T o_ij(t+1)|^2, o_ij = mu_j - mu_i. Without `quats`
            the Gaussians carry no rotation to follow, so it penalises change of neighbour
            distance, w_ij (|o_ij(t)| - |o_ij(t+1)|)^2, instead.
        k: neighbours per Gaussian for the rigidity loss (20 in the paper).
        rigidity_scale: lambda in w_ij = exp(-lambda d_ij^2). The paper uses 1e5 for its
            normalised scenes; in metres that would zero every weight beyond a few millimetres, so
            None picks 1 / mean(d_ij^2) over all neighbour pairs (a typical weight of exp(-1)).
        steps, lr: Adam iterations and learning rate.
        canonical: the cloud the residual is relative to (None: the first frame's state).
        seed: seeds the frame sampling of the rigidity loss.
    Returns:
        (dddm, stats) with stats 'rmse' and 'max_err' (position error over all frames, metres,
        RMS and max of the per-Gaussian Euclidean error), 'rot_rmse' / 'rot_max_err' (radians,
        when `quats` is given), 'color_rmse' (when `colors` is given), and 'compression_ratio'
        (floats in the input trajectories / `dddm.num_params`).
    """
    times = torch.as_tensor(times, dtype=torch.float32, device=positions.device).reshape(-1)
    T, n = positions.shape[:2]
    if positions.shape != (T, n, 3) or times.shape[0] != T:
        raise ValueError(f"fit_dddm: positions must be [T, N, 3] with T = {times.shape[0]}")
    if method not in ("lstsq", "adam"):
        raise ValueError(f"fit_dddm: method must be 'lstsq' or 'adam', got '{method}'")
    n_cols = 3 * L - 2
    if T < n_cols:
        raise ValueError(f"fit_dddm: L = {L} needs at least {n_cols} frames, got {T}")
    span = float(times.max() - times.min())
    s = 1.0 / span if span > 0 else 1.0
    o = -s * float(times.min())
    device = positions.device

    if canonical is None:
        base_pos = positions[0]
        base_q = quats[0].float() if quats is not None else None
        base_rgb = colors[0].float() if colors is not None else None
    else:
        if len(canonical) != n:
            raise ValueError(f"fit_dddm: canonical has {len(canonical)} Gaussians, not {n}")
        base_pos, base_q = canonical.means.to(device), canonical.quats.to(device)
        base_rgb = 0.5 + SH_C0 * canonical.sh[:, 0].to(device)
    target = torch.zeros(T, n, NUM_CHANNELS, device=device)
    mask = torch.zeros(NUM_CHANNELS, dtype=torch.bool, device=device)
    target[..., _POS] = positions - base_pos
    mask[_POS] = True
    if quats is not None:
        q = _continuous_quats(quats.float())
        q = q * torch.where((q[0] * base_q).sum(-1) < 0, -1.0, 1.0)[None, :, None]
        target[..., _ROT] = q - base_q
        mask[_ROT] = True
    if colors is not None:
        target[..., _RGB] = colors.float() - base_rgb
        mask[_RGB] = True

    # one least-squares problem: design [T, 3L-2] shared by all N * 10 right-hand sides
    A = _design_matrix(s * times + o, L)
    sol = torch.linalg.lstsq(A, target.reshape(T, -1)).solution.reshape(n_cols, n, NUM_CHANNELS)
    z = torch.zeros(n, L, NUM_CHANNELS, device=device)
    poly, sin, cos = sol[:L].permute(1, 0, 2), z.clone(), z.clone()
    sin[:, 1:], cos[:, 1:] = sol[L : 2 * L - 1].permute(1, 0, 2), sol[2 * L - 1 :].permute(1, 0, 2)
    dddm = DDDM(poly.contiguous(), sin, cos, torch.zeros(n, device=device), s, o)

    if method == "adam":
        dddm = _refine_adam(
            dddm, times, target, mask, base_pos, base_q if quats is not None else None,
            rigidity, k, rigidity_scale, steps, lr, seed,
        )

    with torch.no_grad():
        fitted = dddm.residual(times)
        err = (fitted[..., _POS] - target[..., _POS]).norm(dim=-1)
        stats = {"rmse": float(err.square().mean().sqrt()), "max_err": float(err.max())}
        raw = 3
        if quats is not None:
            q_fit = base_q + fitted[..., _ROT]
            q_fit = q_fit / q_fit.norm(dim=-1, keepdim=True)
            dot = (q_fit * quats.float()).sum(-1).abs().clamp(max=1.0)
            angle = 2 * torch.acos(dot)
            stats["rot_rmse"] = float(angle.square().mean().sqrt())
            stats["rot_max_err"] = float(angle.max())
            raw += 4
        if colors is not None:
            color_err = fitted[..., _RGB] - target[..., _RGB]
            stats["color_rmse"] = float(color_err.square().mean().sqrt())
            raw += 3
        stats["compression_ratio"] = T * n * raw / dddm.num_params
    return dddm, stats


def _refine_adam(
    init: DDDM,
    times: Tensor,
    target: Tensor,
    mask: Tensor,
    base_means: Tensor,
    base_quats: Tensor | None,
    rigidity: float,
    k: int,
    rigidity_scale: float | None,
    steps: int,
    lr: float,
    seed: int,
) -> DDDM:
    """Adam on (a, b, c, tau) from `init`: masked MSE to `target` [T, N, 10] plus rigidity."""
    params = [p.clone().requires_grad_(True) for p in (init.poly, init.sin, init.cos, init.tau)]
    opt = torch.optim.Adam(params, lr=lr)
    s, o = init.time_scale, init.time_offset
    T = times.shape[0]
    use_rigidity = rigidity > 0 and T > 1 and len(base_means) > 1
    if use_rigidity:
        nbr, d2 = _knn(base_means, k)
        lam = rigidity_scale
        if lam is None:
            lam = 1.0 / float(d2.mean().clamp_min(1e-12))
        w = torch.exp(-lam * d2)  # [N, k]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        r = dddm_residual(*params, times, s, o)
        loss = (r - target)[..., mask].square().mean()
        if use_rigidity:
            i = int(torch.randint(0, T - 1, (1,), generator=gen))
            pos = base_means + r[i : i + 2, :, _POS]  # [2, N, 3]
            off = pos[:, nbr] - pos[:, :, None]  # [2, N, k, 3]
            if base_quats is None:
                dist = (off[0].norm(dim=-1) - off[1].norm(dim=-1)).square()
            else:
                R = quat_to_matrix(base_quats + r[i : i + 2, :, _ROT])  # [2, N, 3, 3]
                rel = R[0] @ R[1].transpose(-1, -2)
                dist = (off[0] - torch.einsum("nij,nkj->nki", rel, off[1])).square().sum(-1)
            loss = loss + rigidity * (w * dist).mean()
        loss.backward()
        opt.step()
    poly, sin, cos, tau = (p.detach() for p in params)
    return DDDM(poly, sin, cos, tau, s, o)
