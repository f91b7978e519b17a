"""render(): a trajectory in, named layers out.

Per frame, every triangle mesh of the scene is rasterized in one pass (depth, face, perspective
barycentrics) and every Gaussian cloud is splatted in one pass; the two are composited by depth.
Attributes (albedo, material, ids, screen-space motion) ride along as per-vertex or per-Gaussian
channels, so one rasterization yields every layer. Shading then lights the composited surface.
Textured meshes take their albedo from UVs interpolated with the same perspective-correct
barycentrics (:mod:`.textures`); lights are evaluated per frame (keyframes, lights carried by
entities: :mod:`.lighting`), and so are the shadow maps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rendiff import defaults

from .camera import CameraFrames
from .layers import Layer, Layers
from .textures import scene_textures
from .trajectory import LightState, Trajectory

__all__ = ["render", "lights_in_camera"]


def lights_in_camera(lights: Sequence[LightState], viewmat: Tensor):
    """One frame's lights (:attr:`Trajectory.lights` ``[k]``) transformed into that frame's
    camera, as a ``LightSet``."""
    from rendiff.kernels.shading import LightSet

    dev = viewmat.device
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    kinds, pos, dirs, rad, co, ci = [], [], [], [], [], []
    ambient = torch.zeros(3, device=dev)
    sh = None

    def vec(values) -> Tensor:
        return torch.tensor(values, dtype=torch.float32, device=dev)

    for light in lights:
        radiance = vec(light.radiance)
        if light.type == "ambient":
            ambient = ambient + radiance
            continue
        if light.type == "environment":
            coeffs = vec(light.sh) * light.intensity * vec(light.color)
            sh = _rotate_sh(coeffs, R) if sh is None else sh + _rotate_sh(coeffs, R)
            continue
        if light.type == "directional":
            d = vec(light.direction)
            kinds.append(0)
            pos.append(torch.zeros(3, device=dev))
            dirs.append(R @ (d / d.norm().clamp_min(1e-9)))
            co.append(-1.0)
            ci.append(-1.0)
        elif light.type in ("point", "spot"):
            kinds.append(1 if light.type == "point" else 2)
            pos.append(R @ vec(light.position) + t)
            if light.type == "spot":
                d = vec(light.direction)
                dirs.append(R @ (d / d.norm().clamp_min(1e-9)))
                half = math.radians(light.angle_deg) / 2
                co.append(math.cos(half))
                ci.append(math.cos(half * (1 - light.softness)))
            else:
                dirs.append(torch.zeros(3, device=dev))
                co.append(-1.0)
                ci.append(-1.0)
        else:
            raise ValueError(f"unknown light type {light.type!r}")
        rad.append(radiance)
    if not kinds:
        ls = LightSet.empty(device=dev)
    else:
        ls = LightSet(torch.tensor(kinds, device=dev), torch.stack(pos), torch.stack(dirs),
                      torch.stack(rad), vec(co), vec(ci))
    ls.ambient = ambient
    ls.sh = sh
    return ls


def _rotate_sh(coeffs: Tensor, R: Tensor) -> Tensor:
    """Rotates degree-2 SH radiance coefficients [9, 3] from world to camera frame by fitting
    the rotated function on a fixed set of directions (exact for band-limited functions)."""
    dirs = _fibonacci_dirs(64).to(R.device)
    Y_cam = _sh_basis(dirs)  # [64, 9]
    world_dirs = dirs @ R  # camera -> world: R^T d, written row-wise
    values = _sh_basis(world_dirs) @ coeffs  # [64, 3]
    return torch.linalg.lstsq(Y_cam, values).solution


def _fibonacci_dirs(n: int) -> Tensor:
    i = torch.arange(n, dtype=torch.float32, device="cpu") + 0.5
    phi = torch.acos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return torch.stack([torch.cos(theta) * torch.sin(phi), torch.sin(theta) * torch.sin(phi),
                        torch.cos(phi)], -1)


def _sh_basis(d: Tensor) -> Tensor:
    x, y, z = d.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y)], -1)


def _frame_meshes(traj: Trajectory, k: int):
    """All meshes at frame k concatenated, with per-vertex attribute channels."""
    from .meshes import vertex_normals

    verts, faces, normals, attrs, moves = [], [], [], [], []
    offset = 0
    T = traj.frames
    for m in traj.meshes:
        v = m.vertices[k]
        verts.append(v)
        faces.append(m.faces + offset)
        normals.append(vertex_normals(v, m.faces))
        n = v.shape[0]
        dev = v.device
        sem = (m.part_labels.float() if m.part_labels is not None
               else torch.full((n,), float(m.semantic_id), device=dev))
        attrs.append(torch.cat([
            m.albedo, torch.full((n, 1), m.specular, device=dev),
            torch.full((n, 1), m.roughness, device=dev),
            torch.full((n, 1), float(m.instance_id), device=dev), sem[:, None]], dim=1))
        moves.append((m.vertices[min(k + 1, T - 1)], m.vertices[max(k - 1, 0)]))
        offset += n
    if not verts:
        return None
    return (torch.cat(verts), torch.cat(faces), torch.cat(normals), torch.cat(attrs),
            torch.cat([a for a, _ in moves]), torch.cat([b for _, b in moves]))


def _screen_motion(cams: CameraFrames, k: int, now: Tensor, nxt: Tensor, prv: Tensor):
    """Per-point forward and backward motion in pixels [N, 2]: the point at its next (previous)
    position seen by the next (previous) frame's camera, minus where it is now. Zero at the ends
    of the clip and wherever either end lies behind its camera's near plane."""
    T = len(cams)
    sel = torch.tensor([k, min(k + 1, T - 1), max(k - 1, 0)], device=cams.K.device)
    sub = CameraFrames(cams.K[sel], cams.viewmats[sel], cams.width, cams.height, cams.near,
                       cams.far)
    uv, z = sub.project(torch.stack([now, nxt, prv]))
    ok = z > cams.near
    zero = torch.zeros_like(uv[0])
    fwd = torch.where((ok[0] & ok[1])[:, None], uv[1] - uv[0], zero) if k + 1 < T else zero
    bwd = torch.where((ok[0] & ok[2])[:, None], uv[2] - uv[0], zero) if k > 0 else zero
    return fwd, bwd


def _pixel_motion(cams: CameraFrames, k: int, chans: Tensor, hit: Tensor):
    """Per-pixel forward and backward flow [H, W, 2] from the surface point's world position
    at the next and previous frame (interpolated over the mesh: ``chans[..., 8:11]`` and
    ``chans[..., 11:14]``), projected by those frames' cameras, minus the pixel centre."""
    from rendiff.kernels._dispatch import use_warp_cpu

    H, W = hit.shape
    dev = hit.device
    if use_warp_cpu(dev):  # compiled, one pass per direction
        from rendiff.kernels.warp_cpu import pixel_motion

        return tuple(pixel_motion(chans, col, hit, cams.viewmats[other], cams.K[other], cams.near)
                     if 0 <= other < len(cams) else torch.zeros(H, W, 2, device=dev)
                     for other, col in ((k + 1, 8), (k - 1, 11)))
    p_next, p_prev = chans[..., 8:11], chans[..., 11:14]
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32, device=dev) + 0.5,
                          torch.arange(W, dtype=torch.float32, device=dev) + 0.5, indexing="ij")
    centre = torch.stack([u, v], -1)
    T = len(cams)
    out = []
    for other, pts in ((k + 1, p_next), (k - 1, p_prev)):
        if other < 0 or other >= T:
            out.append(torch.zeros(H, W, 2, device=dev))
            continue
        sub = CameraFrames(cams.K[other:other + 1], cams.viewmats[other:other + 1], cams.width,
                           cams.height, cams.near, cams.far)
        uv, z = sub.project(pts.reshape(1, -1, 3))
        uv, z = uv.reshape(H, W, 2), z.reshape(H, W)
        ok = hit & (z > cams.near)
        out.append(torch.where(ok[..., None], uv - centre, torch.zeros_like(uv)))
    return out[0], out[1]


def _to_camera_normals(n_world: Tensor, viewmat: Tensor, points_cam: Tensor, verts: Tensor,
                       faces: Tensor, face_id: Tensor) -> Tensor:
    """Interpolated world normals [H, W, 3] to unit camera-space normals facing the camera
    (:func:`rendiff.kernels.mesh_raster.orient_normals`: negated on a face seen from behind,
    bent back at a silhouette)."""
    from rendiff.kernels.mesh_raster import oriented_normals

    R = viewmat[:3, :3]
    return oriented_normals(n_world @ R.T, points_cam, verts, faces, R, face_id)


def render(
    traj: Trajectory,
    layers: Iterable[Layer | str] | None = None,
    *,
    shadows: bool = True,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> Layers:
    """Renders every layer of a simulated clip.

    Args:
        traj: output of :func:`rendiff.simulate`.
        layers: which layers to return (default: all of :class:`Layer`).
        shadows: compute shadow maps for lights that cast shadows.
        progress: show a progress bar.
        device: where to render ("cpu", "cuda"; None: where the trajectory is). The trajectory
            is moved there, every buffer is allocated there, and the kernels run there: the
            Triton kernels on CUDA, their torch references on the CPU.
    Returns:
        :class:`Layers`: a mapping ``Layer -> Tensor`` with the cameras, classes and keypoints,
        on the render's device.
    """
    from rendiff.kernels.gaussian_raster import rasterize_gaussians
    from rendiff.kernels.mesh_raster import interpolate, rasterize_triangles
    from rendiff.kernels.shading import shade
    from rendiff.kernels.skeleton import draw_openpose

    t0 = time.perf_counter()
    timings = traj.timings
    if device is not None:
        traj = traj.to(device)
    dev = traj.device
    cams = traj.cameras
    T, W, H = traj.frames, cams.width, cams.height
    if len(traj.lights) != T:
        raise ValueError(f"the trajectory has lights for {len(traj.lights)} frames, not {T}")
    wanted = [Layer(x) for x in (layers if layers is not None else list(Layer))]
    bg = torch.tensor(traj.background, dtype=torch.float32, device=dev)
    f32, i32 = dict(device=dev), dict(dtype=torch.int32, device=dev)
    # every frame writes every one of these whole (the pose layer is drawn after the loop)
    out = {layer: torch.empty(T, H, W, *shape, dtype=dtype, device=dev) for layer, shape, dtype in (
        (Layer.RGB, (3,), torch.float32), (Layer.ALBEDO, (3,), torch.float32),
        (Layer.DEPTH, (), torch.float32), (Layer.NORMAL, (3,), torch.float32),
        (Layer.ALPHA, (), torch.float32), (Layer.INSTANCE, (), torch.int32),
        (Layer.SEMANTIC, (), torch.int32), (Layer.SHADING, (), torch.float32),
        (Layer.FLOW, (2,), torch.float32), (Layer.FLOW_BACKWARD, (2,), torch.float32))}
    shadow_fn = None
    if shadows and any(li.shadows for frame in traj.lights for li in frame):
        from .shadows import SceneShadows

        shadow_fn = SceneShadows(traj)  # what stays the same across frames, worked out once
    textures = scene_textures(traj)

    bar = tqdm(range(T), desc="render", unit="frame", disable=not progress, leave=False)
    for k in bar:
        viewmat, K = cams.viewmats[k], cams.K[k]
        frame = _frame_meshes(traj, k)
        if frame is None:  # what an empty pixel holds
            depth = torch.full((H, W), math.inf, **f32)
            normal = torch.zeros(H, W, 3, **f32)
            albedo = torch.zeros(H, W, 3, **f32)
            spec = torch.zeros(H, W, **f32)
            rough = torch.full((H, W), 0.5, **f32)
            inst = torch.zeros(H, W, **i32)
            sem = torch.zeros(H, W, **i32)
            flow = torch.zeros(H, W, 2, **f32)
            flow_b = torch.zeros(H, W, 2, **f32)
            alpha = torch.zeros(H, W, **f32)
        else:
            verts, faces, vnorm, attrs, v_next, v_prev = frame
            frags = rasterize_triangles(verts, faces, viewmat, K, W, H, near=cams.near)
            hit = frags.face_id >= 0
            chans = interpolate(torch.cat([attrs[:, :5], vnorm, v_next, v_prev], 1), faces,
                                frags)
            mesh_fwd, mesh_bwd = _pixel_motion(cams, k, chans, hit)
            # Discrete ids come from the face corner with the largest barycentric weight.
            corner = frags.bary.argmax(-1, keepdim=True)
            vid = torch.gather(faces[frags.face_id.clamp_min(0)], -1, corner)[..., 0]
            # The fragments and interpolated channels already hold an empty pixel's depth
            # (+inf), normal, albedo and specular (0); roughness and the ids are set there.
            depth = frags.depth
            pts = _backproject(depth, K)
            normal = _to_camera_normals(chans[..., 5:8], viewmat, pts, verts, faces, frags.face_id)
            albedo = chans[..., 0:3]
            if textures is not None:
                albedo = textures.apply(albedo, frags, hit, verts, faces, viewmat, K)
            spec = chans[..., 3]
            rough = torch.where(hit, chans[..., 4], 0.5)
            inst = torch.where(hit, attrs[vid, 5].round().int(), 0)
            sem = torch.where(hit, attrs[vid, 6].round().int(), 0)
            flow = mesh_fwd
            flow_b = mesh_bwd
            alpha = hit.float()

        if traj.gaussians:
            gs = traj.gaussians
            means = torch.cat([g.means[k] for g in gs])
            nxt = torch.cat([g.means[min(k + 1, T - 1)] for g in gs])
            prv = torch.cat([g.means[max(k - 1, 0)] for g in gs])
            gfwd, gbwd = _screen_motion(cams, k, means, nxt, prv)
            ids_per = torch.cat([torch.full((g.means.shape[1],), g.instance_id, device=dev)
                                 for g in gs])
            sem_per = torch.cat([  # per-Gaussian body-part labels of avatars, else the cloud's
                g.part_labels.int() if getattr(g, "part_labels", None) is not None
                else torch.full((g.means.shape[1],), g.semantic_id, device=dev) for g in gs])
            mat = torch.cat([torch.tensor([[g.specular, g.roughness]], device=dev).expand(
                g.means.shape[1], 2) for g in gs])
            feats = torch.cat([gfwd, gbwd, mat], 1)
            scales = [g.scales_at(k) for g in gs]
            normals = None  # each cloud's own, else its splats' shortest axes
            if any(g.normals is not None for g in gs):
                normals = torch.cat([g.normals if g.normals is not None else
                                     torch.nn.functional.one_hot(sc.argmin(-1), 3).float()
                                     for g, sc in zip(gs, scales, strict=True)])
            gr = rasterize_gaussians(
                means, torch.cat([g.quats[k] for g in gs]), torch.cat(scales),
                torch.cat([g.opacities for g in gs]), torch.cat([g.colors[k] for g in gs]),
                viewmat, K, W, H, features=feats, near=cams.near, far=cams.far, normals=normals,
            )
            a = gr.alpha
            a_safe = a.clamp_min(1e-6)[..., None]
            front = (gr.depth < depth) & (a > 1e-3)
            # Gaussians in front of the mesh surface are blended over it.
            over = torch.where(front, a, torch.zeros_like(a))[..., None]
            g_alb = gr.color / a_safe
            albedo = over * g_alb + (1 - over) * albedo
            g_feat = gr.features / a_safe
            flow = over * g_feat[..., 0:2] + (1 - over) * flow
            flow_b = over * g_feat[..., 2:4] + (1 - over) * flow_b
            spec = over[..., 0] * g_feat[..., 4] + (1 - over[..., 0]) * spec
            rough = over[..., 0] * g_feat[..., 5] + (1 - over[..., 0]) * rough
            solid = front & (a > defaults.ALPHA_SOLID)
            depth = torch.where(solid, gr.depth, depth)
            normal = torch.where(solid[..., None], gr.normal, normal)
            gid = gr.ids.clamp_min(0)
            inst = torch.where(solid, ids_per[gid].int(), inst)
            sem = torch.where(solid, sem_per[gid].int(), sem)
            alpha = torch.maximum(alpha, torch.where(front, a, alpha))

        hit = torch.isfinite(depth)
        pts = _backproject(depth, K)
        lights = lights_in_camera(traj.lights[k], viewmat)
        vis = None
        if shadow_fn is not None and bool(hit.any()):
            vis = shadow_fn(k, pts, hit)
        sh = shade(pts, normal, albedo, lights, specular=spec, roughness=rough, visibility=vis,
                   mask=hit)
        a3 = alpha[..., None]
        rgb = sh.rgb.clamp(0, 1) * a3 + bg * (1 - a3)
        out[Layer.RGB][k] = rgb
        out[Layer.ALBEDO][k] = albedo * a3
        out[Layer.DEPTH][k] = depth
        out[Layer.NORMAL][k] = normal
        out[Layer.ALPHA][k] = alpha
        out[Layer.INSTANCE][k] = inst
        out[Layer.SEMANTIC][k] = sem
        out[Layer.SHADING][k] = sh.shading
        out[Layer.FLOW][k] = flow * a3
        out[Layer.FLOW_BACKWARD][k] = flow_b * a3

    kp = kp_coco = None
    if traj.humans:
        kp = _keypoints_2d(cams, [h.openpose18 for h in traj.humans])
        kp_coco = _keypoints_2d(cams, [h.coco17 for h in traj.humans])
        out[Layer.POSE] = draw_openpose(kp, W, H)
    else:  # no people: one black pixel stands for the whole clip (no 0.2 GB of zeros at 720p)
        out[Layer.POSE] = torch.zeros(1, 1, 1, 3, **f32).expand(T, H, W, 3)
    result = Layers({k: out[k] for k in wanted}, cams, traj.fps, list(traj.entity_names),
                    traj.semantic_classes, kp, kp_coco)
    timings["render"] = time.perf_counter() - t0
    return result


def _backproject(depth: Tensor, K: Tensor) -> Tensor:
    """Camera-space points [H, W, 3] from depth [H, W] (0 where empty)."""
    H, W = depth.shape
    dev = depth.device
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32, device=dev) + 0.5,
                          torch.arange(W, dtype=torch.float32, device=dev) + 0.5, indexing="ij")
    z = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))
    return torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)


def _keypoints_2d(cams: CameraFrames, people: list[Tensor]) -> Tensor:
    """World keypoints per person [T, J, 3] -> pixels [T, P, J, 3] with visibility 1 where the
    point is in front of the camera and inside the image."""
    pts = torch.stack(people, 1)  # [T, P, J, 3]
    T, P, J, _ = pts.shape
    uv, z = cams.project(pts.reshape(T, P * J, 3))
    inside = ((z > cams.near) & (uv[..., 0] >= 0) & (uv[..., 0] < cams.width)
              & (uv[..., 1] >= 0) & (uv[..., 1] < cams.height))
    return torch.cat([uv, inside[..., None].float()], -1).reshape(T, P, J, 3)
