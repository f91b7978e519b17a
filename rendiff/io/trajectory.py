"""The simulated 3D state of a run, written beside its layers and read back exactly.

``trajectory.npz`` holds the whole :class:`~rendiff.engine.trajectory.Trajectory`, float for
float: every tensor as a named numpy array (``meshes/0/vertices``, ``rigid/ball/positions``,
``humans/0/joints``, ``robots/0/q``, ``cameras/viewmats``, ...) and, under ``structure``, a JSON
description of how they fit together (the track types, names, ids, lights per frame, textures,
contacts). ``numpy.load`` opens it; :func:`load_trajectory` rebuilds the trajectory, which
``rendiff.render`` renders to the same layers without simulating again (``rendiff render
OUT/trajectory.npz -o OUT2``, at another ``--size`` too). Nothing in it is pickled: only the
types listed in ``_TYPES`` are rebuilt.

``trajectory.csv`` is the same entities' root state as one table (pandas, spreadsheets), Kubric
style: one row per entity and frame with ``frame, time, entity, instance_id, x, y, z, qw, qx,
qy, qz, vx, vy, vz, wx, wy, wz`` (world frame, metres, seconds, radians; the quaternion rotates
the entity's frame into the world) and the entity's world axis-aligned box at that frame
(``box_min_* / box_max_*`` over its vertices or Gaussian centres; empty for an entity with no
geometry).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rendiff.engine.camera import CameraFrames
from rendiff.engine.deformables import ClothTrajectory, MPMTrajectory
from rendiff.engine.textures import CheckerTexture, ImageTexture
from rendiff.engine.trajectory import (
    GaussianTrack,
    HumanTrack,
    LightState,
    MeshTrack,
    RigidTrack,
    RobotTrack,
    Trajectory,
)

from .atomic import atomic_path
from .npz import write_npz

__all__ = ["TRAJECTORY_FORMAT", "TrajectoryFileError", "load_trajectory", "save_trajectory",
           "trajectory_table"]

TRAJECTORY_FORMAT = "rendiff.trajectory/1"
_TYPES = {cls.__name__: cls for cls in (
    Trajectory, RigidTrack, MeshTrack, GaussianTrack, HumanTrack, RobotTrack, LightState,
    CameraFrames, ImageTexture, CheckerTexture, ClothTrajectory, MPMTrajectory)}
_COLUMNS = ["frame", "time", "entity", "instance_id", "x", "y", "z", "qw", "qx", "qy", "qz",
            "vx", "vy", "vz", "wx", "wy", "wz", "box_min_x", "box_min_y", "box_min_z",
            "box_max_x", "box_max_y", "box_max_z"]


class TrajectoryFileError(ValueError):
    """A trajectory file that is missing, damaged, of another format, or names unknown types."""


def _encode(obj: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, torch.Tensor):
        arrays[key] = obj.detach().cpu().numpy()
        return {"__tensor__": key, "shape": list(obj.shape)}  # the writer makes 0-d arrays 1-d
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _TYPES.get(name) is not type(obj):
            raise TypeError(f"cannot write a {name} into a trajectory file")
        return {"__type__": name, "fields": {
            f.name: _encode(getattr(obj, f.name), f"{key}/{f.name}".lstrip("/"), arrays)
            for f in dataclasses.fields(obj) if f.init}}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"{key}: dictionary keys must be strings")
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in obj.items()}}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{key}: cannot write a {type(obj).__name__} into a trajectory file")


def _decode(node: Any, arrays) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        array = np.array(arrays[node["__tensor__"]])
        return torch.from_numpy(array.reshape(node.get("shape", array.shape)))
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _decode(v, arrays) for k, v in node["__dict__"].items()}
    if "__type__" in node:
        cls = _TYPES.get(node["__type__"])
        if cls is None:
            raise TrajectoryFileError(f"unknown type {node['__type__']!r}")
        return cls(**{k: _decode(v, arrays) for k, v in node["fields"].items()})
    raise TrajectoryFileError(f"unreadable entry {str(node)[:60]}")


def save_trajectory(traj: Trajectory, path: str | Path) -> Path:
    """Writes ``traj`` to ``path`` (``trajectory.npz``, see the module docstring), atomically.
    Timings, which change run to run, are left out."""
    arrays: dict[str, np.ndarray] = {}
    traj = dataclasses.replace(traj, timings={})
    structure = {"format": TRAJECTORY_FORMAT, "trajectory": _encode(traj, "", arrays)}
    arrays["structure"] = np.array(json.dumps(structure))
    path = Path(path)
    with atomic_path(path) as tmp:
        write_npz(tmp, arrays)  # lossless deflate, as layers.npz (rendiff.io.npz)
    return path


def load_trajectory(path: str | Path) -> Trajectory:
    """Reads a ``trajectory.npz`` written by :func:`save_trajectory` (or ``rendiff render`` /
    ``rendiff run``) back into the :class:`Trajectory` it holds, on the CPU.

    Raises:
        TrajectoryFileError: the file is missing, unreadable, or of another format (one line,
            naming the file).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            structure = json.loads(str(data["structure"].reshape(-1)[0]))
            if structure.get("format") != TRAJECTORY_FORMAT:
                raise TrajectoryFileError(f"format {structure.get('format')!r}, expected "
                                          f"{TRAJECTORY_FORMAT!r}")
            traj = _decode(structure["trajectory"], data)
    except TrajectoryFileError as e:
        raise TrajectoryFileError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise TrajectoryFileError(f"{path}: file not found") from None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise TrajectoryFileError(f"{path}: not a readable trajectory file ({str(e)[:100]})") \
            from None
    if not isinstance(traj, Trajectory):
        raise TrajectoryFileError(f"{path}: holds no trajectory")
    return traj


def _boxes(traj: Trajectory) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """World axis-aligned box per entity and frame ([T, 3] min and max)."""
    out = {}
    for m in traj.meshes:
        if m.vertices.shape[1]:
            out[m.name] = (m.vertices.amin(1), m.vertices.amax(1))
    for g in traj.gaussians:
        if g.means.shape[1]:
            out[g.name] = (g.means.amin(1), g.means.amax(1))
    return out


def trajectory_table(traj: Trajectory) -> str:
    """The entities' root state per frame as CSV text (columns in the module docstring), rows in
    frame order, then instance-id order."""
    traj = traj.to("cpu")
    boxes = _boxes(traj)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_COLUMNS)
    ids = {name: i + 1 for i, name in enumerate(traj.entity_names)}
    names = [n for n in traj.entity_names if n in traj.rigid]
    for k in range(traj.frames):
        for name in names:
            r = traj.rigid[name]
            row = [k, repr(float(traj.times[k])), name, ids[name]]
            for v in (r.positions[k], r.quats[k], r.linear_velocity[k], r.angular_velocity[k]):
                row += [repr(float(x)) for x in v]
            if name in boxes:
                row += [repr(float(x)) for x in (*boxes[name][0][k], *boxes[name][1][k])]
            else:
                row += [""] * 6
            w.writerow(row)
    return buf.getvalue()
