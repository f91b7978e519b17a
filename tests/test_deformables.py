"""Deformables: MPM continua carrying Gaussians (our Warp kernels) and cloth (Newton's VBD).

Independent answers: free fall z0 - g t^2 / 2 and the symplectic-Euler sum; Sigma' = F Sigma F^T
computed here in float64 for a known F (APIC carries an affine velocity field exactly, so the
deformation gradient after time T is I + T A); energy from a numpy SVD of each particle's F;
pile slopes against the friction angle; a draped cloth's centre at the box top plus its
thickness. The first run compiles the MPM kernels (about 10 s) and Newton's VBD cloth kernels
(about a minute); later runs load them from ~/.cache/warp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rendiff.engine.deformables import (
    ClothDesc,
    DeformableSettings,
    cloth_grid,
    covariances,
    deform_covariances,
    fill_particles,
    simulate_cloth,
    simulate_mpm,
)
from rendiff.engine.gaussians import from_primitive
from rendiff.engine.mpm import MPMBodyDesc, MPMModel, MPMSolver
from rendiff.engine.physics import PhysicsError, RigidBodyDesc

G = 9.81
DX = 0.02
SP = DX / 2  # two particles per cell along each axis


def _block(name: str, material: str, half: float, centre, **kw) -> MPMBodyDesc:
    pts = fill_particles("box", SP, half_extents=(half, half, half)) + np.asarray(centre)
    return MPMBodyDesc(name, pts, SP**3, material, **kw)


def _energy(model: MPMModel, state) -> tuple[float, float, float]:
    """Kinetic (APIC: 1/2 m (|v|^2 + dx^2/4 |C|^2)), fixed-corotated elastic and gravitational
    energy [J] of all particles, from the arrays alone (numpy float64)."""
    m = model.mass.numpy().astype(np.float64)
    vol, mu, lam = model.vol.numpy(), model.mu.numpy(), model.lam.numpy()
    x, v = state.x.numpy().astype(np.float64), state.v.numpy().astype(np.float64)
    C, F = state.C.numpy().astype(np.float64), state.F.numpy().astype(np.float64)
    U, S, Vt = np.linalg.svd(F)
    S[:, 2] *= np.sign(np.linalg.det(U @ Vt))  # signed singular values: R = polar rotation
    elastic = (vol * (mu * ((S - 1) ** 2).sum(1) + 0.5 * lam * (S.prod(1) - 1) ** 2)).sum()
    kinetic = 0.5 * (m * ((v**2).sum(1) + model.dx**2 / 4 * (C**2).sum((1, 2)))).sum()
    return float(kinetic), float(elastic), float((m * G * x[:, 2]).sum())


def _run(model: MPMModel, seconds: float, dt: float, every: int, fn):
    """Steps a fresh state of ``model`` and returns [fn(model, state)] every ``every`` steps."""
    s0, s1 = model.state(), model.state()
    solver = MPMSolver(model)
    out = []
    for i in range(int(round(seconds / dt)) + 1):
        if i % every == 0:
            out.append(fn(model, s0))
        solver.step(s0, s1, dt)
        s0, s1 = s1, s0
    return out


# --------------------------------------------------------------------------------------------
# kinematics: free fall and covariances


def test_free_fall_follows_gravity_and_keeps_covariances():
    cloud = from_primitive("box", 300, seed=1, half_extents=(0.06, 0.06, 0.06))
    z0 = 0.5
    body = _block("blob", "elastic", 0.06, (0.0, 0.0, z0), tracers=cloud.means.numpy() + [0, 0, z0])
    model = MPMModel.build([body], ((-0.2, -0.2, -0.3), (0.2, 0.2, 0.7)), DX, ground=False)
    dt, n = 1.0e-3, 300
    s0, s1 = model.state(), model.state()
    solver = MPMSolver(model)
    for _ in range(n):
        solver.step(s0, s1, dt)
        s0, s1 = s1, s0
    x = s0.x.numpy().astype(np.float64)
    t = n * dt
    com = x.mean(0)
    # symplectic Euler: v_k = -g k dt, z_n = z0 - g dt^2 n (n + 1) / 2, exactly
    assert com[2] == pytest.approx(z0 - G * dt**2 * n * (n + 1) / 2, abs=2e-5)
    assert abs(com[2] - (z0 - G * t**2 / 2)) < DX  # the continuous answer, within a grid cell
    assert np.abs(com[:2]).max() < 1e-6
    # pure translation: every Gaussian's F stays I, so its covariance is unchanged
    F = torch.from_numpy(s0.tF.numpy())
    assert (F - torch.eye(3)).abs().max() < 1e-4
    q, s = deform_covariances(cloud.quats, cloud.scales, F)
    torch.testing.assert_close(covariances(q.double(), s.double()),
                               covariances(cloud.quats.double(), cloud.scales.double()),
                               rtol=1e-4, atol=1e-9)  # entries up to ~1e-4 m^2
    moved = s0.tx.numpy() - body.tracers  # the Gaussians fall with the particles
    np.testing.assert_allclose(moved, np.broadcast_to([0.0, 0.0, com[2] - z0], moved.shape),
                               atol=1e-4)


def test_affine_flow_deforms_gaussians_by_known_F():
    # A stress-free body in the shear flow v = A x with A^2 = 0 keeps that velocity field for
    # all time, x(t) = (I + t A) x0. APIC carries an affine field exactly, and the Gaussians'
    # least-squares fit of the grid velocity reproduces it even on the surface, where part of
    # their stencil is empty: every Gaussian ends with F = I + T A.
    A = np.array([[0.0, 0.8, 0.3], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    T, dt = 0.25, 1.0e-3
    surface = from_primitive("box", 400, seed=2, half_extents=(0.08, 0.08, 0.08))
    body = _block("putty", "elastic", 0.08, (0.0, 0.0, 0.0), youngs_modulus=1e-3,
                  tracers=surface.means.numpy())
    model = MPMModel.build([body], ((-0.3, -0.3, -0.3), (0.3, 0.3, 0.3)), DX,
                           gravity=(0.0, 0.0, 0.0), ground=False)
    s0, s1 = model.state(), model.state()
    x0 = s0.x.numpy().astype(np.float64)
    s0.v.assign((x0 @ A.T).astype(np.float32))
    s0.C.assign(np.tile(A.astype(np.float32), (len(x0), 1, 1)))
    solver = MPMSolver(model)
    for _ in range(int(round(T / dt))):
        solver.step(s0, s1, dt)
        s0, s1 = s1, s0
    F_true = np.eye(3) + T * A
    np.testing.assert_allclose(s0.x.numpy(), x0 @ F_true.T, atol=3e-5)
    np.testing.assert_allclose(s0.tx.numpy(), body.tracers @ F_true.T, atol=3e-5)
    F = s0.tF.numpy().astype(np.float64)
    np.testing.assert_allclose(F, np.broadcast_to(F_true, F.shape), atol=2e-5)
    # Sigma' = F Sigma F^T for anisotropic Gaussians, checked against a float64 product here
    g = torch.Generator().manual_seed(0)
    quats = torch.randn(len(F), 4, generator=g, dtype=torch.float64)
    scales = torch.rand(len(F), 3, generator=g, dtype=torch.float64) * 0.02 + 0.001
    q, s = deform_covariances(quats, scales, torch.from_numpy(F))
    Ft = torch.from_numpy(F)
    expected = Ft @ covariances(quats, scales) @ Ft.transpose(-1, -2)
    torch.testing.assert_close(covariances(q.double(), s.double()), expected, rtol=1e-5,
                               atol=1e-10)  # float32 output; entries up to ~5e-4 m^2
    # and for a known rotation + stretch the principal axes follow F exactly
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    _, s1_ = deform_covariances(torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0.1, 0.2, 0.3]]),
                                 (R @ torch.diag(torch.tensor([2.0, 1.0, 0.5],
                                                              dtype=torch.float64)))[None])
    torch.testing.assert_close(s1_.double().sort().values,
                               torch.tensor([[0.15, 0.2, 0.2]], dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# energy and materials


def test_elastic_energy_does_not_grow():
    body = _block("jelly", "elastic", 0.06, (0.0, 0.0, 0.2), youngs_modulus=2e4,
                  angular_velocity=(3.0, 0.0, 0.0))
    model = MPMModel.build([body], ((-0.4, -0.4, -0.06), (0.4, 0.4, 0.5)), DX)
    dt = model.stable_dt(0.4, max_speed=3.0)
    E = np.array(_run(model, 1.5, dt, 10, _energy))
    total = E.sum(1)
    E0 = total[0]
    assert E[:, 0].max() > 0.3 * E0 and E[:, 1].max() > 0.05 * E0  # it fell, hit and deformed
    running_min = np.minimum.accumulate(total)
    assert (total - running_min).max() < 0.03 * E0  # never regains what was lost (3 %)
    assert total[-1] < total[0]


def _shape(model, state):
    """Height, width (2 x the 97th-percentile distance from the vertical axis), mean vertical
    velocity."""
    x = state.x.numpy()
    r = np.hypot(x[:, 0] - x[:, 0].mean(), x[:, 1] - x[:, 1].mean())
    height = x[:, 2].max() - x[:, 2].min() + SP
    return height, 2 * np.percentile(r, 97), state.v.numpy()[:, 2].mean()


def _drop(material: str, seconds: float = 0.6, **kw):
    """A 12 cm cube thrown down at 2 m/s from just above the ground; its shape over time."""
    kw = {"youngs_modulus": 1e5, "velocity": (0.0, 0.0, -2.0), **kw}
    model = MPMModel.build([_block(material, material, 0.06, (0.0, 0.0, 0.08), **kw)],
                           ((-0.4, -0.4, -0.06), (0.4, 0.4, 0.4)), DX)
    return np.array(_run(model, seconds, model.stable_dt(0.4, 3.0), 20, _shape))


def test_materials_bounce_dent_and_pile():
    elastic, plasticine = _drop("elastic"), _drop("plasticine", yield_stress=1e3)
    sand20 = _drop("sand", velocity=(0.0, 0.0, 0.0), friction_deg=20.0, density=1600.0)
    sand40 = _drop("sand", velocity=(0.0, 0.0, 0.0), friction_deg=40.0, density=1600.0)
    aspect0 = elastic[0, 0] / elastic[0, 1]
    # elastic: bounces back up and recovers its shape
    assert elastic[:, 2].max() > 1.0
    assert elastic[-1, 0] / elastic[-1, 1] > 0.95 * aspect0
    # plasticine: the impact leaves it flattened for good
    assert plasticine[-1, 0] / plasticine[-1, 1] < 0.6 * aspect0
    assert plasticine[:, 2].max() < 0.2  # no rebound
    # sand: spreads into a pile whose slope stays below the friction angle, steeper for more
    # friction
    slopes = {}
    for phi, run in ((20.0, sand20), (40.0, sand40)):
        H, W = run[-1, 0], run[-1, 1]
        slopes[phi] = math.degrees(math.atan(2 * H / W))
        assert H < 0.8 * run[0, 0]
        assert slopes[phi] < phi
    assert slopes[40.0] > slopes[20.0] + 2.0


# --------------------------------------------------------------------------------------------
# fail-safe, domain, determinism


def test_particles_are_clamped_into_the_domain():
    # 8 m/s at dt = 10 ms is 4 cells a step: faster than the two-cell slip walls can stop it, so
    # the particles overshoot and are clamped (the time step is forced, against the CFL limit).
    lo, hi = (-0.2, -0.2, -0.2), (0.2, 0.2, 0.2)
    body = _block("bullet", "elastic", 0.04, (0.0, 0.0, 0.0), youngs_modulus=1.0,
                  velocity=(8.0, -3.0, 0.0), tracers=np.array([[0.04, 0.0, 0.0]]))
    model = MPMModel.build([body], (lo, hi), DX, gravity=(0.0, 0.0, 0.0), ground=False)
    lo_n = np.asarray(model.lo)
    hi_n = lo_n + (np.asarray(model.shape) - 1) * DX
    states = _run(model, 0.2, 0.01, 1, lambda m, s: (s.x.numpy().copy(), s.tx.numpy().copy(),
                                                    int(s.clamped.numpy()[0])))
    for x, tx, _ in states:
        for pts in (x, tx):
            assert (pts >= lo_n + DX - 1e-6).all() and (pts <= hi_n - DX + 1e-6).all()
    assert states[-1][2] > 0
    assert states[-1][0][:, 0].max() > hi_n[0] - 2 * DX  # it did reach the +x wall


def test_nan_in_a_state_names_the_body_and_frame(monkeypatch):
    bodies = [_block("cube", "elastic", 0.04, (-0.15, 0.0, 0.1)),
              _block("jelly", "elastic", 0.04, (0.15, 0.0, 0.1))]
    real_step = MPMSolver.step
    clock = {"t": 0.0, "done": False}

    def poisoned(self, state_in, state_out, dt):
        real_step(self, state_in, state_out, dt)
        clock["t"] += dt
        if clock["t"] > 3.5 / 30.0 and not clock["done"]:  # during frame 4: (3/30, 4/30] s
            clock["done"] = True
            x = state_out.x.numpy()
            x[len(x) - 3] = np.nan  # a particle of the second body
            state_out.x.assign(x)

    monkeypatch.setattr(MPMSolver, "step", poisoned)
    settings = DeformableSettings(mpm_cell_size=DX)
    with pytest.raises(PhysicsError) as err:
        simulate_mpm(bodies, settings, fps=30.0, frames=8)
    msg = str(err.value)
    assert "'jelly'" in msg and "frame 4" in msg and "\n" not in msg
    monkeypatch.undo()
    cloth_v, cloth_f = cloth_grid((0.2, 0.2), (2, 2))
    bad = ClothDesc("sheet", cloth_v + [0, 0, 0.3], cloth_f, velocity=(0.0, math.nan, 0.0))
    with pytest.raises(PhysicsError, match=r"^cloth 'sheet' starts with NaN.* frame 0 "):
        simulate_cloth([bad], DeformableSettings(), fps=30.0, frames=2)


def test_same_inputs_give_the_same_trajectory():
    def mpm():
        bodies = [_block("a", "sand", 0.04, (0.0, 0.0, 0.1), velocity=(0.5, 0.0, 0.0),
                         tracers=np.array([[0.0, 0.0, 0.1], [0.03, 0.03, 0.13]]))]
        return simulate_mpm(bodies, DeformableSettings(mpm_cell_size=DX), fps=30.0, frames=6)[0]

    a, b = mpm(), mpm()
    assert torch.equal(a.particles, b.particles) and torch.equal(a.deformation, b.deformation)
    assert float((a.particles[-1] - a.particles[0]).abs().max()) > 0.01  # it did move

    def cloth():
        verts, faces = cloth_grid((0.3, 0.3), (5, 5))
        box = RigidBodyDesc("box", "box", half_extents=(0.1, 0.1, 0.1), position=(0, 0, 0.1),
                            static=True)
        sheet = ClothDesc("sheet", verts + [0.02, 0.0, 0.25], faces)
        return simulate_cloth([sheet], DeformableSettings(), fps=24.0, frames=8,
                              colliders=[box])[0]

    c, d = cloth(), cloth()
    assert torch.equal(c.vertices, d.vertices) and torch.equal(c.velocities, d.velocities)


# --------------------------------------------------------------------------------------------
# cloth


@pytest.fixture(scope="module")
def draped():
    """A 0.6 m cloth dropped from 10 cm above a 0.3 m box, one second at 24 fps."""
    verts, faces = cloth_grid((0.6, 0.6), (12, 12))
    box = RigidBodyDesc("box", "box", half_extents=(0.15, 0.15, 0.15), position=(0, 0, 0.15),
                        static=True)
    cloth = ClothDesc("cloth", verts + [0.0, 0.0, 0.4], faces, thickness=0.005)
    return simulate_cloth([cloth], DeformableSettings(), fps=24.0, frames=25, colliders=[box])[0]


def test_cloth_drapes_over_a_box(draped):
    v = draped.vertices.numpy()
    final = v[-1].reshape(13, 13, 3)
    centre, corners = final[6, 6], final[[0, 0, 12, 12], [0, 12, 0, 12]]
    assert centre[2] == pytest.approx(0.3 + 0.005, abs=0.004)  # box top + thickness
    assert (corners[:, 2] < 0.3 - 0.1).all()  # the corners hang down the sides
    # no vertex ever inside the box (signed distance >= -1 mm)
    d = np.abs(v - np.array([0.0, 0.0, 0.15])) - 0.15
    outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    inside = np.minimum(d.max(-1), 0.0)
    assert (outside + inside).min() > -1e-3
    assert np.isfinite(v).all()


def test_pinned_cloth_corner_stays_put():
    verts, faces = cloth_grid((0.4, 0.4), (6, 6))
    start = verts + [0.0, 0.0, 1.0]
    cloth = ClothDesc("flag", start, faces, pinned=np.array([0, 6]))
    traj = simulate_cloth([cloth], DeformableSettings(ground=False), fps=24.0, frames=9)[0]
    v = traj.vertices.numpy()
    np.testing.assert_array_equal(v[:, [0, 6]],
                                  np.broadcast_to(start[[0, 6]].astype(np.float32), (9, 2, 3)))
    assert v[-1, 48, 2] < 1.0 - 0.1  # the free far corner swung down


# --------------------------------------------------------------------------------------------
# scenes


def _scene():
    from rendiff.scenes.spec import MPM, Box, Cloth, Gaussians, Material, Plane, Pose, Scene

    scene = Scene(name="defo", frames=6, fps=24.0, size=(32, 32))
    scene.add(Plane(size=(4.0, 4.0)), name="ground")
    scene.add(Box(size=(0.2, 0.2, 0.2)), Pose(position=(0.0, 0.0, 0.1)), name="table")
    scene.add(Cloth(size=(0.3, 0.3), resolution=(4, 4), pinned=["x0y0", 24]),
              Pose(position=(0.0, 0.0, 0.35)), name="cloth")
    scene.add(Gaussians(shape="box", radius=0.04, count=200, mpm=MPM(model="elastic")),
              Pose(position=(0.3, 0.0, 0.1)), Material(density=800.0), name="jelly",
              velocity=(0.0, 0.0, -1.0))
    return scene


def test_scene_cloth_and_mpm_reach_the_rendered_tracks():
    from rendiff.engine.layers import Layer
    from rendiff.engine.renderer import render
    from rendiff.engine.simulator import simulate
    from rendiff.scenes.io import scene_from_dict, scene_to_dict

    scene = _scene()
    assert scene_from_dict(scene_to_dict(scene)) == scene
    traj = simulate(scene, progress=False)
    cloth = next(m for m in traj.meshes if m.name == "cloth")
    assert cloth.vertices.shape == (6, 25, 3)
    for i in (0, 24):  # x0y0 by name, the opposite corner by index
        assert torch.equal(cloth.vertices[:, i], cloth.vertices[:1, i].expand(6, 3))
    assert float(cloth.vertices[-1, [4, 20], 2].max()) < 0.35 - 0.05  # the free corners drop
    jelly = next(g for g in traj.gaussians if g.name == "jelly")
    sim = traj.deformables["jelly"]
    assert jelly.frame_scales.shape == (6, 200, 3) and torch.equal(jelly.means, sim.means)
    # the rendered covariances are F Sigma0 F^T of the simulated deformation gradients
    sigma0 = covariances(jelly.quats[0].double(), jelly.scales.double())
    F = sim.deformation[-1].double()
    rendered = covariances(jelly.quats[-1].double(), jelly.frame_scales[-1].double())
    torch.testing.assert_close(rendered, F @ sigma0 @ F.transpose(-1, -2), rtol=1e-4, atol=1e-10)
    assert float((F - torch.eye(3, dtype=F.dtype)).abs().max()) > 1e-3  # it did deform
    root = traj.rigid["jelly"]  # the particles' centroid
    torch.testing.assert_close(root.linear_velocity[0], torch.tensor([0.0, 0.0, -1.0]))
    assert float(root.positions[:, 2].min()) < 0.08  # it hit the ground (and bounced)
    layers = render(traj, [Layer.DEPTH, Layer.INSTANCE], shadows=False, progress=False)
    jelly_id = [e.name for e in scene.entities].index("jelly") + 1
    assert (layers[Layer.INSTANCE][-1] == jelly_id).any()
    assert torch.isfinite(layers[Layer.DEPTH][-1]).any()


def test_scene_errors_name_the_field():
    from rendiff.scenes.io import SceneError, scene_from_dict

    cases = [
        ({"type": "gaussians", "mpm": {"model": "sand", "yield_stress": 5}}, {},
         r"^s.yaml: entities\[0\]\.geometry\.mpm\.yield_stress: only plasticine"),
        ({"type": "gaussians", "mpm": {}}, {"animation": {"type": "dddm"}},
         r"^s.yaml: entities\[0\]\.animation: an MPM body is moved by its simulation"),
        ({"type": "cloth"}, {"dynamic": True},
         r"^s.yaml: entities\[0\]\.dynamic: a cloth is always simulated"),
        ({"type": "cloth", "pinned": ["corner"]}, {},
         r"pinned\[0\]: no vertices called 'corner'"),
    ]
    for geometry, extra, message in cases:
        with pytest.raises(SceneError, match=message):
            scene_from_dict({"entities": [{"name": "e", "geometry": geometry, **extra}]},
                            source="s.yaml")
