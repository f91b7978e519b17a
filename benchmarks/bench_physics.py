"""Rigid-body physics on CPU: simulated steps per second, rendiff's wrapper vs a bare Newton loop.

Scene: N bodies (spheres and boxes, alternating) in two staggered layers above the ground, so
they fall, hit the ground and each other. The bare loop steps the very model, solver and collision
pipeline that :func:`rendiff.engine.physics.simulate_rigid` builds (collide, solve, swap); the
wrapper adds sampling frames, the fail-safe checks and, when ``record_contacts`` is on, the
solver's contact-force observable and the per-step contact scan. Building the model and the first
frame (kernel loading) are left out of every timing; each variant runs ``--repeats`` times,
interleaved, and the best rate is kept (the machine's background load only ever slows a run).

A second table does the same for the shipped robot arm (rendiff/data/robots/rendiff_arm.urdf)
sweeping its paddle through three boxes, with XPBD (16 iterations, what rendiff uses with robots)
and Steel: there the wrapper also writes the joint targets before every step and reads the joints
back (``newton.eval_ik``) every frame; the bare loop keeps the targets fixed.

Usage: python benchmarks/bench_physics.py [--bodies 10 100 1000] [--seconds 0.5] [--no-robot]
Prints the tables and writes benchmarks/results/physics_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import warp as wp

from rendiff.engine.physics import (
    PhysicsSettings,
    RigidBodyDesc,
    RobotDesc,
    _NewtonScene,
    simulate_rigid,
)
from rendiff.engine.robots import shipped_robot

FPS = 30.0
RESULTS = Path(__file__).parent / "results" / "physics_cpu.json"


def make_bodies(n: int, seed: int = 0) -> list[RigidBodyDesc]:
    """N spheres and boxes of size 0.1 m in two staggered layers, slightly tilted."""
    rng = np.random.default_rng(seed)
    per_layer = math.ceil(n / 2)
    side = math.ceil(math.sqrt(per_layer))
    spacing = 0.25
    bodies = []
    for i in range(n):
        layer, j = divmod(i, per_layer)
        x = (j % side + 0.5 * layer) * spacing
        y = (j // side + 0.5 * layer) * spacing
        z = 0.15 + 0.3 * layer
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0.0, 0.5)
        quat = (math.cos(angle / 2), *(math.sin(angle / 2) * axis))
        common = {"position": (x, y, z), "quat": quat, "restitution": 0.3}
        if i % 2:
            bodies.append(RigidBodyDesc(f"box{i}", "box", half_extents=(0.1, 0.1, 0.1), **common))
        else:
            bodies.append(RigidBodyDesc(f"ball{i}", "sphere", radius=0.1, **common))
    return bodies


def robot_scene(seconds: float) -> tuple[list[RigidBodyDesc], list[RobotDesc]]:
    """The shipped arm, paddle down, sweeping its yaw joint through three boxes on its arc."""
    down = {"shoulder": 0.952, "elbow": 1.391, "wrist_pitch": 0.799}
    arm = RobotDesc("arm", str(shipped_robot("rendiff_arm")), initial_q={"base_yaw": -1.0, **down},
                    targets={"base_yaw": [(0.0, -1.0), (seconds, 1.0)]}, interpolation="linear")
    boxes = [RigidBodyDesc(f"box{i}", "box", half_extents=(0.04, 0.04, 0.04), density=300.0,
                           position=(0.4 * math.cos(a), 0.4 * math.sin(a), 0.04))
             for i, a in enumerate((-0.5, 0.0, 0.5))]
    return boxes, [arm]


def bare_newton(bodies: list[RigidBodyDesc], settings: PhysicsSettings, steps: int,
                robots: list[RobotDesc] | None = None) -> float:
    """Steps per second of a plain collide/step/swap loop over the wrapper's model."""
    scene = _NewtonScene(bodies, settings, robots)
    dt = 1.0 / settings.rate_hz
    with wp.ScopedDevice(scene.device):
        solver, pipeline, control = scene.solver, scene.pipeline, scene.control
        contacts, state_0, state_1 = scene.contacts, scene.state_0, scene.state_1
        per_frame = round(settings.rate_hz / FPS)
        for _ in range(per_frame):  # warm-up: the wrapper's timing also skips its first frame
            state_0.clear_forces()
            pipeline.collide(state_0, contacts)
            solver.step(state_0, state_1, control, contacts, dt)
            state_0, state_1 = state_1, state_0
        start = time.perf_counter()
        for _ in range(steps):
            state_0.clear_forces()
            pipeline.collide(state_0, contacts)
            solver.step(state_0, state_1, control, contacts, dt)
            state_0, state_1 = state_1, state_0
        state_0.body_q.numpy()  # make sure the work is done
        elapsed = time.perf_counter() - start
    return steps / elapsed


def wrapper(bodies: list[RigidBodyDesc], settings: PhysicsSettings, frames: int,
            robots: list[RobotDesc] | None = None) -> float:
    """Steps per second of simulate_rigid between the end of frame 1 and the last frame."""
    stamps: dict[int, float] = {}
    simulate_rigid(bodies, settings, FPS, frames, robots=robots,
                   progress=lambda k: stamps.__setitem__(k, time.perf_counter()))
    steps = (frames - 2) * round(settings.rate_hz / FPS)
    return steps / (stamps[frames - 1] - stamps[1])


VARIANTS = ("bare_newton_steps_per_s", "wrapper_steps_per_s", "wrapper_contacts_steps_per_s")


def measure(variant: str, bodies: list[RigidBodyDesc], frames: int) -> float:
    """Steps per second of one variant over ``frames`` video frames (first frame excluded)."""
    if variant == "bare_newton_steps_per_s":
        steps = (frames - 2) * round(PhysicsSettings().rate_hz / FPS)
        return bare_newton(bodies, PhysicsSettings(record_contacts=False), steps)
    record = variant == "wrapper_contacts_steps_per_s"
    return wrapper(bodies, PhysicsSettings(record_contacts=record), frames)


def robot_rows(seconds: float, repeats: int) -> list[dict]:
    """Best steps per second of the robot scene, bare loop against wrapper, for each solver."""
    frames = max(3, round(seconds * FPS) + 2)
    bodies, robots = robot_scene(seconds)
    steps = (frames - 2) * round(PhysicsSettings().rate_hz / FPS)
    rows = []
    for solver in ("xpbd", "steel"):
        settings = PhysicsSettings(solver=solver, record_contacts=False)
        best = {"bare_newton_steps_per_s": 0.0, "wrapper_steps_per_s": 0.0}
        for _ in range(repeats):
            best["bare_newton_steps_per_s"] = max(best["bare_newton_steps_per_s"],
                                                  bare_newton(bodies, settings, steps, robots))
            best["wrapper_steps_per_s"] = max(best["wrapper_steps_per_s"],
                                              wrapper(bodies, settings, frames, robots))
        rows.append({"scene": "rendiff_arm + 3 boxes", "solver": solver, "steps": steps,
                     "rate_hz": settings.rate_hz, **best})
    return rows


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "warp": version("warp-lang"),
        "newton": version("newton"),
        "numpy": np.__version__,
        "device": "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=0.5, help="simulated time per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; best is kept")
    parser.add_argument("--no-robot", action="store_true", help="skip the robot arm table")
    args = parser.parse_args()

    rows = []
    for n in args.bodies:
        bodies = make_bodies(n)
        frames = max(3, round(args.seconds * FPS) + 2)
        steps = (frames - 2) * round(PhysicsSettings().rate_hz / FPS)
        row = {"bodies": n, "steps": steps, "rate_hz": PhysicsSettings().rate_hz, "solver": "xpbd"}
        best = dict.fromkeys(VARIANTS, 0.0)
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all variants
            for key in VARIANTS:
                best[key] = max(best[key], measure(key, bodies, frames))
        row.update(best)
        rows.append(row)

    header = f"{'bodies':>7} {'bare Newton':>12} {'wrapper':>12} {'+contacts':>12} {'overhead':>9}"
    print("simulated steps per second, CPU, XPBD at 240 Hz")
    print(header)
    for r in rows:
        overhead = r["bare_newton_steps_per_s"] / r["wrapper_contacts_steps_per_s"] - 1.0
        print(
            f"{r['bodies']:>7} {r['bare_newton_steps_per_s']:>12.1f} "
            f"{r['wrapper_steps_per_s']:>12.1f} {r['wrapper_contacts_steps_per_s']:>12.1f} "
            f"{overhead:>8.0%}"
        )
    out = {"machine": machine(), "results": rows}
    if not args.no_robot:
        out["robot_results"] = robot_rows(args.seconds, args.repeats)
        print("\nsimulated steps per second, CPU, robot arm at 240 Hz (contacts not recorded)")
        print(f"{'solver':>7} {'bare Newton':>12} {'wrapper':>12} {'overhead':>9}")
        for r in out["robot_results"]:
            overhead = r["bare_newton_steps_per_s"] / r["wrapper_steps_per_s"] - 1.0
            print(f"{r['solver']:>7} {r['bare_newton_steps_per_s']:>12.1f} "
                  f"{r['wrapper_steps_per_s']:>12.1f} {overhead:>8.0%}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
