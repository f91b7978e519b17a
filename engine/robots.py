"""Robot description files (URDF and MJCF): reading and checking them, joint-target keyframes,
and the triangle meshes that draw a robot's links.

Newton imports the files into the physics model (:mod:`rendiff.engine.physics`); this module is
what rendiff needs around that import and holds no Newton code:

- :func:`read_robot_file` parses a file just far enough to name its links and joints and to
  reject a malformed one with a one-line :class:`RobotError` (scene files are checked with it
  when they load, before any simulation starts).
- :func:`target_table` evaluates per-joint target keyframes at the physics step times.
- :func:`robot_mesh` turns the visual shapes Newton reports for each link into one triangle
  mesh in link frames, and :func:`posed_vertices` moves it with the links over a clip.

Mesh files in a URDF are read here (with Open3D, as scene meshes are) rather than by Newton,
whose importer needs the ``trimesh`` package: :func:`urdf_without_meshes` hands Newton the
description without them and :class:`MeshRef` says where each one goes.
"""

from __future__ import annotations

import difflib
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rendiff._resources import shipped_path

__all__ = [
    "INTERPOLATIONS",
    "JointInfo",
    "MeshRef",
    "RobotError",
    "RobotFile",
    "RobotVisual",
    "check_names",
    "posed_vertices",
    "read_robot_file",
    "robot_format",
    "robot_mesh",
    "shipped_robot",
    "target_table",
    "urdf_without_meshes",
]

INTERPOLATIONS = ("linear", "smooth")
"""How joint targets move between keyframes: ``linear`` at constant speed, ``smooth`` easing in
and out of every keyframe (cubic with zero slope at the keys, so the arm stops on each one)."""

_URDF_JOINTS = {"revolute", "continuous", "prismatic", "fixed", "floating", "planar"}
_URDF_DOF = {"revolute": "revolute", "continuous": "revolute", "prismatic": "prismatic"}
_MJCF_DOF = {"hinge": "revolute", "slide": "prismatic"}
_MJCF_JOINTS = {"hinge", "slide", "ball", "free"}
_DATA = shipped_path("robots")


class RobotError(ValueError):
    """A robot description that cannot be used; ``str(err)`` is one line naming the file."""


@dataclass(frozen=True)
class JointInfo:
    """One joint of a description file. ``kind`` is ``'revolute'`` or ``'prismatic'`` for a
    joint with one degree of freedom (the joints that take targets), else the file's own type."""

    name: str
    kind: str
    parent: str
    child: str


@dataclass(frozen=True)
class MeshRef:
    """A ``<mesh>`` geometry of a URDF link: where it sits and how it is scaled."""

    link: str
    role: str  # 'visual' | 'collision'
    path: str  # absolute path of the mesh file
    scale: tuple[float, float, float]
    position: tuple[float, float, float]  # origin in the link frame [m]
    rpy: tuple[float, float, float]  # origin rotation: roll, pitch, yaw [rad]
    color: tuple[float, float, float] | None


@dataclass(frozen=True)
class RobotFile:
    """What rendiff reads from a description file itself: names, joint kinds, URDF meshes."""

    path: str
    format: str  # 'urdf' | 'mjcf'
    name: str
    links: tuple[str, ...]
    joints: tuple[JointInfo, ...]
    meshes: tuple[MeshRef, ...] = ()
    has_visuals: bool = False  # URDF: some link has a <visual>
    inertial_links: frozenset[str] = frozenset()  # URDF: links with an <inertial> element

    @property
    def dof_joints(self) -> list[str]:
        """Names of the joints with one degree of freedom, in file order."""
        return [j.name for j in self.joints if j.kind in ("revolute", "prismatic")]


@dataclass
class RobotVisual:
    """One visual shape of a link, in the link's frame (what Newton's viewer would draw).

    ``shape`` is one of ``sphere``, ``box``, ``capsule``, ``cylinder``, ``cone``, ``ellipsoid``,
    ``mesh``; ``size`` follows Newton: sphere (r, -, -), box half extents, capsule / cylinder /
    cone (r, half height, -) along local Z, ellipsoid semi-axes, mesh scale. ``color`` is the
    file's colour, or None where the file gives none.
    """

    link: int  # index into the robot's links
    shape: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]  # shape origin in the link frame [m]
    quat: tuple[float, float, float, float]  # (w, x, y, z), link frame
    color: tuple[float, float, float] | None = None
    mesh_verts: np.ndarray | None = None  # [V, 3] float, unscaled, shape frame
    mesh_faces: np.ndarray | None = None  # [F, 3] int


def shipped_robot(name: str = "rendiff_arm", fmt: str = "urdf") -> Path:
    """Path of a robot description shipped with rendiff (``fmt`` 'urdf' or 'mjcf')."""
    path = _DATA / f"{name}.{'urdf' if fmt == 'urdf' else 'xml'}"
    if not path.is_file():
        shipped = sorted({p.stem for p in _DATA.glob("*.urdf")})
        raise RobotError(f"no shipped robot {name!r} ({fmt}); shipped robots: {shipped}")
    return path


def robot_format(path: str | os.PathLike) -> str:
    """``'urdf'`` or ``'mjcf'`` from the file name: ``.urdf``, else ``.xml`` / ``.mjcf``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".urdf":
        return "urdf"
    if suffix in (".xml", ".mjcf"):
        return "mjcf"
    raise RobotError(f"{Path(path).name}: robot files end in .urdf (URDF) or .xml/.mjcf (MJCF)")


def check_names(given, known: list[str], what: str = "joint") -> None:
    """Raise ValueError ``"unknown joint 'x' (did you mean 'y'?)"`` for the first name of
    ``given`` that is not in ``known``."""
    for name in given:
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            also = f"did you mean {hint[0]!r}?" if hint else f"{what}s: {', '.join(known)}"
            raise ValueError(f"unknown {what} {name!r} ({also})")


def read_robot_file(path: str | os.PathLike, fmt: str | None = None) -> RobotFile:
    """Read a URDF or MJCF file's links and joints, checking its structure.

    Args:
        path: the description file.
        fmt: 'urdf' or 'mjcf'; None picks it from the suffix.
    Raises:
        RobotError: one line naming the file: missing, not XML, or not a usable description.
    """
    p = Path(path).expanduser().resolve()
    fmt = fmt or robot_format(p)
    if not p.is_file():
        raise RobotError(f"robot file not found: {p}")
    stat = p.stat()
    return _read_cached(str(p), fmt, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _read_cached(path: str, fmt: str, _mtime: int, _size: int) -> RobotFile:
    name = Path(path).name
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise RobotError(f"{name}: malformed {fmt.upper()} (not valid XML: {err})") from None
    if fmt == "urdf":
        return _read_urdf(root, path, name)
    return _read_mjcf(root, path, name)


def _floats(text: str | None, n: int, where: str, default: tuple) -> tuple:
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise RobotError(f"{where} must be {n} numbers, got {text!r}")
    return values


def _read_urdf(root: ET.Element, path: str, name: str) -> RobotFile:
    if root.tag != "robot":
        raise RobotError(f"{name}: malformed URDF: the root element is <{root.tag}>, not <robot>")
    links = []
    for i, link in enumerate(root.findall("link")):
        link_name = link.get("name")
        if not link_name:
            raise RobotError(f"{name}: malformed URDF: <link> number {i + 1} has no name")
        if link_name in links:
            raise RobotError(f"{name}: malformed URDF: link {link_name!r} is defined twice")
        links.append(link_name)
    if not links:
        raise RobotError(f"{name}: malformed URDF: it defines no <link>")
    colors = {}
    for mat in root.findall("material"):
        rgba = mat.find("color")
        if mat.get("name") and rgba is not None:
            colors[mat.get("name")] = _floats(rgba.get("rgba"), 4, f"{name}: material "
                                              f"{mat.get('name')!r} rgba", (1, 1, 1, 1))[:3]
    joints, children = [], set()
    for i, joint in enumerate(root.findall("joint")):
        jname = joint.get("name")
        where = f"{name}: malformed URDF: joint {jname!r}" if jname else ""
        if not jname:
            raise RobotError(f"{name}: malformed URDF: <joint> number {i + 1} has no name")
        kind = joint.get("type")
        if kind not in _URDF_JOINTS:
            raise RobotError(f"{where} has type {kind!r}; URDF joint types are "
                             f"{', '.join(sorted(_URDF_JOINTS))}")
        ends = []
        for end in ("parent", "child"):
            el = joint.find(end)
            ref = el.get("link") if el is not None else None
            if not ref:
                raise RobotError(f"{where} has no <{end} link=...>")
            if ref not in links:
                hint = difflib.get_close_matches(ref, links, n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise RobotError(f"{where}: {end} link {ref!r} is not defined{also}")
            ends.append(ref)
        if ends[1] in children:
            raise RobotError(f"{where}: link {ends[1]!r} has two parent joints")
        children.add(ends[1])
        origin = joint.find("origin")
        if origin is not None:
            _floats(origin.get("xyz"), 3, f"{where}: origin xyz", (0, 0, 0))
            _floats(origin.get("rpy"), 3, f"{where}: origin rpy", (0, 0, 0))
        axis = joint.find("axis")
        if axis is not None and kind in _URDF_DOF:
            a = _floats(axis.get("xyz"), 3, f"{where}: axis xyz", (1, 0, 0))
            if not np.linalg.norm(a) > 0:
                raise RobotError(f"{where}: axis xyz is zero")
        joints.append(JointInfo(jname, _URDF_DOF.get(kind, kind), ends[0], ends[1]))
    names = [j.name for j in joints]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise RobotError(f"{name}: malformed URDF: joint {dup!r} is defined twice")
    roots = [lk for lk in links if lk not in children]
    if len(roots) != 1:
        raise RobotError(f"{name}: malformed URDF: a robot is one tree of links, but "
                         f"{len(roots)} links have no parent joint: {', '.join(roots[:5])}")
    meshes, has_visuals, inertial = [], False, set()
    for link in root.findall("link"):
        if link.find("inertial") is not None:
            inertial.add(link.get("name"))
        has_visuals = has_visuals or link.find("visual") is not None
        for role in ("visual", "collision"):
            for el in link.findall(role):
                meshes += _urdf_meshes(el, role, link.get("name"), path, name, colors)
    return RobotFile(path, "urdf", root.get("name") or Path(path).stem, tuple(links),
                     tuple(joints), tuple(meshes), has_visuals, frozenset(inertial))


def _urdf_meshes(el: ET.Element, role: str, link: str, path: str, name: str,
                 colors: dict) -> list[MeshRef]:
    geometry = el.find("geometry")
    if geometry is None:
        return []
    where = f"{name}: link {link!r} {role}"
    origin = el.find("origin")
    xyz = _floats(origin.get("xyz") if origin is not None else None, 3, f"{where} origin xyz",
                  (0.0, 0.0, 0.0))
    rpy = _floats(origin.get("rpy") if origin is not None else None, 3, f"{where} origin rpy",
                  (0.0, 0.0, 0.0))
    color = None
    mat = el.find("material")
    if mat is not None:
        rgba = mat.find("color")
        if rgba is not None:
            color = _floats(rgba.get("rgba"), 4, f"{where} material rgba", (1, 1, 1, 1))[:3]
        else:
            color = colors.get(mat.get("name"))
    out = []
    for mesh in geometry.findall("mesh"):
        filename = mesh.get("filename")
        if not filename:
            raise RobotError(f"{where}: <mesh> has no filename")
        resolved = _resolve_urdf_path(filename, path)
        if resolved is None or not Path(resolved).is_file():
            raise RobotError(f"{where}: mesh file not found: {filename!r}"
                             + (f" (looked for {resolved})" if resolved else ""))
        scale = _floats(mesh.get("scale"), 3, f"{where} mesh scale", (1.0, 1.0, 1.0))
        out.append(MeshRef(link, role, resolved, scale, xyz, rpy, color))
    return out


def _resolve_urdf_path(filename: str, urdf: str) -> str | None:
    """A mesh path of a URDF: relative to the URDF's folder, ``file://``, or ``package://pkg/..``
    found by walking up from the URDF to a folder named ``pkg`` (or holding one)."""
    if filename.startswith("file://"):
        return filename[len("file://"):]
    if filename.startswith("package://"):
        rest = filename[len("package://"):]
        package = rest.split("/", 1)[0]
        for folder in Path(urdf).parents:
            if folder.name == package:
                return str(folder.parent / rest)
            if (folder / package).is_dir():
                return str(folder / rest)
        return None
    if "://" in filename:
        return None
    p = Path(filename)
    return str(p if p.is_absolute() else Path(urdf).parent / p)


def _mjcf_tree(path: str, name: str, depth: int = 0) -> ET.Element:
    """The MJCF tree with ``<include file=...>`` elements replaced by the files' children."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise RobotError(f"{name}: malformed MJCF (not valid XML: {err})") from None
    for parent in list(root.iter()):
        for i, inc in enumerate(list(parent)):
            if inc.tag != "include":
                continue
            target = Path(path).parent / (inc.get("file") or "")
            if depth > 8 or not target.is_file():
                raise RobotError(f"{name}: <include file={inc.get('file')!r}> not found "
                                 f"(looked for {target})")
            sub = _mjcf_tree(str(target), name, depth + 1)
            parent.remove(inc)
            for k, child in enumerate(list(sub)):
                parent.insert(i + k, child)
    return root


def _read_mjcf(root: ET.Element, path: str, name: str) -> RobotFile:
    if root.tag != "mujoco":
        raise RobotError(f"{name}: malformed MJCF: the root element is <{root.tag}>, not <mujoco>")
    root = _mjcf_tree(path, name)
    world = root.find("worldbody")
    if world is None:
        raise RobotError(f"{name}: malformed MJCF: it has no <worldbody>")
    links, joints = [], []

    def visit(body: ET.Element, parent: str) -> None:
        body_name = body.get("name") or f"body_{len(links)}"
        links.append(body_name)
        for j, joint in enumerate(body.findall("joint")):
            kind = joint.get("type", "hinge")
            jname = joint.get("name") or f"{body_name}_joint_{j}"
            if kind not in _MJCF_JOINTS:
                raise RobotError(f"{name}: malformed MJCF: joint {jname!r} has type {kind!r}; "
                                 f"MJCF joint types are {', '.join(sorted(_MJCF_JOINTS))}")
            joints.append(JointInfo(jname, _MJCF_DOF.get(kind, kind), parent, body_name))
        for child in body.findall("body"):
            visit(child, body_name)

    for body in world.findall("body"):
        visit(body, "world")
    if not links:
        raise RobotError(f"{name}: malformed MJCF: its <worldbody> has no <body>")
    names = [j.name for j in joints]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise RobotError(f"{name}: malformed MJCF: joint {dup!r} is defined twice")
    if root.find("asset/mesh") is not None:
        try:
            import trimesh  # noqa: F401  (Newton's MJCF importer reads mesh assets with it)
        except ImportError:
            raise RobotError(f"{name}: MJCF mesh assets need the 'trimesh' package, which is "
                             "not installed (MJCF primitives and URDF meshes work without it)"
                             ) from None
    return RobotFile(path, "mjcf", root.get("model") or Path(path).stem, tuple(links),
                     tuple(joints))


def urdf_without_meshes(robot: RobotFile) -> str:
    """The URDF's XML text with every ``<mesh>`` geometry removed (see :class:`MeshRef`)."""
    root = ET.parse(robot.path).getroot()
    for geometry in root.iter("geometry"):
        for mesh in geometry.findall("mesh"):
            geometry.remove(mesh)
    return ET.tostring(root, encoding="unicode")


def target_table(
    keyframes: dict[str, list[tuple[float, float]]],
    names: list[str],
    initial: np.ndarray,
    times: np.ndarray,
    interpolation: str = "smooth",
) -> np.ndarray:
    """Joint targets at ``times`` from per-joint keyframes.

    Args:
        keyframes: joint name -> [(time [s], target [rad or m]), ...], times increasing.
        names: the joints (columns of the result), in order.
        initial: [D] the target of joints without keyframes (their initial positions).
        times: [N] times to evaluate [s].
        interpolation: one of :data:`INTERPOLATIONS`. Before the first and after the last
            keyframe a joint holds that keyframe's target.
    Returns:
        [N, D] float64 targets.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    check_names(keyframes, names)
    times = np.asarray(times, dtype=np.float64)
    out = np.tile(np.asarray(initial, dtype=np.float64), (times.shape[0], 1))
    for joint, keys in keyframes.items():
        kt = np.array([k[0] for k in keys], dtype=np.float64)
        kv = np.array([k[1] for k in keys], dtype=np.float64)
        col = names.index(joint)
        if kt.size == 1:
            out[:, col] = kv[0]
            continue
        i = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, kt.size - 2)
        s = np.clip((times - kt[i]) / (kt[i + 1] - kt[i]), 0.0, 1.0)
        if interpolation == "smooth":
            s = s * s * (3.0 - 2.0 * s)
        out[:, col] = kv[i] + s * (kv[i + 1] - kv[i])
    return out


@dataclass
class _Parts:
    verts: list = field(default_factory=list)
    faces: list = field(default_factory=list)
    links: list = field(default_factory=list)
    colors: list = field(default_factory=list)
    count: int = 0


def _shape_mesh(v: RobotVisual):
    from . import meshes

    sx, sy, sz = (float(s) for s in v.size)
    if v.shape == "sphere":
        return meshes.sphere(sx, subdivisions=2)
    if v.shape == "ellipsoid":
        m = meshes.sphere(1.0, subdivisions=2)
        return meshes.TriMesh(m.verts * torch.tensor([sx, sy, sz]), m.faces, m.normals)
    if v.shape == "box":
        return meshes.box((sx, sy, sz))
    if v.shape == "capsule":
        return meshes.capsule(sx, sy)
    if v.shape == "cylinder":
        return meshes.cylinder(sx, sy)
    if v.shape == "cone":
        m = meshes.cylinder(sx, sy)
        shrink = (sy - m.verts[:, 2:3]) / (2.0 * sy)  # radius 0 at the top, r at the base
        verts = torch.cat([m.verts[:, :2] * shrink, m.verts[:, 2:]], dim=1)
        return meshes.TriMesh(verts, m.faces, m.normals)
    if v.shape == "mesh":
        verts = torch.as_tensor(np.asarray(v.mesh_verts, np.float32)) * torch.tensor([sx, sy, sz])
        faces = torch.as_tensor(np.asarray(v.mesh_faces, np.int64)).reshape(-1, 3)
        return meshes.TriMesh(verts, faces, meshes.vertex_normals(verts, faces))
    raise ValueError(f"robot visual shape {v.shape!r} cannot be drawn")


def robot_mesh(
    visuals: list[RobotVisual], default_color: tuple[float, float, float]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All visual shapes of a robot as one mesh, each vertex in its link's frame.

    Args:
        visuals: the robot's visual shapes.
        default_color: albedo of shapes whose file gives no colour.
    Returns:
        verts [V, 3] float32 (link frames), faces [F, 3] int64, vertex_link [V] int64 (link index
        of each vertex), albedo [V, 3] float32.
    """
    from .transforms import quat_to_matrix

    parts = _Parts()
    for v in visuals:
        m = _shape_mesh(v)
        R = quat_to_matrix(torch.tensor(v.quat, dtype=torch.float32))
        verts = m.verts @ R.T + torch.tensor(v.position, dtype=torch.float32)
        n = verts.shape[0]
        color = v.color if v.color is not None else default_color
        parts.verts.append(verts)
        parts.faces.append(m.faces + parts.count)
        parts.links.append(torch.full((n,), v.link, dtype=torch.int64))
        parts.colors.append(torch.tensor(color, dtype=torch.float32).clamp(0, 1).expand(n, 3))
        parts.count += n
    if not visuals:
        return (torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64),
                torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3))
    return (torch.cat(parts.verts), torch.cat(parts.faces), torch.cat(parts.links),
            torch.cat(parts.colors))


def posed_vertices(verts: Tensor, vertex_link: Tensor, link_positions: Tensor,
                   link_quats: Tensor) -> Tensor:
    """Link-frame vertices moved by their links' world poses over a clip.

    Args:
        verts: [V, 3] vertices in link frames; vertex_link: [V] link index of each.
        link_positions: [T, L, 3] link origins, world; link_quats: [T, L, 4] (w, x, y, z).
    Returns:
        [T, V, 3] world positions.
    """
    from .transforms import quat_to_matrix

    R = quat_to_matrix(link_quats)[:, vertex_link]  # [T, V, 3, 3]
    return torch.einsum("tvij,vj->tvi", R, verts) + link_positions[:, vertex_link]
