"""Every default that more than one part of rendiff uses, named once.

The scene spec, the engine's settings, the generation pipelines, the public API and the data-set
runner read their defaults from here, so a default changes in one place. This module imports
nothing (the kernels, which import nothing of rendiff's, take these values as arguments).
"""

from __future__ import annotations

__all__ = [
    "ALPHA_SOLID",
    "CLOTH_ITERATIONS",
    "GRAVITY",
    "GROUND_FRICTION",
    "MPM_CELL_SIZE",
    "OVERLAP",
    "PHYSICS_RATE_HZ",
    "PHYSICS_SOLVER",
    "SCHEDULER",
    "SCHEDULERS",
    "STEPS_PRETRAINED",
    "STEPS_TRAINED",
    "WINDOW",
]

# -- Physics -----------------------------------------------------------------------------------

#: physics steps per second (rounded to a whole number of steps per video frame)
PHYSICS_RATE_HZ = 240.0
#: gravity, world Z up [m/s^2]
GRAVITY = (0.0, 0.0, -9.81)
#: rigid-body solver: "xpbd" or "steel"
PHYSICS_SOLVER = "xpbd"
#: friction of the ground plane when the scene has none
GROUND_FRICTION = 0.5
#: VBD iterations per cloth step
CLOTH_ITERATIONS = 10
#: MPM grid spacing [m]
MPM_CELL_SIZE = 0.02

# -- Rendering ---------------------------------------------------------------------------------

#: a Gaussian cloud is a solid surface (depth, normal, ids; it casts a shadow; an amodal mask
#: covers it) where its accumulated alpha exceeds this
ALPHA_SOLID = 0.5

# -- Generation --------------------------------------------------------------------------------

#: frames per denoising window of a long clip, and frames shared by neighbouring windows
WINDOW = 16
OVERLAP = 4
#: sampling steps of a trained rendiff model (10 DDIM steps are as good as 20 for the default
#: model: docs/default-model.md, table d) and of a pretrained AnimateDiff setup
STEPS_TRAINED = 10
STEPS_PRETRAINED = 20
#: sampler by short name -> diffusers scheduler class name
SCHEDULERS = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
              "dpm": "DPMSolverMultistepScheduler"}
SCHEDULER = "ddim"
