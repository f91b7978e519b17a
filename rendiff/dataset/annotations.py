"""Exact per-clip annotations from a simulated trajectory and its rendered layers.

Everything here is derived from the simulation state (poses, velocities, meshes, Gaussians,
skeletons) and the rendered id and depth layers, so it is exact up to float rounding: no
detector, no manual labels. :func:`clip_annotations` returns plain JSON-ready data.

Conventions (also written into every ``annotations.json`` under ``"conventions"``):

* World frame: metres, +Z up. Quaternions are (w, x, y, z). Cameras are OpenCV (x right, y down,
  z forward); ``world_to_camera`` is the 4x4 view matrix, ``camera_to_world`` its inverse.
* Pixels: x right, y down, pixel (i, j) covers [j, j+1) x [i, i+1), its centre is (j+0.5, i+0.5)
  (the renderer samples pixel centres). 2D boxes are COCO ``[x, y, w, h]``.
* Floats are rounded to 6 decimals (micrometres, micro-pixels); non-finite values become null.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from rendiff import defaults
from rendiff.engine.camera import CameraFrames
from rendiff.engine.entities import kind_of
from rendiff.engine.layers import Layer, Layers
from rendiff.engine.trajectory import GaussianTrack, HumanTrack, MeshTrack, RigidTrack, Trajectory
from rendiff.engine.transforms import quat_normalize, quat_to_matrix
from rendiff.scenes.spec import (
    Scene,
)

__all__ = ["clip_annotations", "camera_annotations", "ANNOTATION_FORMAT", "CONVENTIONS",
           "BOX_DEFINITIONS", "KEYPOINT_OCCLUSION"]

ANNOTATION_FORMAT = "rendiff.annotations/1"
DECIMALS = 6

# Corner k of a 3D box has signs SIGNS[k] (x, y, z), z changing fastest: k = 4*ix + 2*iy + iz
# with 0 = minus and 1 = plus along that box axis.
_SIGNS = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=3)))  # [8, 3]

CONVENTIONS = {
    "world": "metres, +Z up; quaternions (w, x, y, z)",
    "camera": "OpenCV: x right, y down, z forward; world_to_camera = view matrix, "
              "camera_to_world its inverse; fov from image size and focal length",
    "pixels": "x right, y down; pixel (i, j) spans [j, j+1) x [i, i+1), centre (j+0.5, i+0.5)",
    "bbox": "COCO [x, y, w, h] in pixels: tight box of the entity's pixels in the instance "
            "layer (x = first column, w = last column + 1 - x); null when not visible",
    "bbox_projected": "[x, y, w, h] extent of the 8 projected 3D-box corners, not clipped to "
                      "the image; null when a corner is not in front of the near plane",
    "box3d": "oriented box: centre (world), size (along the box axes), quaternion (box axes in "
             "world), corners [8][3] world with corner k = centre + R @ (size/2 * s_k), "
             "s_k = (x, y, z) signs from itertools.product((-1, 1), repeat=3)",
    "visible_fraction": "|visible pixels & amodal pixels| / |amodal pixels|; visible = the "
                        "instance layer, amodal = the entity rendered alone (meshes: any "
                        "covered pixel centre; Gaussians: alpha > 0.5); null when the amodal "
                        "mask is empty or amodal annotations were not computed",
    "velocity": "linear m/s and angular rad/s, both in world axes",
    "floats": f"rounded to {DECIMALS} decimals; non-finite values are null",
}

BOX_DEFINITIONS = {
    "primitive": "the primitive's exact analytic extent in the entity's own frame (sphere: "
                 "cube of side 2r; box: its size; cylinder: 2r x 2r x h; capsule: "
                 "2r x 2r x (length + 2r); plane: size x 0), centred on the entity origin",
    "mesh": "tight axis-aligned box of the mesh's vertices in the entity's own frame",
    "gaussians": "tight box, in the entity's own frame (its root pose), of every Gaussian's "
                 "ellipsoid at the radius where that Gaussian alone reaches alpha 0.5 "
                 "(Mahalanobis sqrt(2 ln(2 opacity)); 0 when opacity <= 0.5), recomputed per "
                 "frame because the cloud deforms",
    "human": "gravity-aligned box per frame in the body's heading frame (x forward = "
             "horizontal left-hip-minus-right-hip direction crossed with +Z, y left, z up), "
             "tight around every posed mesh vertex; the pose is the pelvis joint with that "
             "heading; angular velocity is the heading's yaw rate",
}

KEYPOINT_OCCLUSION = (
    "COCO v: 0 = not in front of the camera or outside the image (x = y = 0), 1 = in the image "
    "but occluded, 2 = visible. A keypoint is visible when the depth layer at its pixel is at "
    "least its camera depth minus a tolerance: 1.5 x the keypoint's distance to the nearest "
    "vertex of its own body (the joint centre lies that far under the skin; rays meet the skin "
    "off the shortest path, hence the 1.5) plus one pixel's footprint at that depth (z / f: "
    "the depth is sampled at the pixel centre, not at the keypoint)."
)


# --------------------------------------------------------------------------------------------
# JSON helpers


def _num(x: Tensor | np.ndarray | float, decimals: int = DECIMALS):
    """Tensor/array/float -> nested lists of Python floats rounded to ``decimals``;
    non-finite -> None."""
    a = np.asarray(x.detach().cpu().double().numpy() if isinstance(x, Tensor) else x,
                   dtype=np.float64)
    r = np.round(a, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    if np.isfinite(r).all():
        return r.tolist()
    obj = np.where(np.isfinite(r), r, np.nan).astype(object)
    obj[~np.isfinite(r)] = None
    return obj.tolist()


def _box_list(b: Tensor) -> list[float]:
    """[x0, y0, x1, y1] -> COCO [x, y, w, h]."""
    x0, y0, x1, y1 = (float(v) for v in b)
    return _num(torch.tensor([x0, y0, x1 - x0, y1 - y0], dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# Cameras


def camera_annotations(cams: CameraFrames) -> dict:
    """Per-frame intrinsics and extrinsics as plain data (``cameras.json``).

    Returns:
        dict with width, height, near, far, convention, and ``frames``: a list of
        ``{frame, K [3][3], world_to_camera [4][4], camera_to_world [4][4], position [3],
        fov_x_deg, fov_y_deg}``.
    """
    view = cams.viewmats.double()
    c2w = torch.linalg.inv(view)
    K = cams.K.double()
    frames = []
    for k in range(len(cams)):
        fx, fy = float(K[k, 0, 0]), float(K[k, 1, 1])
        frames.append({
            "frame": k,
            "K": _num(K[k]),
            "world_to_camera": _num(view[k]),
            "camera_to_world": _num(c2w[k]),
            "position": _num(c2w[k, :3, 3]),
            "fov_x_deg": _num(math.degrees(2 * math.atan(cams.width / (2 * fx)))),
            "fov_y_deg": _num(math.degrees(2 * math.atan(cams.height / (2 * fy)))),
        })
    return {
        "width": cams.width,
        "height": cams.height,
        "near": float(cams.near),
        "far": float(cams.far),
        "convention": CONVENTIONS["camera"],
        "frames": frames,
    }


# --------------------------------------------------------------------------------------------
# Poses and 3D boxes


def _yaw_quats(yaw: Tensor) -> Tensor:
    """Rotations about +Z [T, 4] (w, x, y, z)."""
    z = torch.zeros_like(yaw)
    return torch.stack([torch.cos(yaw / 2), z, z, torch.sin(yaw / 2)], -1)


def _human_frame(human: HumanTrack, root: RigidTrack, times: Tensor) -> RigidTrack:
    """Pelvis position with the body's heading as rotation, and the heading's yaw rate."""
    left = human.joints[:, 1] - human.joints[:, 2]  # SMPL joints 1, 2: left hip, right hip
    # forward = left x up, i.e. (left_y, -left_x, 0)
    fwd = torch.stack([left[:, 1], -left[:, 0]], -1).double()
    ok = fwd.norm(dim=-1) > 1e-9
    yaw = torch.where(ok, torch.atan2(fwd[:, 1], fwd[:, 0]), torch.zeros_like(fwd[:, 0]))
    yaw = torch.from_numpy(np.unwrap(yaw.numpy()))
    rate = torch.zeros_like(yaw)
    if yaw.shape[0] > 1:
        rate = torch.gradient(yaw, spacing=(times.double(),), dim=0)[0]
    ang = torch.zeros(yaw.shape[0], 3, dtype=torch.float64)
    ang[:, 2] = rate
    return RigidTrack(root.positions.double(), _yaw_quats(yaw), root.linear_velocity.double(),
                      ang)


def _local_extent(points: Tensor, half: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Centre and size [..., 3] of the tight box of points [..., N, 3] (each grown by ``half``
    [..., N, 3] when given)."""
    lo, hi = (points, points) if half is None else (points - half, points + half)
    lo, hi = lo.amin(-2), hi.amax(-2)
    return (lo + hi) / 2, hi - lo


def _boxes(geom, pose: RigidTrack, track: MeshTrack | GaussianTrack) -> tuple[Tensor, Tensor]:
    """Box centre in the entity frame [T, 3] and size [T, 3], in float64."""
    T = pose.positions.shape[0]
    R = quat_to_matrix(pose.quats.double())  # [T, 3, 3]
    p = pose.positions.double()
    size = kind_of(geom).size(geom)
    if size is not None:
        return torch.zeros(T, 3, dtype=torch.float64), size.expand(T, 3)
    if isinstance(track, GaussianTrack):
        local = torch.einsum("tji,tnj->tni", R, track.means.double() - p[:, None])
        Rg = quat_to_matrix(track.quats.double())  # [T, N, 3, 3]
        Rl = torch.einsum("tji,tnjk->tnik", R, Rg)
        o = track.opacities.double().clamp(max=1.0)
        r = torch.sqrt(2 * torch.log((2 * o).clamp_min(1.0)))  # alpha-0.5 Mahalanobis radius
        scales = (track.frame_scales if getattr(track, "frame_scales", None) is not None
                  else track.scales[None].expand(T, -1, -1)).double()  # MPM: per frame
        half = torch.einsum("tnij,tnj->tni", Rl.abs(), scales * r[:, None])
        return _local_extent(local, half)
    local = torch.einsum("tji,tvj->tvi", R, track.vertices.double() - p[:, None])
    if kind_of(geom).deforms:
        return _local_extent(local)  # per frame: bodies, cloth and robot links move
    centre, size = _local_extent(local[0])  # a rigid mesh: the frame-0 extent holds throughout
    return centre.expand(T, 3), size.expand(T, 3)


# --------------------------------------------------------------------------------------------
# Image-space measurements


def _instance_stats(inst: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Per-id pixel counts [T, n+1] and tight boxes [T, n+1, 4] (x0, y0, x1, y1 exclusive) of an
    id layer [T, H, W]."""
    T, H, W = inst.shape
    ids = inst.reshape(T, -1).long().clamp(0, n)
    rows = torch.arange(H).repeat_interleave(W).expand(T, -1)
    cols = torch.arange(W).repeat(H).expand(T, -1)
    counts = torch.zeros(T, n + 1, dtype=torch.long).scatter_add_(1, ids, torch.ones_like(ids))

    def red(vals: Tensor, how: str, init: int) -> Tensor:
        out = torch.full((T, n + 1), init, dtype=torch.long)
        return out.scatter_reduce_(1, ids, vals, how, include_self=True)

    boxes = torch.stack([red(cols, "amin", W), red(rows, "amin", H),
                         red(cols, "amax", -1) + 1, red(rows, "amax", -1) + 1], -1)
    return counts, boxes


def _amodal_masks(track: MeshTrack | GaussianTrack, cams: CameraFrames) -> Tensor:
    """[T, H, W] bool: the entity rendered alone, by the same rasterizer as the full render."""
    from rendiff.kernels.gaussian_raster import rasterize_gaussians
    from rendiff.kernels.mesh_raster import rasterize_triangles

    W, H = cams.width, cams.height
    out = torch.zeros(len(cams), H, W, dtype=torch.bool)
    for k in range(len(cams)):
        if isinstance(track, MeshTrack):
            frags = rasterize_triangles(track.vertices[k], track.faces, cams.viewmats[k],
                                        cams.K[k], W, H, near=cams.near)
            out[k] = frags.face_id >= 0
        else:
            gr = rasterize_gaussians(track.means[k], track.quats[k], track.scales_at(k),
                                     track.opacities, track.colors[k], cams.viewmats[k],
                                     cams.K[k], W, H, near=cams.near, far=cams.far)
            out[k] = gr.alpha > defaults.ALPHA_SOLID
    return out


def _keypoints(human: HumanTrack, mesh: MeshTrack, kp2d: Tensor, cams: CameraFrames,
               depth: Tensor) -> Tensor:
    """COCO-17 keypoints [T, 17, 3] (x, y, v) with v from a depth test (see KEYPOINT_OCCLUSION).

    Args:
        kp2d: [T, 17, 3] the renderer's projections (x, y, 1 = in front and inside the image).
        depth: [T, H, W] the depth layer.
    """
    T = kp2d.shape[0]
    _, z = cams.project(human.coco17)  # [T, 17]
    pts = mesh.means if isinstance(mesh, GaussianTrack) else mesh.vertices  # avatars: Gaussians
    skin = torch.stack([torch.cdist(human.coco17[k], pts[k]).amin(-1)
                        for k in range(T)])  # [T, 17]
    f = 0.5 * (cams.K[:, 0, 0] + cams.K[:, 1, 1])  # [T]
    tol = 1.5 * skin + z / f[:, None]
    inside = kp2d[..., 2] > 0
    j = kp2d[..., 0].floor().long().clamp(0, cams.width - 1)
    i = kp2d[..., 1].floor().long().clamp(0, cams.height - 1)
    seen = depth[torch.arange(T)[:, None], i, j]  # [T, 17]
    visible = seen >= z - tol
    v = torch.where(inside, torch.where(visible, 2.0, 1.0), 0.0)
    xy = torch.where(inside[..., None], kp2d[..., :2], torch.zeros_like(kp2d[..., :2]))
    return torch.cat([xy, v[..., None]], -1)


# --------------------------------------------------------------------------------------------


def clip_annotations(traj: Trajectory, layers: Layers, *, scene: Scene,
                     amodal: bool = True) -> dict:
    """Exact annotations of every entity at every frame of a clip.

    Every entity of the scene is listed (the ground plane too, flagged ``thing: false``; static
    scenery flagged ``static: true``), in instance-id order. Per frame each entity has its 3D
    pose and velocities, an oriented 3D box (``box_definition`` names its entry in
    ``BOX_DEFINITIONS``: primitive, mesh, gaussians or human), its 2D box and pixel
    count in the instance layer, the 2D extent of its projected 3D box and, with ``amodal``,
    the pixel count of the entity rendered alone and its visible fraction. People also get
    COCO-17 keypoints in pixels (with occlusion, see ``KEYPOINT_OCCLUSION``) and in the world.

    Args:
        traj: the simulated clip (:func:`rendiff.simulate`) of ``scene``.
        layers: its render (:func:`rendiff.render`); needs the instance and depth layers.
        amodal: rasterize each entity alone for amodal pixel counts and visible fractions
            (one extra rasterization per entity and frame).
    Returns:
        A JSON-serialisable dict, deterministic for the same inputs (floats rounded to 6
        decimals).
    """
    for need in (Layer.INSTANCE, Layer.DEPTH):
        if need not in layers:
            raise ValueError(f"clip_annotations: layers lack the {need.value!r} layer")
    cams = layers.cameras
    T = traj.frames
    if layers.frames != T:
        raise ValueError(f"clip_annotations: trajectory has {T} frames, layers {layers.frames}")
    n = len(scene.entities)
    inst = layers[Layer.INSTANCE].cpu()
    depth = layers[Layer.DEPTH].cpu()
    counts, boxes2d = _instance_stats(inst, n)
    tracks: dict[str, MeshTrack | GaussianTrack] = {m.name: m for m in traj.meshes}
    tracks.update({g.name: g for g in traj.gaussians})
    humans = {h.name: (p, h) for p, h in enumerate(traj.humans)}

    entities = []
    for idx, e in enumerate(scene.entities):
        iid = idx + 1
        g = e.geometry
        track = tracks.get(e.name)
        if track is None or track.instance_id != iid:
            raise ValueError(f"clip_annotations: entity {e.name!r} has no track with instance "
                             f"id {iid} in the trajectory")
        root = traj.rigid[e.name]
        is_human = kind_of(g).person
        if is_human:
            p, human = humans[e.name]
            pose = _human_frame(human, root, traj.times)
            kind, box_def = "human", "human"
        else:
            pose = RigidTrack(root.positions.double(), quat_normalize(root.quats.double()),
                              root.linear_velocity.double(), root.angular_velocity.double())
            box_def = kind_of(g).box_definition
            kind = "gaussians" if box_def == "gaussians" else "mesh"
        R = quat_to_matrix(pose.quats)  # [T, 3, 3]
        world = torch.zeros(T, 4, 4, dtype=torch.float64)
        world[:, :3, :3] = R
        world[:, :3, 3] = pose.positions
        world[:, 3, 3] = 1.0
        c_local, size = _boxes(g, pose, track)
        centre = torch.einsum("tij,tj->ti", R, c_local) + pose.positions
        offsets = _SIGNS.double() * size[:, None] / 2  # [T, 8, 3] in the box frame
        corners = centre[:, None] + torch.einsum("tij,tkj->tki", R, offsets)
        uv, zc = cams.project(corners.float())
        in_front = (zc > cams.near).all(-1)
        proj = torch.cat([uv.double().amin(1), uv.double().amax(1)], -1)  # [T, 4]
        if amodal:
            am = _amodal_masks(track, cams)
            am_px = am.reshape(T, -1).sum(-1)
            both = (am & (inst == iid)).reshape(T, -1).sum(-1)
        kps = None
        if is_human and layers.keypoints_coco is not None:
            kps = _keypoints(human, track, layers.keypoints_coco[:, p].cpu(), cams, depth)

        frames = []
        for k in range(T):
            vis = int(counts[k, iid])
            fr = {
                "frame": k,
                "position": _num(pose.positions[k]),
                "quaternion": _num(pose.quats[k]),
                "world_from_entity": _num(world[k]),
                "linear_velocity": _num(pose.linear_velocity[k]),
                "angular_velocity": _num(pose.angular_velocity[k]),
                "box3d": {"center": _num(centre[k]), "size": _num(size[k]),
                          "quaternion": _num(pose.quats[k]), "corners": _num(corners[k])},
                "bbox": _box_list(boxes2d[k, iid]) if vis > 0 else None,
                "bbox_projected": _box_list(proj[k]) if bool(in_front[k]) else None,
                "visible_pixels": vis,
                "amodal_pixels": int(am_px[k]) if amodal else None,
                "visible_fraction": (_num(float(both[k]) / float(am_px[k]))
                                     if amodal and int(am_px[k]) > 0 else None),
            }
            if kps is not None:
                fr["keypoints"] = [[x, y, int(v)] for (x, y, _), v in
                                   zip(_num(kps[k]), kps[k, :, 2].tolist(), strict=True)]
                fr["num_keypoints"] = int((kps[k, :, 2] > 0).sum())
                fr["keypoints_3d"] = _num(human.coco17[k])
            frames.append(fr)
        entities.append({
            "instance_id": iid,
            "name": e.name,
            "label": e.semantic_label,
            "category": "person" if is_human else e.semantic_label,
            "kind": kind,
            "geometry": g.type,
            "semantic_id": None if is_human else int(track.semantic_id),
            "static": (not e.dynamic) and e.animation is None and not is_human,
            "thing": kind_of(g).thing,
            "box_definition": box_def,
            "frames": frames,
        })

    return {
        "format": ANNOTATION_FORMAT,
        "frames": T,
        "fps": float(layers.fps),
        "width": cams.width,
        "height": cams.height,
        "amodal": bool(amodal),
        "semantic_classes": list(layers.semantic_classes),
        "conventions": {**CONVENTIONS, "keypoints": KEYPOINT_OCCLUSION},
        "box_definitions": BOX_DEFINITIONS,
        "cameras": camera_annotations(cams),
        "entities": entities,
        "robots": [_robot_annotations(r, scene) for r in getattr(traj, "robots", [])],
    }


def _robot_annotations(robot, scene) -> dict:
    """A robot's joints and links per frame, from the simulator (``RobotTrack``)."""
    names = [e.name for e in scene.entities]
    return {
        "name": robot.name,
        "instance_id": names.index(robot.name) + 1 if robot.name in names else None,
        "joint_names": list(robot.joint_names),
        "joint_kinds": list(robot.joint_kinds),
        "joint_lower": _num(robot.lower),
        "joint_upper": _num(robot.upper),
        "link_names": list(robot.link_names),
        "tip_link": robot.tip_link,
        "tip_offset": list(robot.tip_offset),
        "frames": [{
            "frame": k,
            "q": _num(robot.q[k]),
            "qd": _num(robot.qd[k]),
            "targets": _num(robot.targets[k]),
            "link_positions": _num(robot.link_positions[k]),
            "link_quaternions": _num(robot.link_quats[k]),
            "link_linear_velocity": _num(robot.link_linear_velocity[k]),
            "link_angular_velocity": _num(robot.link_angular_velocity[k]),
            "tip_position": _num(robot.tip_positions[k]),
            "tip_quaternion": _num(robot.tip_quats[k]),
        } for k in range(robot.q.shape[0])],
    }
