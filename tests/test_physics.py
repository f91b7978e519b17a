"""Rigid-body physics through Newton: analytic answers for falls, bounces, friction and momentum.

The first run compiles Newton's Warp kernels for CPU (about 2 minutes on 2 cores); later runs
load them from ~/.cache/warp and the file takes about 25 s. The experimental Steel solver's test
compiles another ~85 s of kernels, so it runs only with RENDIFF_TEST_STEEL=1.
"""

import math
import os

import numpy as np
import pytest
import torch

from rendiff.engine.physics import (
    PhysicsError,
    PhysicsSettings,
    RigidBodyDesc,
    simulate_rigid,
)

G = 9.81
RATE = 240.0
DT = 1.0 / RATE


def _drop(restitution: float = 0.7, fps: float = 120.0, seconds: float = 1.6, solver="xpbd"):
    """A ball of radius 0.1 m whose bottom starts 1.25 m above the ground."""
    ball = RigidBodyDesc(
        "ball", "sphere", radius=0.1, position=(0.0, 0.0, 1.35), restitution=restitution
    )
    settings = PhysicsSettings(rate_hz=RATE, ground_restitution=restitution, solver=solver)
    return simulate_rigid([ball], settings, fps=fps, frames=int(seconds * fps) + 1)


@pytest.fixture(scope="module")
def drop():
    return _drop()


def test_drop_touches_ground_at_free_fall_time(drop):
    h = 1.25
    t_hit = math.sqrt(2 * h / G)  # 0.5048 s
    first = drop.contacts[0]
    assert (first["a"], first["b"]) == ("ball", "ground")
    # The event is stamped at the end of the physics step in which the solver first pushes.
    # Symplectic Euler falls at most dt/2 ahead of the exact parabola, so that step is the one
    # containing t_hit or the one before it: |t_event - t_hit| <= dt.
    assert abs(first["time"] - t_hit) <= DT
    assert first["frame"] == math.ceil(first["time"] * 120.0 - 1e-9)
    np.testing.assert_allclose(first["position"], (0.0, 0.0, 0.0), atol=1e-3)
    np.testing.assert_allclose(first["normal"], (0.0, 0.0, -1.0), atol=1e-6)
    # approach speed is read at the start of that step, t_event - dt, which lies within 2 dt of
    # t_hit; the integrator's velocity is exact (g t), so it is within 2 g dt of sqrt(2 g h)
    assert abs(first["approach_speed"] - math.sqrt(2 * G * h)) <= 2 * G * DT
    assert first["depth"] < 1e-3
    # the ball never sinks into the ground by more than a millimetre
    assert drop.positions[:, 0, 2].min().item() > 0.1 - 1e-3


def test_bounce_height_is_restitution_squared(drop):
    h, e = 1.25, 0.7
    z = drop.positions[:, 0, 2].numpy() - 0.1  # height of the ball's bottom
    hit = drop.contacts[0]["frame"]
    second = drop.contacts[1]["frame"]
    apex = z[hit:second].max()
    assert abs(apex - e * e * h) <= 0.1 * e * e * h
    # velocity right after the bounce is -e times the velocity right before it
    vz = drop.linear_velocity[:, 0, 2].numpy()
    assert abs(vz[hit] / vz[hit - 1] + e) < 0.05


def test_free_flight_and_spin_match_closed_form():
    fps, frames = 30.0, 31
    w = 3.0  # rad/s about +z
    body = RigidBodyDesc(
        "spinner",
        "box",
        half_extents=(0.1, 0.2, 0.05),
        position=(0.0, 0.0, 10.0),
        linear_velocity=(1.0, -2.0, 3.0),
        angular_velocity=(0.0, 0.0, w),
    )
    traj = simulate_rigid([body], PhysicsSettings(ground=False), fps=fps, frames=frames)
    t = traj.times.double()
    torch.testing.assert_close(t, torch.arange(frames, dtype=torch.float64) / fps)
    expect = torch.stack([t, -2.0 * t, 10.0 + 3.0 * t - 0.5 * G * t * t], dim=-1)
    # symplectic Euler adds g*dt*t/2 to the drop: at most 0.5 * 9.81 / 240 * 1 s = 2 cm
    torch.testing.assert_close(
        traj.positions[:, 0].double(), expect, atol=0.5 * G * DT + 1e-4, rtol=0
    )
    quat = torch.stack(
        [torch.cos(w * t / 2), torch.zeros_like(t), torch.zeros_like(t), torch.sin(w * t / 2)], -1
    )
    torch.testing.assert_close(traj.quats[:, 0].double(), quat, atol=1e-3, rtol=0)
    torch.testing.assert_close(
        traj.angular_velocity[:, 0, 2].double(), torch.full_like(t, w), atol=1e-3, rtol=0
    )


def test_stack_of_three_boxes_stays_standing():
    h = 0.1
    boxes = [
        RigidBodyDesc(f"box{i}", "box", half_extents=(h, h, h), position=(0.0, 0.0, h + 2 * h * i))
        for i in range(3)
    ]
    traj = simulate_rigid(boxes, PhysicsSettings(rate_hz=RATE), fps=30.0, frames=151)  # 5 s
    drift = (traj.positions - traj.positions[0]).norm(dim=-1)
    assert drift.max().item() < 0.01
    assert traj.linear_velocity[-1].norm(dim=-1).max().item() < 0.01
    pairs = {(c["a"], c["b"]) for c in traj.contacts}
    assert pairs == {("box0", "ground"), ("box0", "box1"), ("box1", "box2")}
    assert len(traj.contacts) == 3  # resting contacts do not repeat their events


def _slope(
    degrees: float, mu: float = 0.5, seconds: float = 1.0, solver: str = "xpbd"
) -> tuple[float, float]:
    """Slide distance of a cube on a static tilted slab, and the Coulomb-friction answer."""
    theta = math.radians(degrees)
    tilt = (math.cos(theta / 2), 0.0, math.sin(theta / 2), 0.0)  # about +y: downhill is +x
    normal = np.array([math.sin(theta), 0.0, math.cos(theta)])
    slab = RigidBodyDesc(
        "slope",
        "box",
        half_extents=(2.0, 1.0, 0.05),
        position=tuple(-0.05 * normal),
        quat=tilt,
        static=True,
        friction=mu,
    )
    cube = RigidBodyDesc(
        "cube",
        "box",
        half_extents=(0.1, 0.1, 0.1),
        position=tuple(0.1 * normal),
        quat=tilt,
        friction=mu,
    )
    traj = simulate_rigid(
        [slab, cube],
        PhysicsSettings(ground=False, solver=solver),
        fps=30.0,
        frames=int(seconds * 30) + 1,
    )
    p = traj.positions[:, 1].numpy()
    accel = G * (math.sin(theta) - mu * math.cos(theta))
    return float(np.linalg.norm(p[-1] - p[0])), 0.5 * max(accel, 0.0) * seconds**2


def test_box_on_slope_sticks_below_friction_angle():
    moved, expect = _slope(20.0)  # tan = 0.36 < mu = 0.5
    assert expect == 0.0
    assert moved < 1e-3


def test_box_on_slope_slides_above_friction_angle():
    moved, expect = _slope(35.0)  # tan = 0.70 > mu = 0.5: a = g (sin - mu cos) = 1.61 m/s^2
    assert abs(moved - expect) < 0.1 * expect


def test_mass_override_and_restitution_between_bodies():
    # 1 kg hits 3 kg head-on, e = 1: velocities after are -v/2 and +v/2 (momentum + energy).
    light = RigidBodyDesc(
        "light",
        "sphere",
        radius=0.1,
        position=(-0.5, 0.0, 0.0),
        mass=1.0,
        linear_velocity=(2.0, 0.0, 0.0),
        restitution=1.0,
    )
    heavy = RigidBodyDesc(
        "heavy", "sphere", radius=0.1, position=(0.0, 0.0, 0.0), mass=3.0, restitution=1.0
    )
    settings = PhysicsSettings(gravity=(0.0, 0.0, 0.0), ground=False)
    traj = simulate_rigid([light, heavy], settings, fps=30.0, frames=16)
    v = traj.linear_velocity[-1, :, 0].numpy()
    np.testing.assert_allclose(v, [-1.0, 1.0], atol=0.05)
    momentum = traj.linear_velocity[:, 0, 0] * 1.0 + traj.linear_velocity[:, 1, 0] * 3.0
    torch.testing.assert_close(momentum, torch.full_like(momentum, 2.0), atol=0.05, rtol=0)
    (event,) = traj.contacts
    assert (event["a"], event["b"]) == ("light", "heavy")
    np.testing.assert_allclose(event["normal"], (1.0, 0.0, 0.0), atol=1e-5)
    # the 0.3 m gap closes at 2 m/s at t = 0.15 s, the end of a step; the first push comes in
    # the step after the surfaces meet, so 0 < t_event - 0.15 <= dt (no gravity: exact motion)
    assert 0.0 < event["time"] - 0.15 <= DT + 1e-9


def test_every_shape_rests_at_its_half_height():
    cube_v = np.array([[x, y, z] for x in (-0.1, 0.1) for y in (-0.1, 0.1) for z in (-0.1, 0.1)])
    cube_f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    lying = (math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0)  # axis Z -> Y
    bodies = [
        RigidBodyDesc("sphere", "sphere", radius=0.1, position=(0.0, 0.0, 0.3)),
        RigidBodyDesc("box", "box", half_extents=(0.2, 0.1, 0.05), position=(1.0, 0.0, 0.3)),
        RigidBodyDesc(
            "cylinder", "cylinder", radius=0.1, half_height=0.15, position=(2.0, 0.0, 0.4)
        ),
        RigidBodyDesc(
            "capsule", "capsule", radius=0.08, half_height=0.2, quat=lying, position=(3.0, 0.0, 0.3)
        ),
        RigidBodyDesc(
            "mesh", "mesh", mesh_verts=cube_v, mesh_faces=cube_f, position=(4.0, 0.0, 0.3)
        ),
    ]
    traj = simulate_rigid(bodies, PhysicsSettings(), fps=30.0, frames=31)
    rest = traj.positions[-1, :, 2].numpy()
    np.testing.assert_allclose(rest, [0.1, 0.05, 0.15, 0.08, 0.1], atol=2e-3)
    assert traj.linear_velocity[-1].norm(dim=-1).max().item() < 0.02
    assert {c["a"] for c in traj.contacts} == {b.name for b in bodies}


def test_nan_velocity_raises_naming_body_and_frame():
    ok = RigidBodyDesc("ok", "sphere", radius=0.1, position=(0.0, 0.0, 1.0))
    bad = RigidBodyDesc(
        "ball_3",
        "sphere",
        radius=0.1,
        position=(1.0, 0.0, 1.0),
        linear_velocity=(0.0, float("nan"), 0.0),
    )
    with pytest.raises(PhysicsError, match=r"body 'ball_3' .*NaN.* frame 0 \(t=0\.000 s\)"):
        simulate_rigid([ok, bad], PhysicsSettings(), fps=24.0, frames=5)


def test_escaping_body_raises_at_the_frame_it_leaves():
    # x = 985 + 100 t crosses the 1 km bound between frame 1 (995 m) and frame 2 (1005 m)
    runaway = RigidBodyDesc(
        "runaway",
        "sphere",
        radius=0.1,
        position=(985.0, 0.0, 5.0),
        linear_velocity=(100.0, 0.0, 0.0),
    )
    settings = PhysicsSettings(gravity=(0.0, 0.0, 0.0), ground=False)
    with pytest.raises(PhysicsError, match=r"body 'runaway' left .* frame 2 \(t=0\.200 s\)"):
        simulate_rigid([runaway], settings, fps=10.0, frames=5)


def test_same_inputs_give_identical_trajectories():
    frames = []
    for _ in range(2):
        bodies = [
            RigidBodyDesc(
                f"b{i}",
                "box",
                half_extents=(0.1, 0.1, 0.1),
                position=(0.05 * i, 0.0, 0.3 + 0.25 * i),
                quat=(0.96, 0.2, 0.1, 0.15),
                restitution=0.3,
            )
            for i in range(4)
        ]
        seen = []
        traj = simulate_rigid(bodies, PhysicsSettings(), fps=30.0, frames=31, progress=seen.append)
        assert seen == list(range(1, 31))
        frames.append(traj)
    a, b = frames
    for field in ("times", "positions", "quats", "linear_velocity", "angular_velocity"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.contacts == b.contacts
    assert len(a.contacts) >= 4


def test_invalid_descriptions_are_rejected():
    with pytest.raises(ValueError, match="unknown shape"):
        simulate_rigid([RigidBodyDesc("x", "torus")], PhysicsSettings(), fps=30.0, frames=2)
    with pytest.raises(ValueError, match="unknown solver"):
        simulate_rigid([], PhysicsSettings(solver="bullet"), fps=30.0, frames=2)


@pytest.mark.skipif(
    os.environ.get("RENDIFF_TEST_STEEL") != "1", reason="set RENDIFF_TEST_STEEL=1 (85 s compile)"
)
def test_steel_solver_bounces_and_holds_friction():
    h, e = 1.25, 0.7
    traj = _drop(solver="steel")
    first = traj.contacts[0]
    assert abs(first["time"] - math.sqrt(2 * h / G)) <= DT
    z = traj.positions[:, 0, 2].numpy() - 0.1
    # Steel reverses a speculative contact up to one step's travel (v dt = 2 cm) above the ground
    assert -1e-3 < z.min() < math.sqrt(2 * G * h) * DT
    apex = z[first["frame"] : traj.contacts[1]["frame"]].max()
    assert abs(apex - e * e * h) <= 0.1 * e * e * h
    assert _slope(20.0, solver="steel")[0] < 1e-3
    moved, expect = _slope(35.0, solver="steel")
    assert abs(moved - expect) < 0.1 * expect


def test_overlapping_bodies_that_overflow_the_contact_buffer_are_an_error():
    """1,000 spheres started inside each other ask for ~500k contacts of Newton's 55k buffer:
    the rest would be dropped silently and bodies fly ~100 m. It is an error naming the frame
    and the cause, not a run that exits 0."""
    import rendiff
    from rendiff.engine.physics import PhysicsError

    scene = rendiff.Scene(name="pile", frames=3, fps=12, size=(32, 32), seed=0)
    scene.add(rendiff.Plane(size=(6, 6)), name="ground")
    for i in range(1000):
        pos = (0.001 * (i % 10), 0.001 * (i // 10 % 10), 0.5 + 0.001 * (i // 100))
        scene.add(rendiff.Sphere(radius=0.1), rendiff.Pose(position=pos), dynamic=True,
                  name=f"s{i}")
    with pytest.raises(PhysicsError, match=r"too many contacts at frame 1 .*do dynamic bodies "
                                           r"start inside each other"):
        rendiff.simulate(scene, progress=False)
