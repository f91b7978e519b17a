"""The Material Point Method on Warp kernels of our own: elastic, sand and plasticine continua.

Why our own kernels: Newton 1.8's ``SolverImplicitMPM`` does run on CPU (measured: a dense-grid
block of 1331 particles compiles for about a minute, then takes 22 ms per 1/240 s step), but it
is an implicit rheology solver built on ``warp.fem`` for granular and viscous media (yield
surfaces, friction, viscosity; elasticity enters as a compliance of that solve). PhysGaussian's
materials are a hyperelastic jelly, Drucker-Prager sand and von Mises plasticine, driven by a
per-particle deformation gradient that also deforms each Gaussian (``F Sigma F^T``) and whose
hyperelastic energy can be checked for conservation; that is a small explicit MPM. This module is
explicit MLS-MPM (Hu et al. 2018) with APIC transfers (Jiang et al. 2015) and quadratic B-splines
on a dense grid, in Newton's builder -> model -> state -> solver shape (see
``../shared/CONVENTIONS.md`` 4):

- :class:`MPMModel`: static data (per-particle mass, volume, Lame parameters, material kind and
  plasticity parameters, the grid, gravity, colliders) built from :class:`MPMBodyDesc` s;
- :class:`MPMState`: per-step arrays (particle position, velocity, APIC affine matrix ``C``,
  elastic deformation gradient ``F``; Gaussian tracers' positions and deformation gradients);
- :class:`MPMSolver`: ``step(state_in, state_out, dt)``, double-buffered states.

Materials (per particle, several bodies share one grid and so collide with each other):

- ``elastic``: fixed-corotated hyperelasticity (Stomakhin et al. 2012),
  ``Psi = mu |F - R|^2 + lambda / 2 (J - 1)^2``;
- ``sand``: St. Venant-Kirchhoff in Hencky strain with the Drucker-Prager return mapping of
  Klar et al. 2016 (cohesionless: stretched sand falls apart), friction angle ``friction_deg``;
- ``plasticine``: the same elasticity with a von Mises yield surface (PhysGaussian's metal /
  plasticine model): deviatoric Hencky strain is capped at ``yield_stress / (2 mu)``, so a dent
  stays.

Gaussians ride along as massless tracers (PhysGaussian's kinematics): each reads the grid
velocity and velocity gradient like a particle does (normalised over the grid nodes that hold
mass, so a tracer on a body's surface is not slowed by empty nodes), moves with it and updates
its own total deformation gradient ``F <- (I + dt grad v) F``; its covariance is then
``F Sigma0 F^T`` (see :func:`rendiff.engine.deformables.deform_covariances`).

Boundaries, applied to grid velocities: the six faces of the domain are slip walls two cells
deep; a ground plane and static box / sphere colliders take frictional (Coulomb) contact,
separating. The ground acts on the nodes below it; the grid is shifted so that node planes lie
half a cell either side of the ground, which rests a body's lowest particles about one particle
radius above it (with a node plane on the ground itself they would float half a cell high).
Particles and tracers are clamped into the domain after every step (and stop along the clamped
axis); the clamps are counted in :attr:`MPMState.clamped`.

Determinism: Warp runs CPU kernels serially, so atomic scatter order and the result are the same
from run to run. CUDA atomics may reorder float sums.

Time step: :meth:`MPMModel.stable_dt` is a CFL bound ``cfl * dx / c`` with ``c`` the fastest
elastic wave speed ``sqrt((lambda + 2 mu) / rho)`` (plus a velocity term checked per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import warp as wp

from rendiff import defaults

wp.config.quiet = True
wp.set_module_options({"enable_backward": False})  # forward simulation only: halves compile time

__all__ = [
    "MATERIALS",
    "MPMBodyDesc",
    "MPMCollider",
    "MPMModel",
    "MPMSolver",
    "MPMState",
]

MATERIALS = ("elastic", "sand", "plasticine")
"""Continuum models an :class:`MPMBodyDesc` can have."""

_ELASTIC = wp.constant(0)
_SAND = wp.constant(1)
_PLASTICINE = wp.constant(2)
_SIGMA_MIN = wp.constant(1.0e-3)  # Hencky strain needs positive singular values
_BOUND = wp.constant(2)  # wall thickness in cells


@dataclass
class MPMBodyDesc:
    """One MPM body: its particles, material and the Gaussians it carries (world frame).

    Particles should fill the body's volume evenly (see
    :func:`rendiff.engine.deformables.fill_particles`); ``particle_volume`` is each one's share of
    the rest volume.
    """

    name: str
    particles: np.ndarray  # [P, 3] float, rest positions, world [m]
    particle_volume: float  # [m^3] per particle
    material: str = "elastic"  # one of MATERIALS
    density: float = 1000.0  # [kg/m^3]
    youngs_modulus: float = 5.0e4  # [Pa]
    poisson_ratio: float = 0.3
    friction_deg: float = 30.0  # sand: internal friction angle [deg]
    yield_stress: float = 2.0e3  # plasticine: von Mises yield stress [Pa]
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)  # initial, world [m/s]
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)  # initial, about the
    # particles' centroid, world [rad/s]
    tracers: np.ndarray | None = None  # [N, 3] float, Gaussian means to carry, world [m]


@dataclass
class MPMCollider:
    """A static obstacle for MPM material: ``'box'`` (``half_extents``) or ``'sphere'``
    (``radius``) at ``position`` with rotation ``quat`` (w, x, y, z), Coulomb ``friction``."""

    shape: str
    position: tuple[float, float, float]
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    half_extents: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.0
    friction: float = 0.5


@dataclass
class MPMState:
    """Particle and tracer arrays of one step (P particles, N tracers, all bodies together).

    Attributes:
        x: wp.array  # [P] vec3 particle positions, world [m]
        v: wp.array  # [P] vec3 particle velocities [m/s]
        C: wp.array  # [P] mat33 APIC affine velocity matrix (velocity gradient) [1/s]
        F: wp.array  # [P] mat33 elastic deformation gradient
        tx: wp.array  # [N] vec3 tracer (Gaussian) positions, world [m]
        tv: wp.array  # [N] vec3 tracer velocities [m/s]
        tF: wp.array  # [N] mat33 tracer total deformation gradient
        clamped: wp.array  # [1] int32 particles + tracers clamped into the domain so far
    """

    x: wp.array
    v: wp.array
    C: wp.array
    F: wp.array
    tx: wp.array
    tv: wp.array
    tF: wp.array
    clamped: wp.array


# --------------------------------------------------------------------------------------------
# kernels


@wp.func
def _usable(x: wp.vec3, v: wp.vec3, F: wp.mat33) -> bool:
    """A particle whose state is finite; others are kept off the grid (a NaN position would
    index outside it) and carried along unchanged until the frame's check reports them."""
    return wp.isfinite(x) and wp.isfinite(v) and wp.isfinite(F)


@wp.func
def _bspline(fx: wp.vec3) -> wp.mat33:
    """Quadratic B-spline weights: row r holds, per axis, the weight of node base + r."""
    a = wp.vec3(1.5) - fx
    b = fx - wp.vec3(1.0)
    c = fx - wp.vec3(0.5)
    w0 = 0.5 * wp.cw_mul(a, a)
    w1 = wp.vec3(0.75) - wp.cw_mul(b, b)
    w2 = 0.5 * wp.cw_mul(c, c)
    return wp.mat33(w0[0], w0[1], w0[2], w1[0], w1[1], w1[2], w2[0], w2[1], w2[2])


@wp.func
def _hencky(sig: wp.vec3) -> wp.vec3:
    return wp.vec3(
        wp.log(wp.max(sig[0], _SIGMA_MIN)),
        wp.log(wp.max(sig[1], _SIGMA_MIN)),
        wp.log(wp.max(sig[2], _SIGMA_MIN)),
    )


@wp.func
def _kirchhoff(F: wp.mat33, mu: float, lam: float, kind: int) -> wp.mat33:
    """Kirchhoff stress tau = P F^T of the particle's material."""
    U = wp.mat33()
    sig = wp.vec3()
    V = wp.mat33()
    wp.svd3(F, U, sig, V)
    if kind == _ELASTIC:
        R = U * wp.transpose(V)
        J = sig[0] * sig[1] * sig[2]
        return 2.0 * mu * (F - R) * wp.transpose(F) + wp.identity(n=3, dtype=float) * (
            lam * (J - 1.0) * J
        )
    eps = _hencky(sig)
    tr = eps[0] + eps[1] + eps[2]
    d = 2.0 * mu * eps + wp.vec3(lam * tr)
    return U * wp.diag(d) * wp.transpose(U)


@wp.func
def _return_map(F: wp.mat33, mu: float, lam: float, kind: int, alpha: float,
                yield_strain: float) -> wp.mat33:
    """Projects a trial elastic deformation gradient onto the material's yield surface."""
    if kind == _ELASTIC:
        return F
    U = wp.mat33()
    sig = wp.vec3()
    V = wp.mat33()
    wp.svd3(F, U, sig, V)
    eps = _hencky(sig)
    tr = eps[0] + eps[1] + eps[2]
    dev = eps - wp.vec3(tr / 3.0)
    n = wp.length(dev)
    if kind == _SAND:
        if tr >= 0.0:  # cohesionless sand cannot hold tension: back to the cone's tip
            eps = wp.vec3(0.0)
        elif n > 1.0e-12:
            dgamma = n + (3.0 * lam + 2.0 * mu) / (2.0 * mu) * tr * alpha
            if dgamma > 0.0:
                eps = eps - (dgamma / n) * dev
    else:
        dgamma = n - yield_strain
        if dgamma > 0.0 and n > 1.0e-12:
            eps = eps - (dgamma / n) * dev
    s = wp.vec3(wp.exp(eps[0]), wp.exp(eps[1]), wp.exp(eps[2]))
    return U * wp.diag(s) * wp.transpose(V)


@wp.kernel
def _p2g(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    C: wp.array(dtype=wp.mat33),
    F: wp.array(dtype=wp.mat33),
    mass: wp.array(dtype=float),
    vol: wp.array(dtype=float),
    mu: wp.array(dtype=float),
    lam: wp.array(dtype=float),
    kind: wp.array(dtype=wp.int32),
    lo: wp.vec3,
    dx: float,
    dt: float,
    grid_m: wp.array3d(dtype=float),
    grid_mv: wp.array3d(dtype=wp.vec3),
):
    p = wp.tid()
    if not _usable(x[p], v[p], F[p]):
        return  # left to the per-frame check, which names its body
    inv_dx = 1.0 / dx
    base, fx, W = _stencil(x[p], lo, inv_dx)
    tau = _kirchhoff(F[p], mu[p], lam[p], kind[p])
    m = mass[p]
    affine = (-dt * vol[p] * 4.0 * inv_dx * inv_dx) * tau + m * C[p]
    mv = m * v[p]
    for i in range(3):
        for j in range(3):
            for k in range(3):
                w = W[i, 0] * W[j, 1] * W[k, 2]
                dpos = (wp.vec3(float(i), float(j), float(k)) - fx) * dx
                wp.atomic_add(grid_m, base[0] + i, base[1] + j, base[2] + k, w * m)
                wp.atomic_add(grid_mv, base[0] + i, base[1] + j, base[2] + k,
                              w * (mv + affine * dpos))


@wp.func
def _contact(v: wp.vec3, n: wp.vec3, mu: float) -> wp.vec3:
    """Separating Coulomb contact against a static surface of outward normal n."""
    vn = wp.dot(v, n)
    if vn >= 0.0:
        return v
    vt = v - vn * n
    lt = wp.length(vt)
    if lt <= -mu * vn:
        return wp.vec3(0.0)
    return vt * (1.0 + mu * vn / lt)


@wp.kernel
def _grid_update(
    grid_m: wp.array3d(dtype=float),
    grid_mv: wp.array3d(dtype=wp.vec3),
    lo: wp.vec3,
    dx: float,
    dt: float,
    gravity: wp.vec3,
    ground_on: int,
    ground_z: float,
    ground_mu: float,
    col_kind: wp.array(dtype=wp.int32),
    col_pos: wp.array(dtype=wp.vec3),
    col_rot: wp.array(dtype=wp.quat),
    col_size: wp.array(dtype=wp.vec3),
    col_mu: wp.array(dtype=float),
    grid_v: wp.array3d(dtype=wp.vec3),
):
    i, j, k = wp.tid()
    m = grid_m[i, j, k]
    if m <= 0.0:
        grid_v[i, j, k] = wp.vec3(0.0)
        return
    v = grid_mv[i, j, k] / m + dt * gravity
    pos = lo + wp.vec3(float(i), float(j), float(k)) * dx
    if ground_on != 0 and pos[2] <= ground_z:
        v = _contact(v, wp.vec3(0.0, 0.0, 1.0), ground_mu)
    for c in range(col_kind.shape[0]):
        local = wp.quat_rotate_inv(col_rot[c], pos - col_pos[c])
        size = col_size[c]
        if col_kind[c] == 0:  # box: outward normal of the nearest face when inside
            q = wp.vec3(wp.abs(local[0]), wp.abs(local[1]), wp.abs(local[2])) - size
            if q[0] <= 0.0 and q[1] <= 0.0 and q[2] <= 0.0:
                nl = wp.vec3(0.0)
                if q[0] >= q[1] and q[0] >= q[2]:
                    nl = wp.vec3(wp.sign(local[0]), 0.0, 0.0)
                elif q[1] >= q[2]:
                    nl = wp.vec3(0.0, wp.sign(local[1]), 0.0)
                else:
                    nl = wp.vec3(0.0, 0.0, wp.sign(local[2]))
                v = _contact(v, wp.quat_rotate(col_rot[c], nl), col_mu[c])
        else:  # sphere
            r = wp.length(local)
            if r <= size[0] and r > 1.0e-9:
                v = _contact(v, wp.quat_rotate(col_rot[c], local / r), col_mu[c])
    if i < _BOUND and v[0] < 0.0:
        v = wp.vec3(0.0, v[1], v[2])
    if i >= grid_m.shape[0] - _BOUND and v[0] > 0.0:
        v = wp.vec3(0.0, v[1], v[2])
    if j < _BOUND and v[1] < 0.0:
        v = wp.vec3(v[0], 0.0, v[2])
    if j >= grid_m.shape[1] - _BOUND and v[1] > 0.0:
        v = wp.vec3(v[0], 0.0, v[2])
    if k < _BOUND and v[2] < 0.0:
        v = wp.vec3(v[0], v[1], 0.0)
    if k >= grid_m.shape[2] - _BOUND and v[2] > 0.0:
        v = wp.vec3(v[0], v[1], 0.0)
    grid_v[i, j, k] = v


@wp.func
def _clamp_into(xp: wp.vec3, hi: wp.vec3) -> wp.vec3:
    """Clamps grid coordinates so the particle's 3x3x3 stencil stays inside the grid."""
    return wp.vec3(
        wp.clamp(xp[0], 1.0, hi[0]), wp.clamp(xp[1], 1.0, hi[1]), wp.clamp(xp[2], 1.0, hi[2])
    )


@wp.func
def _stencil(x: wp.vec3, lo: wp.vec3, inv_dx: float):
    """The 3x3x3 quadratic B-spline stencil of a point: its lowest node, the point's offset from
    it in cells, and the per-axis weights."""
    xp = (x - lo) * inv_dx
    base = wp.vec3i(int(xp[0] - 0.5), int(xp[1] - 0.5), int(xp[2] - 0.5))
    fx = xp - wp.vec3(float(base[0]), float(base[1]), float(base[2]))
    return base, fx, _bspline(fx)


@wp.func
def _advect_in_grid(x: wp.vec3, vel: wp.vec3, dt: float, lo: wp.vec3, dx: float, inv_dx: float,
                    shape: wp.vec3i):
    """Moves a point by ``dt * vel``, clamped so its stencil stays inside a grid of ``shape``
    nodes; an axis that was clamped loses its velocity. Returns the new position, the velocity
    and 1 if it was clamped (else 0)."""
    hi = wp.vec3(float(shape[0]) - 2.001, float(shape[1]) - 2.001, float(shape[2]) - 2.001)
    xn = (x + dt * vel - lo) * inv_dx
    xc = _clamp_into(xn, hi)
    v = wp.vec3(vel[0], vel[1], vel[2])
    hit = int(0)  # noqa: UP018 (Warp: a mutable local needs its type constructor)
    for a in range(3):
        if xc[a] != xn[a]:
            v[a] = 0.0
            hit = 1
    return lo + xc * dx, v, hit


@wp.kernel
def _g2p(
    x: wp.array(dtype=wp.vec3),
    F: wp.array(dtype=wp.mat33),
    mu: wp.array(dtype=float),
    lam: wp.array(dtype=float),
    kind: wp.array(dtype=wp.int32),
    alpha: wp.array(dtype=float),
    yield_strain: wp.array(dtype=float),
    grid_v: wp.array3d(dtype=wp.vec3),
    lo: wp.vec3,
    dx: float,
    dt: float,
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
    C_out: wp.array(dtype=wp.mat33),
    F_out: wp.array(dtype=wp.mat33),
    clamped: wp.array(dtype=wp.int32),
):
    p = wp.tid()
    if not _usable(x[p], wp.vec3(0.0), F[p]):
        x_out[p] = x[p]
        v_out[p] = wp.vec3(wp.nan)
        F_out[p] = F[p]
        return
    inv_dx = 1.0 / dx
    base, fx, W = _stencil(x[p], lo, inv_dx)
    vel = wp.vec3(0.0)
    B = wp.mat33(0.0)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                w = W[i, 0] * W[j, 1] * W[k, 2]
                dpos = (wp.vec3(float(i), float(j), float(k)) - fx) * dx
                gv = grid_v[base[0] + i, base[1] + j, base[2] + k]
                vel += w * gv
                B += w * wp.outer(gv, dpos)
    Cp = (4.0 * inv_dx * inv_dx) * B
    xc, vel, hit = _advect_in_grid(x[p], vel, dt, lo, dx, inv_dx,
                                   wp.vec3i(grid_v.shape[0], grid_v.shape[1], grid_v.shape[2]))
    if hit != 0:
        wp.atomic_add(clamped, 0, 1)
    x_out[p] = xc
    v_out[p] = vel
    C_out[p] = Cp
    Ft = (wp.identity(n=3, dtype=float) + dt * Cp) * F[p]
    F_out[p] = _return_map(Ft, mu[p], lam[p], kind[p], alpha[p], yield_strain[p])


@wp.kernel
def _g2t(
    x: wp.array(dtype=wp.vec3),
    F: wp.array(dtype=wp.mat33),
    grid_m: wp.array3d(dtype=float),
    grid_v: wp.array3d(dtype=wp.vec3),
    lo: wp.vec3,
    dx: float,
    dt: float,
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
    F_out: wp.array(dtype=wp.mat33),
    clamped: wp.array(dtype=wp.int32),
):
    t = wp.tid()
    if not _usable(x[t], wp.vec3(0.0), F[t]):
        x_out[t] = x[t]
        v_out[t] = wp.vec3(wp.nan)
        F_out[t] = F[t]
        return
    inv_dx = 1.0 / dx
    base, fx, W = _stencil(x[t], lo, inv_dx)
    # Weighted moments, about the tracer, of the nodes that hold mass: their weight, mean offset,
    # mean velocity, offset covariance and velocity-offset covariance.
    wsum = float(0.0)  # noqa: UP018 (Warp: a mutable local needs its type constructor)
    dbar = wp.vec3(0.0)
    vbar = wp.vec3(0.0)
    M = wp.mat33(0.0)
    B = wp.mat33(0.0)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                if grid_m[base[0] + i, base[1] + j, base[2] + k] > 0.0:
                    w = W[i, 0] * W[j, 1] * W[k, 2]
                    dpos = (wp.vec3(float(i), float(j), float(k)) - fx) * dx
                    gv = grid_v[base[0] + i, base[1] + j, base[2] + k]
                    wsum += w
                    dbar += w * dpos
                    vbar += w * gv
                    M += w * wp.outer(dpos, dpos)
                    B += w * wp.outer(gv, dpos)
    vel = wp.vec3(0.0)
    Ct = wp.mat33(0.0)
    if wsum > 1.0e-6:
        # Least-squares affine fit v(x) = vbar + C (x - xbar) over those nodes: exact for an
        # affine field however few of the 27 nodes hold mass, and APIC's G2P when all do.
        dbar = dbar / wsum
        vbar = vbar / wsum
        M = M - wsum * wp.outer(dbar, dbar)
        B = B - wsum * wp.outer(vbar, dbar)
        full = 0.25 * dx * dx * wsum  # M of a full stencil is full * I
        if wp.determinant(M) < 1.0e-3 * full * full * full:  # (nearly) one layer of nodes
            M = M + 0.1 * full * wp.identity(n=3, dtype=float)
        Ct = B * wp.inverse(M)
        vel = vbar - Ct * dbar
    xc, vel, hit = _advect_in_grid(x[t], vel, dt, lo, dx, inv_dx,
                                   wp.vec3i(grid_v.shape[0], grid_v.shape[1], grid_v.shape[2]))
    if hit != 0:
        wp.atomic_add(clamped, 0, 1)
    x_out[t] = xc
    v_out[t] = vel
    F_out[t] = (wp.identity(n=3, dtype=float) + dt * Ct) * F[t]


# --------------------------------------------------------------------------------------------
# model, solver


def _lame(E: float, nu: float) -> tuple[float, float]:
    return E / (2.0 * (1.0 + nu)), E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def _quat_xyzw(q: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return float(x), float(y), float(z), float(w)


@dataclass
class MPMModel:
    """Static MPM data for all bodies on one dense grid; build with :meth:`build`.

    Attributes (P particles, N tracers, B bodies, grid of ``shape`` nodes):
        names: list[str]  # [B] body names
        particle_body: np.ndarray  # [P] int, body index of each particle
        tracer_body: np.ndarray  # [N] int, body index of each tracer
        lo: tuple  # world position of grid node (0, 0, 0) [m]
        dx: float  # grid spacing [m]
        shape: tuple[int, int, int]  # grid nodes per axis
        gravity: tuple  # [m/s^2]
        mass, vol, mu, lam, alpha, yield_strain: wp.array  # [P] float per-particle constants
        kind: wp.array  # [P] int32 material (0 elastic, 1 sand, 2 plasticine)
        max_wave_speed: float  # fastest elastic wave speed over all particles [m/s]
    """

    names: list[str]
    particle_body: np.ndarray
    tracer_body: np.ndarray
    lo: tuple[float, float, float]
    dx: float
    shape: tuple[int, int, int]
    gravity: tuple[float, float, float]
    ground: bool
    ground_height: float
    ground_friction: float
    device: str
    mass: wp.array
    vol: wp.array
    mu: wp.array
    lam: wp.array
    kind: wp.array
    alpha: wp.array
    yield_strain: wp.array
    col_kind: wp.array
    col_pos: wp.array
    col_rot: wp.array
    col_size: wp.array
    col_mu: wp.array
    max_wave_speed: float
    _init: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        bodies: list[MPMBodyDesc],
        domain: tuple[tuple[float, float, float], tuple[float, float, float]],
        dx: float,
        gravity: tuple[float, float, float] = defaults.GRAVITY,
        ground: bool = True,
        ground_height: float = 0.0,
        ground_friction: float = 0.5,
        colliders: list[MPMCollider] | None = None,
        device: str = "cpu",
    ) -> MPMModel:
        """Model of ``bodies`` on a grid of spacing ``dx`` covering ``domain`` (min, max corners).

        Raises:
            ValueError: unknown material, bad parameters, or a body outside the domain.
        """
        if not bodies:
            raise ValueError("MPM: no bodies")
        if not dx > 0:
            raise ValueError(f"MPM: cell size must be > 0, got {dx}")
        lo = np.asarray(domain[0], dtype=np.float64)
        hi = np.asarray(domain[1], dtype=np.float64)
        if ground:  # node planes half a cell either side of the ground (see _grid_update)
            lo[2] = ground_height - (math.ceil((ground_height - lo[2]) / dx - 0.5) + 0.5) * dx
        if not (hi - lo > 4 * dx).all():
            raise ValueError(f"MPM: domain {domain} must be at least 4 cells wide on each axis")
        shape = tuple(int(s) for s in np.ceil((hi - lo) / dx).astype(int) + 1)
        names = [b.name for b in bodies]
        if len(set(names)) != len(names):
            raise ValueError(f"MPM: body names must be unique: {names}")
        cols: dict[str, list] = {k: [] for k in ("x", "v", "mass", "vol", "mu", "lam", "kind",
                                                   "alpha", "ys", "owner", "tx", "towner")}
        speed = 0.0
        inner_lo, inner_hi = lo + (_BOUND + 0.5) * dx, lo + (np.asarray(shape) - 3) * dx
        for i, b in enumerate(bodies):
            if b.material not in MATERIALS:
                raise ValueError(f"MPM body {b.name!r}: unknown material {b.material!r}; "
                                 f"choose one of {MATERIALS}")
            if not (b.youngs_modulus > 0 and 0 <= b.poisson_ratio < 0.5 and b.density > 0
                    and b.particle_volume > 0):
                raise ValueError(f"MPM body {b.name!r}: need youngs_modulus > 0, density > 0, "
                                 "particle_volume > 0 and 0 <= poisson_ratio < 0.5")
            pts = np.asarray(b.particles, dtype=np.float64).reshape(-1, 3)
            if len(pts) == 0:
                raise ValueError(f"MPM body {b.name!r}: no particles")
            if (pts < inner_lo).any() or (pts > inner_hi).any():
                raise ValueError(
                    f"MPM body {b.name!r} starts outside the MPM domain {domain} (particles "
                    f"span {pts.min(0).round(3).tolist()} .. {pts.max(0).round(3).tolist()})")
            mu, lam = _lame(b.youngs_modulus, b.poisson_ratio)
            speed = max(speed, math.sqrt((lam + 2 * mu) / b.density))
            n = len(pts)
            centre = pts.mean(0)
            vel = np.asarray(b.velocity) + np.cross(np.asarray(b.angular_velocity), pts - centre)
            sin_phi = math.sin(math.radians(b.friction_deg))
            kind = MATERIALS.index(b.material)
            cols["x"].append(pts)
            cols["v"].append(vel)
            cols["mass"].append(np.full(n, b.density * b.particle_volume))
            cols["vol"].append(np.full(n, b.particle_volume))
            cols["mu"].append(np.full(n, mu))
            cols["lam"].append(np.full(n, lam))
            cols["kind"].append(np.full(n, kind))
            cols["alpha"].append(np.full(n, math.sqrt(2 / 3) * 2 * sin_phi / (3 - sin_phi)))
            cols["ys"].append(np.full(n, b.yield_stress / (2 * mu)))
            cols["owner"].append(np.full(n, i))
            tr = (np.zeros((0, 3)) if b.tracers is None
                  else np.asarray(b.tracers, dtype=np.float64).reshape(-1, 3))
            if len(tr) and ((tr < lo + 1.5 * dx).any() or (tr > inner_hi + dx).any()):
                raise ValueError(f"MPM body {b.name!r}: its Gaussians start outside the MPM "
                                 f"domain {domain}")
            cols["tx"].append(tr)
            cols["towner"].append(np.full(len(tr), i))
        cat = {k: np.concatenate(v) for k, v in cols.items()}
        colliders = colliders or []
        for c in colliders:
            if c.shape not in ("box", "sphere"):
                raise ValueError(f"MPM collider: unknown shape {c.shape!r} (box, sphere)")

        def f32(a):
            return wp.array(np.asarray(a, dtype=np.float32), dtype=float, device=device)

        model = cls(
            names=names, particle_body=cat["owner"].astype(np.int64),
            tracer_body=cat["towner"].astype(np.int64), lo=tuple(float(c) for c in lo),
            dx=float(dx), shape=shape, gravity=tuple(float(g) for g in gravity),
            ground=ground, ground_height=float(ground_height),
            ground_friction=float(ground_friction), device=device,
            mass=f32(cat["mass"]), vol=f32(cat["vol"]), mu=f32(cat["mu"]), lam=f32(cat["lam"]),
            kind=wp.array(cat["kind"].astype(np.int32), dtype=wp.int32, device=device),
            alpha=f32(cat["alpha"]), yield_strain=f32(cat["ys"]),
            col_kind=wp.array(np.array([0 if c.shape == "box" else 1 for c in colliders],
                                       dtype=np.int32), dtype=wp.int32, device=device),
            col_pos=wp.array(np.array([c.position for c in colliders], dtype=np.float32)
                             .reshape(-1, 3), dtype=wp.vec3, device=device),
            col_rot=wp.array(np.array([_quat_xyzw(c.quat) for c in colliders], dtype=np.float32)
                             .reshape(-1, 4), dtype=wp.quat, device=device),
            col_size=wp.array(np.array([c.half_extents if c.shape == "box"
                                        else (c.radius, 0.0, 0.0) for c in colliders],
                                       dtype=np.float32).reshape(-1, 3),
                              dtype=wp.vec3, device=device),
            col_mu=f32([c.friction for c in colliders]),
            max_wave_speed=speed,
        )
        model._init = {"x": cat["x"], "v": cat["v"], "tx": cat["tx"]}
        return model

    @property
    def particle_count(self) -> int:
        return int(self.particle_body.shape[0])

    @property
    def tracer_count(self) -> int:
        return int(self.tracer_body.shape[0])

    def stable_dt(self, cfl: float = 0.4, max_speed: float = 0.0) -> float:
        """Largest explicit step [s]: ``cfl * dx / (c + max_speed)`` with c the elastic wave
        speed (and the gravity-driven term ``sqrt(dx / |g|)`` as an upper bound)."""
        g = float(np.linalg.norm(self.gravity))
        dt = cfl * self.dx / max(self.max_wave_speed + max_speed, 1e-9)
        if g > 0:
            dt = min(dt, cfl * math.sqrt(self.dx / g))
        return dt

    def state(self) -> MPMState:
        """A fresh state at the bodies' initial positions and velocities (F = I, C = 0)."""
        P, N, d = self.particle_count, self.tracer_count, self.device
        eye = np.tile(np.eye(3, dtype=np.float32), (P, 1, 1))
        teye = np.tile(np.eye(3, dtype=np.float32), (N, 1, 1))
        return MPMState(
            x=wp.array(self._init["x"].astype(np.float32), dtype=wp.vec3, device=d),
            v=wp.array(self._init["v"].astype(np.float32), dtype=wp.vec3, device=d),
            C=wp.zeros(P, dtype=wp.mat33, device=d),
            F=wp.array(eye, dtype=wp.mat33, device=d),
            tx=wp.array(self._init["tx"].astype(np.float32).reshape(-1, 3), dtype=wp.vec3,
                        device=d),
            tv=wp.zeros(N, dtype=wp.vec3, device=d),
            tF=wp.array(teye.reshape(-1, 3, 3), dtype=wp.mat33, device=d),
            clamped=wp.zeros(1, dtype=wp.int32, device=d),
        )


class MPMSolver:
    """Explicit MLS-MPM stepping of an :class:`MPMModel` (P2G, grid update, G2P, tracers)."""

    def __init__(self, model: MPMModel):
        self.model = model
        d = model.device
        self.grid_m = wp.zeros(model.shape, dtype=float, device=d)
        self.grid_mv = wp.zeros(model.shape, dtype=wp.vec3, device=d)
        self.grid_v = wp.zeros(model.shape, dtype=wp.vec3, device=d)

    def step(self, state_in: MPMState, state_out: MPMState, dt: float) -> None:
        """Advance ``state_in`` by ``dt`` seconds into ``state_out`` (the two must differ)."""
        m = self.model
        lo = wp.vec3(*m.lo)
        d = m.device
        self.grid_m.zero_()
        self.grid_mv.zero_()
        P, N = m.particle_count, m.tracer_count
        wp.launch(_p2g, dim=P, device=d, inputs=[
            state_in.x, state_in.v, state_in.C, state_in.F, m.mass, m.vol, m.mu, m.lam, m.kind,
            lo, m.dx, dt, self.grid_m, self.grid_mv])
        wp.launch(_grid_update, dim=m.shape, device=d, inputs=[
            self.grid_m, self.grid_mv, lo, m.dx, dt, wp.vec3(*m.gravity), int(m.ground),
            m.ground_height, m.ground_friction, m.col_kind, m.col_pos, m.col_rot, m.col_size,
            m.col_mu, self.grid_v])
        wp.copy(state_out.clamped, state_in.clamped)
        wp.launch(_g2p, dim=P, device=d, inputs=[
            state_in.x, state_in.F, m.mu, m.lam, m.kind, m.alpha, m.yield_strain, self.grid_v,
            lo, m.dx, dt, state_out.x, state_out.v, state_out.C, state_out.F,
            state_out.clamped])
        if N:
            wp.launch(_g2t, dim=N, device=d, inputs=[
                state_in.tx, state_in.tF, self.grid_m, self.grid_v, lo, m.dx, dt, state_out.tx,
                state_out.tv, state_out.tF, state_out.clamped])
