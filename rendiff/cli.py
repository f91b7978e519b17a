"""The ``rendiff`` command line.

    rendiff scenes [--show NAME]          list the built-in scenes (or print one as YAML)
    rendiff validate SCENE                check a scene file
    rendiff render SCENE -o OUT           simulate and render the maps
    rendiff run SCENE -o OUT              simulate, render, condition and generate

SCENE is a built-in scene name or a path to a YAML/JSON scene file. Exit codes: 0 success,
1 a failure while running, 2 bad input (scene file, option).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


class _UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 256x256, got {text!r}") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be in 8..8192")
    return w, h


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rendiff", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser("scenes", help="list the built-in scenes")
    s.add_argument("--show", metavar="NAME", help="print a built-in scene as YAML")

    v = sub.add_parser("validate", help="check a scene file and print the resolved scene")
    v.add_argument("scene")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("scene", help="built-in scene name or path to a .yaml/.json scene file")
    common.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    common.add_argument("--frames", type=int, help="number of frames")
    common.add_argument("--fps", type=float, help="frames per second")
    common.add_argument("--size", type=_size, help="image size WxH, e.g. 256x256")
    common.add_argument("--seed", type=int, help="random seed (recorded in the outputs)")
    common.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("render", parents=[common], help="simulate and render the maps")
    r = sub.add_parser("run", parents=[common], help="simulate, render, condition and generate")
    r.add_argument("--model", help="local model folder (diffusers format); default: shipped")
    r.add_argument("--steps", type=int, help="sampling steps")
    r.add_argument("--maps", help="comma-separated control maps, e.g. depth,normal")
    r.add_argument("--reference", help="appearance reference image")
    return p


def _load(spec: str, args: argparse.Namespace):
    from rendiff.scenes import builtin_scene, load_scene
    from rendiff.scenes.builtin import BUILTIN_SCENES

    path = Path(spec)
    if spec in BUILTIN_SCENES and not path.exists():
        scene = builtin_scene(spec, seed=args.seed or 0)
    elif path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        scene = load_scene(path)
    else:
        raise _UsageError(f"{spec}: not a built-in scene ({', '.join(sorted(BUILTIN_SCENES))}) "
                          "and not a .yaml/.json file")
    updates = {}
    if getattr(args, "frames", None) is not None:
        updates["frames"] = args.frames
    if getattr(args, "fps", None) is not None:
        updates["fps"] = args.fps
    if getattr(args, "size", None) is not None:
        updates["size"] = args.size
    if getattr(args, "seed", None) is not None:
        updates["seed"] = args.seed
    if updates:
        from rendiff.scenes.io import scene_from_dict, scene_to_dict

        data = scene_to_dict(scene)
        data.update(updates)
        scene = scene_from_dict(data, source="command line", check_assets=False)
    return scene


def _run(args: argparse.Namespace, generate: bool) -> int:
    import torch

    import rendiff

    if args.device == "cuda" and not torch.cuda.is_available():
        raise _UsageError("--device cuda: no CUDA device is available here")
    scene = _load(args.scene, args)
    progress = not args.quiet
    timings: dict[str, float] = {}
    t = time.perf_counter()
    traj = rendiff.simulate(scene, progress=progress)
    timings["simulate"] = time.perf_counter() - t
    t = time.perf_counter()
    layers = rendiff.render(traj, progress=progress)
    timings["render"] = time.perf_counter() - t
    video = None
    if generate:
        t = time.perf_counter()
        maps = args.maps.split(",") if args.maps else None
        video = rendiff.generate(layers, model=args.model, maps=maps, steps=args.steps,
                                 reference=args.reference, device=args.device,
                                 progress=progress)
        timings["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    written = rendiff.save(args.out, layers, video, contacts=traj.contacts, timings=timings)
    timings["save"] = time.perf_counter() - t
    if progress:
        total = sum(timings.values())
        print(f"rendiff: {scene.name}: {len(written)} outputs in {args.out} ({total:.1f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ")")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rendiff`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.version:
        from rendiff import __version__

        print(f"rendiff {__version__}")
        return 0
    if args.command is None:
        _parser().print_help()
        return 2
    from rendiff.api import ModelError
    from rendiff.scenes.io import SceneError

    try:
        if args.command == "scenes":
            from rendiff.scenes import builtin_scene, list_builtin_scenes

            if args.show:
                import yaml

                from rendiff.scenes.io import scene_to_dict

                try:
                    scene = builtin_scene(args.show)
                except KeyError as e:
                    raise _UsageError(str(e.args[0])) from None
                print(yaml.safe_dump(scene_to_dict(scene), sort_keys=False), end="")
            else:
                for name, desc in list_builtin_scenes().items():
                    print(f"{name:20s} {desc}")
            return 0
        if args.command == "validate":
            import yaml

            from rendiff.scenes.io import scene_to_dict

            scene = _load(args.scene, args)
            print(yaml.safe_dump(scene_to_dict(scene), sort_keys=False), end="")
            return 0
        return _run(args, generate=args.command == "run")
    except (SceneError, ModelError, _UsageError) as e:
        print(f"rendiff: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"rendiff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rendiff: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failure while running: one line, the traceback on request
        if os.environ.get("RENDIFF_DEBUG"):
            raise
        print(f"rendiff: error: {type(e).__name__}: {e} (set RENDIFF_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
