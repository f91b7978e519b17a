"""Deformables on CPU: MPM particle-steps per second and cloth vertex-steps per second.

MPM. A cube of sand (Drucker-Prager, 30 degrees, E = 100 kPa, 1600 kg/m^3) filled with 2 x 2 x 2
particles per 2 cm cell, resting on the ground and collapsing, at three particle counts:

- ``ours``: rendiff's explicit MLS-MPM kernels (:mod:`rendiff.engine.mpm`), a bare
  ``MPMSolver.step`` loop at the CFL step (0.4 dx / wave speed);
- ``wrapper``: the same through :func:`rendiff.engine.deformables.simulate_mpm` (per-frame
  read-back of particles and Gaussians, fail-safe checks, CFL step per frame), at 24 fps;
- ``newton``: Newton's own ``SolverImplicitMPM`` on the same particles (dense grid of the same
  voxel size, Newton's defaults otherwise: implicit granular rheology, friction 0.58 = tan 30),
  at the step of Newton's granular example (1/60 s).

Explicit and implicit steps differ in length by an order of magnitude, so the table gives both
particle-steps per second and simulated seconds per wall-clock second.

Cloth. A square cloth dropped onto a box (Newton's VBD, 10 iterations, 240 Hz): a bare
collide/step/swap loop over the model :func:`rendiff.engine.deformables.simulate_cloth` builds,
against the wrapper (per-frame read-back and checks), at three resolutions; and Newton's XPBD
spring cloth on the same mesh hanging from one edge (XPBD blows up when the sheet touches the
box, so it gets no box), for the per-step cost of Newton's other cloth solver.

Building models and the first step (kernel loading) are left out of every timing; each variant
runs ``--repeats`` times, interleaved, and the best rate is kept.

Usage: python benchmarks/bench_deformables.py [--particles 10000 30000 100000]
       [--cloth 16 32 64] [--repeats 2] [--no-newton-mpm]
Prints the tables and writes benchmarks/results/deformables_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import warp as wp
from _machine import machine_info  # (benchmarks/ is on sys.path)

from rendiff.engine import deformables as D
from rendiff.engine.mpm import MPMBodyDesc, MPMModel, MPMSolver
from rendiff.engine.physics import RigidBodyDesc
from rendiff.io.atomic import write_text

RESULTS = Path(__file__).parent / "results" / "deformables_cpu.json"
DX = 0.02
FPS = 24.0
NEWTON_DT = 1.0 / 60.0


def sand_cube(particles: int) -> tuple[MPMBodyDesc, tuple]:
    """A sand cube with about ``particles`` particles on the ground, and its grid domain."""
    spacing = DX / 2
    side = round(particles ** (1 / 3)) * spacing
    h = side / 2
    pts = D.fill_particles("box", spacing, half_extents=(h, h, h)) + [0.0, 0.0, h + 0.001]
    body = MPMBodyDesc("sand", pts, spacing**3, "sand", density=1600.0, youngs_modulus=1e5,
                       friction_deg=30.0)
    reach = h + 0.2 + side
    domain = ((-reach, -reach, -3 * DX), (reach, reach, side + 0.2))
    return body, domain


def ours(particles: int, steps: int) -> dict:
    """Bare MPMSolver loop: particle-steps per second and the CFL step."""
    body, domain = sand_cube(particles)
    model = MPMModel.build([body], domain, DX)
    solver = MPMSolver(model)
    s0, s1 = model.state(), model.state()
    dt = model.stable_dt(0.4, 1.0)
    solver.step(s0, s1, dt)
    s0, s1 = s1, s0
    start = time.perf_counter()
    for _ in range(steps):
        solver.step(s0, s1, dt)
        s0, s1 = s1, s0
    s0.x.numpy()
    elapsed = time.perf_counter() - start
    return {"particles": model.particle_count, "grid_nodes": int(np.prod(model.shape)),
            "dt": dt, "steps_per_s": steps / elapsed}


def wrapper(particles: int, frames: int) -> float:
    """simulate_mpm's steps per second between the end of frame 1 and the last frame."""
    body, domain = sand_cube(particles)
    counted = {"n": 0}
    marks: dict[int, tuple[float, int]] = {}
    real = MPMSolver.step

    def counting(self, a, b, dt):
        counted["n"] += 1
        real(self, a, b, dt)

    MPMSolver.step = counting
    try:
        D.simulate_mpm([body], D.DeformableSettings(mpm_domain=domain), FPS, frames,
                       progress=lambda k: marks.__setitem__(k, (time.perf_counter(),
                                                                counted["n"])))
    finally:
        MPMSolver.step = real
    (t1, n1), (t2, n2) = marks[1], marks[frames - 1]
    return (n2 - n1) / (t2 - t1)


def newton_mpm(particles: int, steps: int) -> dict:
    """Newton's SolverImplicitMPM on the same particles: steps per second at NEWTON_DT."""
    import newton
    from newton.solvers import SolverImplicitMPM

    body, _ = sand_cube(particles)
    builder = newton.ModelBuilder()
    SolverImplicitMPM.register_custom_attributes(builder)
    spacing = DX / 2
    mass = body.density * spacing**3
    for p in body.particles:
        builder.add_particle(wp.vec3(*p), wp.vec3(0.0), mass=mass, radius=spacing / 2)
    builder.add_ground_plane(cfg=newton.ModelBuilder.ShapeConfig(mu=0.5))
    model = builder.finalize(device="cpu")
    model.mpm.friction.fill_(math.tan(math.radians(30.0)))
    config = SolverImplicitMPM.Config()
    config.voxel_size = DX
    config.grid_type = "dense"
    solver = SolverImplicitMPM(model, config=config)
    s0, s1 = model.state(), model.state()
    solver.step(s0, s1, None, None, NEWTON_DT)
    s0, s1 = s1, s0
    start = time.perf_counter()
    for _ in range(steps):
        solver.step(s0, s1, None, None, NEWTON_DT)
        s0, s1 = s1, s0
    s0.particle_q.numpy()
    elapsed = time.perf_counter() - start
    return {"particles": model.particle_count, "dt": NEWTON_DT, "steps_per_s": steps / elapsed}


def cloth_setup(n: int) -> tuple[D.ClothDesc, RigidBodyDesc]:
    verts, faces = D.cloth_grid((0.8, 0.8), (n, n))
    box = RigidBodyDesc("box", "box", half_extents=(0.2, 0.2, 0.2), position=(0, 0, 0.2),
                        static=True)
    return D.ClothDesc("cloth", verts + [0.0, 0.0, 0.45], faces), box


def cloth_bare(n: int, steps: int) -> float:
    """Steps per second of a bare collide/step/swap loop over the wrapper's cloth model."""
    cloth, box = cloth_setup(n)
    settings = D.DeformableSettings()
    scene = D._ClothScene([cloth], [box], settings)
    dt = 1.0 / settings.rate_hz
    for _ in range(round(settings.rate_hz / FPS)):
        scene.step(dt)
    start = time.perf_counter()
    for _ in range(steps):
        scene.step(dt)
    scene.state_0.particle_q.numpy()
    return steps / (time.perf_counter() - start)


def cloth_wrapper(n: int, frames: int) -> float:
    """simulate_cloth's steps per second between the end of frame 1 and the last frame."""
    cloth, box = cloth_setup(n)
    marks: dict[int, float] = {}
    settings = D.DeformableSettings()
    D.simulate_cloth([cloth], settings, FPS, frames, [box],
                     progress=lambda k: marks.__setitem__(k, time.perf_counter()))
    steps = (frames - 2) * round(settings.rate_hz / FPS)
    return steps / (marks[frames - 1] - marks[1])


def cloth_xpbd(n: int, steps: int) -> float:
    """Newton's XPBD spring cloth on the same mesh, hanging from one edge (no box)."""
    import newton

    cloth, _ = cloth_setup(n)
    builder = newton.ModelBuilder(gravity=(0.0, 0.0, -9.81))
    builder.add_cloth_mesh(
        pos=wp.vec3(0.0, 0.0, 0.0), rot=wp.quat_identity(), scale=1.0, vel=wp.vec3(0.0),
        vertices=[wp.vec3(*p) for p in cloth.vertices],
        indices=[int(i) for i in cloth.faces.reshape(-1)], density=cloth.density,
        edge_ke=0.0, add_springs=True, spring_ke=1.0e3, spring_kd=0.0,
        particle_radius=cloth.thickness)
    for i in range(n + 1):  # the edge at -x
        builder.particle_mass[i * (n + 1)] = 0.0
        builder.particle_flags[i * (n + 1)] &= ~int(newton.ParticleFlags.ACTIVE)
    model = builder.finalize(device="cpu")
    solver = newton.solvers.SolverXPBD(model, iterations=10)
    pipeline = newton.CollisionPipeline(model)
    contacts = pipeline.contacts()
    control = model.control()
    s0, s1 = model.state(), model.state()
    dt = 1.0 / 240.0

    def step(a, b):
        a.clear_forces()
        pipeline.collide(a, contacts)
        solver.step(a, b, control, contacts, dt)
        return b, a

    for _ in range(10):
        s0, s1 = step(s0, s1)
    start = time.perf_counter()
    for _ in range(steps):
        s0, s1 = step(s0, s1)
    q = s0.particle_q.numpy()
    assert np.isfinite(q).all(), "XPBD hanging cloth blew up"
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--cloth", type=int, nargs="+", default=[16, 32, 64],
                        help="cloth resolutions (cells per side)")
    parser.add_argument("--steps", type=int, default=20, help="MPM steps per timing")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant; best is kept")
    parser.add_argument("--no-newton-mpm", action="store_true",
                        help="skip Newton's SolverImplicitMPM (first use compiles ~1 min)")
    args = parser.parse_args()

    mpm_rows = []
    for n in args.particles:
        best: dict = {}
        for _ in range(args.repeats):
            r = ours(n, args.steps)
            if r["steps_per_s"] > best.get("ours", {}).get("steps_per_s", 0.0):
                best["ours"] = r
            best["wrapper_steps_per_s"] = max(best.get("wrapper_steps_per_s", 0.0),
                                              wrapper(n, 4))
            if not args.no_newton_mpm:
                r = newton_mpm(n, max(2, args.steps // 5))
                if r["steps_per_s"] > best.get("newton", {}).get("steps_per_s", 0.0):
                    best["newton"] = r
        row = {"particles": best["ours"]["particles"], "grid_nodes": best["ours"]["grid_nodes"],
               "ours_dt": best["ours"]["dt"], "ours_steps_per_s": best["ours"]["steps_per_s"],
               "wrapper_steps_per_s": best["wrapper_steps_per_s"]}
        if "newton" in best:
            row.update(newton_dt=best["newton"]["dt"],
                       newton_steps_per_s=best["newton"]["steps_per_s"])
        mpm_rows.append(row)

    print("MPM sand cube on CPU (2 cm cells, 8 particles per cell)")
    print(f"{'particles':>9} {'ours st/s':>10} {'Mpart-st/s':>10} {'sim s/s':>8} "
          f"{'wrapper':>8} {'overhead':>8} {'Newton st/s':>11} {'sim s/s':>8} "
          f"{'ours/Newton (sim time)':>22}")
    for r in mpm_rows:
        sim_ours = r["ours_steps_per_s"] * r["ours_dt"]
        overhead = r["ours_steps_per_s"] / r["wrapper_steps_per_s"] - 1.0
        line = (f"{r['particles']:>9} {r['ours_steps_per_s']:>10.1f} "
                f"{r['ours_steps_per_s'] * r['particles'] / 1e6:>10.2f} {sim_ours:>8.3f} "
                f"{r['wrapper_steps_per_s']:>8.1f} {overhead:>8.0%}")
        if "newton_steps_per_s" in r:
            sim_newton = r["newton_steps_per_s"] * r["newton_dt"]
            line += (f" {r['newton_steps_per_s']:>11.2f} {sim_newton:>8.3f} "
                     f"{sim_ours / sim_newton:>22.2f}")
        print(line)

    cloth_rows = []
    for n in args.cloth:
        frames = 6
        steps = (frames - 2) * 10
        best = {"bare_steps_per_s": 0.0, "wrapper_steps_per_s": 0.0, "xpbd_steps_per_s": 0.0}
        for _ in range(args.repeats):
            best["bare_steps_per_s"] = max(best["bare_steps_per_s"], cloth_bare(n, steps))
            best["wrapper_steps_per_s"] = max(best["wrapper_steps_per_s"],
                                              cloth_wrapper(n, frames))
            best["xpbd_steps_per_s"] = max(best["xpbd_steps_per_s"], cloth_xpbd(n, steps))
        cloth_rows.append({"resolution": n, "vertices": (n + 1) ** 2, "steps": steps, **best})

    print("\ncloth on CPU, 240 Hz, 10 iterations (VBD onto a box; XPBD hanging)")
    print(f"{'vertices':>8} {'VBD bare st/s':>13} {'wrapper':>8} {'overhead':>8} "
          f"{'Mvert-st/s':>10} {'XPBD st/s':>9} {'VBD/XPBD':>8}")
    for r in cloth_rows:
        overhead = r["bare_steps_per_s"] / r["wrapper_steps_per_s"] - 1.0
        print(f"{r['vertices']:>8} {r['bare_steps_per_s']:>13.1f} "
              f"{r['wrapper_steps_per_s']:>8.1f} {overhead:>8.0%} "
              f"{r['wrapper_steps_per_s'] * r['vertices'] / 1e6:>10.3f} "
              f"{r['xpbd_steps_per_s']:>9.1f} "
              f"{r['bare_steps_per_s'] / r['xpbd_steps_per_s']:>8.2f}")

    out = {"machine": machine_info(warp=version("warp-lang"), newton=version("newton"),
                                   device="cpu"),
           "mpm": mpm_rows, "cloth": cloth_rows}
    write_text(RESULTS, json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
