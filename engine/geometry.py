"""What each geometry kind of a scene becomes in the engine, registered once per kind.

Every per-kind decision of the simulation side lives here, as a single-dispatch function with one
registered implementation per :mod:`rendiff.scenes.spec` geometry class (Kubric's pattern: one
handler per kind and backend): the triangle mesh of a fixed shape in its entity's frame
(:func:`local_mesh`), its rigid collider for physics (:func:`collider`) and its texture
coordinates (:func:`entity_uvs`). A new shape adds its spec class and its implementations here;
nothing else branches on the shape's type. Kinds that are not fixed shapes (bodies, robots,
cloth, Gaussian clouds) are simulated by their own handlers in :mod:`.simulate`.
"""

from __future__ import annotations

from functools import singledispatch
from pathlib import Path

import torch
from torch import Tensor

from rendiff.scenes.spec import Appearance, Box, Capsule, Cylinder, Entity, Mesh, Plane, Sphere

from . import meshes
from .textures import CheckerTexture, ImageTexture, Texture, load_image

__all__ = ["collider", "entity_uvs", "local_mesh", "texture_of"]


@singledispatch
def local_mesh(geom) -> meshes.TriMesh | None:
    """The shape's triangle mesh in its entity's frame, or None for a kind that is not one fixed
    mesh (a body, a robot, cloth, a Gaussian cloud)."""
    return None


@local_mesh.register(Sphere)
def _(geom: Sphere) -> meshes.TriMesh:
    return meshes.sphere(geom.radius, subdivisions=3)


@local_mesh.register(Box)
def _(geom: Box) -> meshes.TriMesh:
    return meshes.box(tuple(s / 2 for s in geom.size))


@local_mesh.register(Capsule)
def _(geom: Capsule) -> meshes.TriMesh:
    return meshes.capsule(geom.radius, geom.length / 2)


@local_mesh.register(Cylinder)
def _(geom: Cylinder) -> meshes.TriMesh:
    return meshes.cylinder(geom.radius, geom.height / 2)


@local_mesh.register(Plane)
def _(geom: Plane) -> meshes.TriMesh:
    return meshes.plane(*geom.size)


@local_mesh.register(Mesh)
def _(geom: Mesh) -> meshes.TriMesh:
    mesh = meshes.load_mesh(geom.path)
    verts = mesh.verts * torch.as_tensor(geom.scale, dtype=torch.float32)
    return meshes.TriMesh(verts, mesh.faces, meshes.vertex_normals(verts, mesh.faces), mesh.uvs)


@singledispatch
def collider(geom) -> dict | None:
    """The shape's fields of a :class:`rendiff.engine.physics.RigidBodyDesc` (``shape`` and its
    sizes), or None for a kind that is not a rigid collider."""
    return None


@collider.register(Sphere)
def _(geom: Sphere) -> dict:
    return dict(shape="sphere", radius=geom.radius)


@collider.register(Box)
def _(geom: Box) -> dict:
    return dict(shape="box", half_extents=tuple(s / 2 for s in geom.size))


@collider.register(Capsule)
def _(geom: Capsule) -> dict:
    return dict(shape="capsule", radius=geom.radius, half_height=geom.length / 2)


@collider.register(Cylinder)
def _(geom: Cylinder) -> dict:
    return dict(shape="cylinder", radius=geom.radius, half_height=geom.height / 2)


@collider.register(Mesh)
def _(geom: Mesh) -> dict:
    m = local_mesh(geom)
    return dict(shape="mesh", mesh_verts=m.verts.numpy(), mesh_faces=m.faces.numpy())


def entity_uvs(entity: Entity) -> Tensor:
    """Texture coordinates [F, 3, 2] per face corner of the entity's mesh, in the face order the
    simulation uses (see :mod:`rendiff.engine.meshes` for each shape's convention).

    Raises:
        ValueError: a mesh file without texture coordinates, or a shape without UVs.
    """
    g = entity.geometry
    mesh = local_mesh(g)
    if mesh is not None and mesh.uvs is not None:
        return mesh.uvs
    if g.type == "mesh":
        raise ValueError(f"entity {entity.name!r}: appearance.texture: mesh file "
                         f"{Path(g.path).name!r} has no texture coordinates (OBJ 'vt')")
    raise ValueError(f"entity {entity.name!r}: appearance: a {g.type} has no texture coordinates")


def texture_of(appearance: Appearance, images: dict[str, Tensor] | None = None) -> Texture | None:
    """The appearance's texture, or None where its albedo is a plain colour. ``images`` caches
    loaded image files by path."""
    if appearance.checker is not None:
        return CheckerTexture(torch.tensor(appearance.checker, dtype=torch.float32),
                              appearance.texture_scale)
    if appearance.texture is None:
        return None
    if images is None:
        images = {}
    if appearance.texture not in images:
        images[appearance.texture] = load_image(appearance.texture)
    return ImageTexture(images[appearance.texture], appearance.texture_scale)
