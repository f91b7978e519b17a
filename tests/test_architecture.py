"""The package's import contracts and structure rules, checked on its source (docs/design-notes.md,
"Stage contracts").

The package maps several top-level folders to one package (``package-dir`` in pyproject.toml:
``engine/`` is ``rendiff.engine`` and so on), which graph tools that walk one package folder do
not follow; this module reads every source file's syntax tree instead. Every ``import`` counts,
function-local ones included; imports under ``if TYPE_CHECKING:`` do not (they never run). An
import of ``a.b`` is an edge to the module ``a.b`` (as grimp counts it), ``from a import b`` an
edge to ``a.b`` when that is a module, else to ``a``.

Run it as a script for the report the design notes quote::

    python tests/test_architecture.py
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"rendiff": "rendiff", "engine": "rendiff.engine", "kernels": "rendiff.kernels",
           "scenes": "rendiff.scenes", "conditioners": "rendiff.conditioners"}

#: modules on the render side of the trajectory: they read a Trajectory, never a scene file
RENDER_SIDE = ("rendiff.engine.renderer", "rendiff.engine.shadows", "rendiff.engine.textures",
               "rendiff.engine.layers", "rendiff.engine.camera", "rendiff.engine.trajectory")
#: geometry classes of the scene spec: branching on them belongs to the entity registry
GEOMETRY_KINDS = {"Sphere", "Box", "Capsule", "Cylinder", "Plane", "Mesh", "Human", "Robot",
                  "Gaussians", "Cloth"}
REGISTRY = "rendiff.engine.entities"


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


class _Imports(ast.NodeVisitor):
    """Every import of one module: (target module, imported names, line)."""

    def __init__(self, module: str):
        self.module = module
        self.found: list[tuple[str, list[str], int]] = []

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        for child in node.orelse if checking else [*node.body, *node.orelse]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, [], node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            here = self.module if _is_package(self.module) else self.module.rsplit(".", 1)[0]
            for _ in range(node.level - 1):
                here = here.rsplit(".", 1)[0]
            base = f"{here}.{node.module}" if node.module else here
        else:
            base = node.module or ""
        self.found.append((base, [a.name for a in node.names], node.lineno))


def imports() -> dict[str, list[tuple[str, str, int]]]:
    """Internal import edges per module: (target module, name imported or '', line)."""
    out: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for module, path in MODULES.items():
        visitor = _Imports(module)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for base, names, line in visitor.found:
            if base != "rendiff" and not base.startswith("rendiff."):
                continue
            if not names:
                out[module].append((base, "", line))
            for name in names:
                target = f"{base}.{name}"
                if target in MODULES:
                    out[module].append((target, "", line))
                else:
                    out[module].append((base, name, line))
    return out


def cycles(edges: dict[str, list[tuple[str, str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    graph = {m: sorted({t for t, _, _ in edges.get(m, []) if t in MODULES}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return found


def private_imports(edges) -> list[str]:
    """``from module import _name`` across modules (a private module's public names are fine)."""
    return [f"{m}:{line} imports {t}.{name}" for m, rows in edges.items()
            for t, name, line in rows
            if name.startswith("_") and not name.endswith("__") and t != m]


def layering(edges) -> list[str]:
    """Imports that cross the layers: kernels import nothing of ours; the engine imports neither
    the generative half nor the data-set tools, API or CLI; the render side no scene spec."""
    bad = []
    for m, rows in edges.items():
        for t, _, line in rows:
            kernels_ok = t.startswith("rendiff.kernels") or t == "rendiff._source_tree"
            if m.startswith("rendiff.kernels") and not kernels_ok:
                bad.append(f"{m}:{line} (kernels) imports {t}")
            if m.startswith("rendiff.engine") and t.startswith((
                    "rendiff.conditioners", "rendiff.dataset", "rendiff.api", "rendiff.cli",
                    "rendiff.io")):
                bad.append(f"{m}:{line} (engine) imports {t}")
            if m in RENDER_SIDE and t.startswith("rendiff.scenes"):
                bad.append(f"{m}:{line} (render side) imports {t}")
    return bad


def isinstance_ladders() -> list[str]:
    """Functions outside the entity registry (and the spec's own validators) that test a
    geometry's class against two or more geometry kinds: a ladder a new kind would touch."""
    out = []
    for module, path in MODULES.items():
        if module in (REGISTRY, "rendiff.scenes.spec"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            kinds: set[str] = set()
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id == "isinstance" and len(node.args) == 2):
                    kinds |= {n.id for n in ast.walk(node.args[1])
                              if isinstance(n, ast.Name) and n.id in GEOMETRY_KINDS}
            if len(kinds) >= 2:
                out.append(f"{module}.{fn.name} tests {sorted(kinds)}")
    return sorted(set(out))


# --------------------------------------------------------------------------------------------


def test_the_checker_sees_every_kind_of_import():
    """The rules are only as good as the import finder: it must see relative, absolute,
    function-local and module imports, and skip TYPE_CHECKING blocks."""
    edges = imports()
    simulator = {t for t, _, _ in edges["rendiff.engine.simulator"]}
    assert "rendiff.engine.entities" in simulator  # `from .entities import ...`
    assert "rendiff.engine.physics" in simulator  # a function-local `from .physics import ...`
    assert "rendiff.scenes.spec" in simulator  # absolute
    trajectory = {t for t, _, _ in edges["rendiff.engine.trajectory"]}
    assert "rendiff.engine.textures" not in trajectory  # under `if TYPE_CHECKING:`
    fake = {"a": [("b", "", 1)], "b": [("a", "", 1)]}
    assert private_imports({"x": [("y", "_z", 3)]}) == ["x:3 imports y._z"]
    assert fake and len(MODULES) > 50


def test_no_import_cycles_function_local_imports_included():
    assert cycles(imports()) == []


def test_no_private_names_cross_module_boundaries():
    assert private_imports(imports()) == []


def test_layers_import_only_downwards():
    assert layering(imports()) == []


def test_no_isinstance_ladder_over_geometry_kinds_outside_the_registry():
    assert isinstance_ladders() == []


@pytest.mark.parametrize("rule", [cycles, private_imports, layering])
def test_each_rule_fails_on_a_violation(rule):
    """A rule that cannot fail proves nothing: each one flags a planted violation."""
    planted = {
        cycles: {"rendiff.engine.camera": [("rendiff.engine.renderer", "", 1)]},
        private_imports: {"rendiff.engine.camera": [("rendiff.engine.renderer", "_screen", 1)]},
        layering: {"rendiff.engine.renderer": [("rendiff.scenes.spec", "Scene", 1)],
                   "rendiff.kernels.shading": [("rendiff.engine.camera", "", 1)]},
    }[rule]
    edges = imports()
    for m, rows in planted.items():
        edges[m] = [*edges[m], *rows]
    assert rule(edges)


def test_defaults_are_defined_once():
    """The scene spec, the engine's settings, the pipelines and the API take their defaults from
    rendiff.defaults, so each default has one definition."""
    import inspect

    from rendiff import api, defaults
    from rendiff.conditioners import pipeline, pretrained
    from rendiff.engine import deformables, physics
    from rendiff.scenes import spec

    gen, phys = spec.GenerationOptions(), spec.PhysicsOptions()
    assert (gen.window, gen.overlap, gen.scheduler) == (defaults.WINDOW, defaults.OVERLAP,
                                                        defaults.SCHEDULER)
    assert (phys.rate_hz, phys.gravity, phys.solver) == (
        defaults.PHYSICS_RATE_HZ, defaults.GRAVITY, defaults.PHYSICS_SOLVER)
    for settings in (physics.PhysicsSettings(), deformables.DeformableSettings()):
        assert (settings.rate_hz, settings.gravity, settings.ground_friction) == (
            defaults.PHYSICS_RATE_HZ, defaults.GRAVITY, defaults.GROUND_FRICTION)
    assert (phys.deformables.cloth_iterations, phys.deformables.mpm_cell_size) == (
        deformables.DeformableSettings().cloth_iterations,
        deformables.DeformableSettings().mpm_cell_size)
    call = inspect.signature(pipeline.RendiffVideoPipeline.__call__).parameters
    assert (call["window"].default, call["overlap"].default,
            call["num_inference_steps"].default) == (defaults.WINDOW, defaults.OVERLAP,
                                                     defaults.STEPS_TRAINED)
    assert api.DEFAULT_STEPS == defaults.STEPS_TRAINED
    assert pretrained.SCHEDULERS is defaults.SCHEDULERS


def report() -> dict:
    edges = imports()
    return {"modules": len(MODULES), "import_cycles": cycles(edges),
            "private_imports": private_imports(edges), "layering": layering(edges),
            "isinstance_ladders": isinstance_ladders()}


if __name__ == "__main__":
    import json

    print(json.dumps(report(), indent=2))
