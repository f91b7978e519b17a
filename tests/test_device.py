"""The device is chosen once and every tensor follows it (docs/design-notes.md, "Stage
contracts").

Without a GPU these tests prove the plumbing with what the CPU allows: every tensor the render
step allocates names its device (a CUDA render cannot silently fall back to a CPU buffer),
``Trajectory.to`` and ``Layers.to`` move every tensor they hold (checked on PyTorch's ``meta``
device), choosing the CPU explicitly changes nothing, and ``benchmarks/gpu_check.py`` runs end to
end in its dry mode (its kernels through Triton's interpreter).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import rendiff
from rendiff.engine.trajectory import to_device

ROOT = Path(__file__).resolve().parents[1]
_FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.tensor,
              torch.linspace, torch.eye, torch.randn, torch.rand, torch.randint, torch.as_tensor}


class _DevicelessAllocations(TorchFunctionMode):
    """Records each factory call made from rendiff's engine or kernels without a ``device``
    argument (it would allocate on the CPU whatever the render's device). Module-level constants
    (made at import) are not counted: they are moved where they are used."""

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and "device" not in kwargs and not (
                func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)):
            frame = sys._getframe(1)
            while frame is not None and "/torch/" in frame.f_code.co_filename:
                frame = frame.f_back
            if frame is not None and frame.f_code.co_name != "<module>":
                path = Path(frame.f_code.co_filename)
                if path.parent.name in ("engine", "kernels") and ROOT in path.parents:
                    self.found.add(f"{path.parent.name}/{path.name}:{frame.f_lineno} "
                                   f"{func.__name__}")
        return func(*args, **kwargs)


def _small(name: str, frames: int = 2, size=(32, 24)):
    return rendiff.builtin_scene(name).model_copy(update={"frames": frames, "size": size})


@pytest.mark.parametrize("name", ["falling_objects", "walking_human", "dynamic_gaussians",
                                  "robot_arm", "gaussian_avatar", "cloth_and_jelly"])
def test_every_buffer_render_allocates_names_its_device(name):
    traj = rendiff.simulate(_small(name), progress=False)
    with _DevicelessAllocations() as spy:
        rendiff.render(traj, progress=False)
    assert sorted(spy.found) == []


def test_textured_and_animated_light_scene_allocates_on_its_device():
    scene = rendiff.load_scene(ROOT / "examples" / "lights_and_textures.yaml").model_copy(
        update={"frames": 2, "size": (32, 24)})
    traj = rendiff.simulate(scene, progress=False)
    with _DevicelessAllocations() as spy:
        rendiff.render(traj, progress=False)
    assert sorted(spy.found) == []


def test_the_spy_sees_a_deviceless_allocation():
    """The check above cannot pass vacuously: an allocation without a device is reported."""
    with _DevicelessAllocations() as spy:
        torch.zeros(3, device="cpu")  # named: not reported
        space = {"torch": torch}
        exec(compile("def probe():\n    return torch.zeros(3)\n",
                     str(ROOT / "engine" / "probe.py"), "exec"), space)
        space["probe"]()
    assert spy.found == {"engine/probe.py:2 zeros"}


def _tensors(obj, seen=None):
    """Every tensor reachable from obj through lists, tuples, dicts and dataclasses."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))
        for extra in ("levels",):  # ImageTexture's mip pyramid, derived after init
            if hasattr(obj, extra):
                yield from _tensors(getattr(obj, extra))


@pytest.mark.parametrize("name", ["cloth_and_jelly", "robot_arm", "gaussian_avatar"])
def test_trajectory_to_moves_every_tensor(name):
    traj = rendiff.simulate(_small(name), progress=False)
    moved = traj.to("meta")
    found = list(_tensors(moved))
    assert found and all(t.device.type == "meta" for t in found)
    assert moved.device.type == "meta"
    assert traj.to("cpu") is traj  # already there: no copy
    # the original is untouched and the move keeps every field's shape
    assert all(t.device.type == "cpu" for t in _tensors(traj))
    a, b = list(_tensors(traj)), found
    assert [tuple(x.shape) for x in a] == [tuple(x.shape) for x in b]


def test_textures_move_with_the_trajectory():
    scene = rendiff.load_scene(ROOT / "examples" / "lights_and_textures.yaml").model_copy(
        update={"frames": 1, "size": (16, 16)})
    traj = rendiff.simulate(scene, progress=False)
    assert any(m.texture is not None for m in traj.meshes)
    moved = traj.to("meta")
    for m in moved.meshes:
        if m.texture is not None:
            assert all(t.device.type == "meta" for t in _tensors(m.texture))


def test_explicit_cpu_device_changes_nothing():
    scene = _small("falling_objects", frames=3)
    plain = rendiff.simulate(scene, progress=False)
    chosen = rendiff.simulate(scene, progress=False, device="cpu")
    for name, track in plain.rigid.items():
        assert torch.equal(track.positions, chosen.rigid[name].positions)
    a = rendiff.render(plain, progress=False)
    b = rendiff.render(plain, progress=False, device="cpu")
    assert a.equal(b)
    assert a.to("cpu") is a
    moved = a.to("meta")
    assert all(v.device.type == "meta" for v in moved.values())
    assert moved.cameras.K.device.type == "meta"


def test_to_device_rebuilds_dataclasses_and_leaves_other_values():
    @dataclasses.dataclass
    class Box:
        x: torch.Tensor
        name: str
        items: list

    box = Box(torch.ones(2), "a", [torch.zeros(1), 3, (torch.ones(1), "b")])
    moved = to_device(box, "meta")
    assert moved.x.device.type == "meta" and moved.name == "a"
    assert moved.items[0].device.type == "meta" and moved.items[1] == 3
    assert moved.items[2][0].device.type == "meta" and moved.items[2][1] == "b"
    assert box.x.device.type == "cpu"


def test_cli_device_option_is_declared_once_and_checked(capsys):
    from rendiff.cli import _parser, main

    parser = _parser()
    for argv in (["render", "falling_objects", "-o", "x"], ["run", "falling_objects", "-o", "x"],
                 ["dataset", "spec.yaml", "-o", "x", "--clips", "1"]):
        assert parser.parse_args(argv + ["--device", "cpu"]).device == "cpu"
    if not torch.cuda.is_available():
        assert main(["render", "falling_objects", "-o", "/tmp/never", "--device", "cuda"]) == 2
        assert capsys.readouterr().err.strip().endswith(
            "--device cuda: no CUDA device is available here")


def test_gpu_check_runs_end_to_end_in_its_dry_mode(tmp_path):
    """benchmarks/gpu_check.py cannot rot between GPU sessions: its dry mode runs every check
    on the CPU (kernels through Triton's interpreter) and each passes or says why it skipped."""
    import json

    out = tmp_path / "gpu_check.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--dry-run", "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.read_text())
    checks = {r["check"]: r for r in result["checks"]}
    assert result["dry_run"] and len(checks) >= 15
    kernels = [r for name, r in checks.items() if name.startswith("kernel ")]
    assert len(kernels) == 10 and all(r["ok"] for r in kernels)
    assert checks["scene falling_objects"]["ok"] and checks["scene dynamic_gaussians"]["ok"]
    assert checks["gsplat 1M Gaussians 1920x1080"]["ok"] is None  # skipped, with its reason
    assert checks["generation default model"]["frames_per_second"] > 0
