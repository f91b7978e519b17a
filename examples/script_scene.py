"""Script a scene in Python, render its maps and save them (the README's example).

    python examples/script_scene.py -o out/script --frames 24 --size 128x128
"""

import argparse

import rendiff

ap = argparse.ArgumentParser()
ap.add_argument("-o", "--out", default="out/script")
ap.add_argument("--frames", type=int, default=24)
ap.add_argument("--size", default="128x128")
args = ap.parse_args()
w, h = (int(v) for v in args.size.split("x"))

scene = rendiff.Scene(name="two_balls", frames=args.frames, fps=12, size=(w, h), seed=1)
scene.add(rendiff.Plane(size=(6, 6)), name="ground")
scene.add(rendiff.Sphere(radius=0.15), rendiff.Pose(position=(0, 0, 1.0)),
          rendiff.Material(restitution=0.7), rendiff.Appearance(color=(0.9, 0.2, 0.2)),
          dynamic=True, name="red_ball")
scene.add(rendiff.Box(size=(0.3, 0.3, 0.3)), rendiff.Pose(position=(0.4, 0.2, 0.6)),
          rendiff.Material(friction=0.8), rendiff.Appearance(color=(0.2, 0.4, 0.9)),
          dynamic=True, name="blue_box")
scene.add_light(rendiff.Directional(direction=(-0.3, 0.2, -1.0)))
scene.add_light(rendiff.Ambient(intensity=0.3))
scene.camera = rendiff.Camera(fov_deg=50, path=rendiff.OrbitPath(radius=2.5, height=1.0))

traj = rendiff.simulate(scene)
layers = rendiff.render(traj)
print({k.value: tuple(v.shape) for k, v in layers.items()})
rendiff.save(args.out, layers, scene=scene)
