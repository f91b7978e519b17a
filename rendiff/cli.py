"""The ``rendiff`` command line.

    rendiff scenes [--show NAME]          list the built-in scenes (or print one as YAML)
    rendiff validate SCENE                check a scene file
    rendiff render SCENE -o OUT           simulate and render the maps
    rendiff run SCENE -o OUT              simulate, render, condition and generate
    rendiff dataset SPEC -o OUT --clips N make (or resume) a randomised, annotated data set
    rendiff dataset --verify OUT          check a data set's clips against its index

SCENE is a built-in scene name or a path to a YAML/JSON scene file. Exit codes: 0 success,
1 a failure while running, 2 bad input (scene file, option).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("rendiff.cli")


class _UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


#: The exceptions that mean "the input is wrong" (exit 2), by module: one can only be raised
#: once its module is loaded, so the CLI imports none of them up front (``rendiff scenes`` and
#: ``--help`` then never load torch).
_INPUT_ERRORS = (("rendiff.scenes.io", "SceneError"),
                 ("rendiff.conditioners.loading", "ModelError"),
                 ("rendiff.io.trajectory", "TrajectoryFileError"),
                 ("rendiff.dataset.runner", "DatasetError"),
                 ("rendiff.engine.body", "UnsafePickleError"))


def _input_errors() -> tuple[type[Exception], ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in _INPUT_ERRORS if m in sys.modules)


class _StageFailure(Exception):
    """A failure while running (not bad input), with the stage it happened in."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage} failed: {type(error).__name__}: {error}")


@contextlib.contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Times one stage of a run; a failure in it that is not bad input names the stage."""
    t = time.perf_counter()
    try:
        yield
    except Exception as e:
        if isinstance(e, _input_errors() + (_UsageError,)):
            raise
        raise _StageFailure(name, e) from e
    timings[name] = time.perf_counter() - t


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 256x256, got {text!r}") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be in 8..8192")
    return w, h


def _count(option: str, low: int, high: int | None = None):
    """An argparse type: an integer in [``low``, ``high``], else a one-line usage error naming
    the option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a whole number, got {text!r}") \
                from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{option} must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{option} must be <= {high}, got {value}")
        return value
    return parse


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fps must be a number, got {text!r}") from None
    if not 0 < value <= 1000:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"--fps must be in (0, 1000], got {text}")
    return value


def _weights(text: str) -> dict[str, float]:
    """``depth=1,normal=0.5`` -> {"depth": 1.0, "normal": 0.5}."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
            if not 0 <= out[name.strip()] <= 1:  # NaN fails this too
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--weights must look like depth=1,normal=0.5 with weights in [0, 1], got "
                f"{text!r}") from None
    return out


def _keyframes(text: str) -> int | list[int]:
    """``0,8,-1`` -> [0, 8, -1]; ``every:4`` -> 4 (every 4th frame)."""
    try:
        if text.startswith("every:"):
            return int(text.removeprefix("every:"))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--keyframes must look like 0,8,15 or every:4, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rendiff", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser("scenes", help="list the built-in scenes")
    s.add_argument("--show", metavar="NAME", help="print a built-in scene as YAML")

    v = sub.add_parser("validate", help="check a scene file and print the resolved scene")
    v.add_argument("scene")

    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where physics, rendering and generation run (default cpu)")

    common = argparse.ArgumentParser(add_help=False, parents=[device])
    common.add_argument("scene", help="built-in scene name, a .yaml/.json scene file, or a run's "
                        "trajectory.npz (re-rendered without simulating; --size rescales it)")
    common.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    common.add_argument("--frames", type=_count("--frames", 1), help="number of frames")
    common.add_argument("--fps", type=_fps, help="frames per second")
    common.add_argument("--size", type=_size, help="image size WxH, e.g. 256x256")
    common.add_argument("--seed", type=_count("--seed", 0),
                        help="random seed (recorded in the outputs)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("render", parents=[common], help="simulate and render the maps")
    r = sub.add_parser("run", parents=[common], help="simulate, render, condition and generate")
    r.add_argument("--model", help="local model folder (diffusers format), or a pretrained "
                   "AnimateDiff setup: a rendiff_pretrained.yaml or a folder holding one; "
                   "default: shipped")
    r.add_argument("--scheduler", choices=["ddim", "euler", "dpm"],
                   help="sampler (dpm = DPM-Solver++)")
    r.add_argument("--weights", type=_weights,
                   help="per-map control strength, e.g. depth=1,normal=0.5")
    r.add_argument("--prompt", help="text prompt (pretrained AnimateDiff setups)")
    r.add_argument("--negative-prompt", help="negative prompt (pretrained AnimateDiff setups)")
    r.add_argument("--guidance-scale", type=float,
                   help="classifier-free guidance scale (pretrained setups: on the prompt; "
                        "rendiff models: on the reference image, default the model's own)")
    r.add_argument("--keyframes", type=_keyframes,
                   help="SparseCtrl keyframes: indices like 0,8,-1, or every:K")
    r.add_argument("--steps", type=_count("--steps", 1, 1000), help="sampling steps")
    r.add_argument("--maps", help="comma-separated control maps, e.g. depth,normal")
    r.add_argument("--reference", help="appearance reference image")

    d = sub.add_parser("dataset", parents=[device],
                       help="make or verify a randomised, annotated data set")
    d.add_argument("spec", nargs="?", help="data-set spec (.yaml/.json), see examples/*dataset*")
    d.add_argument("-o", "--out", type=Path, help="output folder (re-running resumes)")
    d.add_argument("--clips", type=_count("--clips", 1, 1_000_000),
                   help="number of clips (indices 0..N-1)")
    d.add_argument("--workers", type=_count("--workers", 1, 256), default=1,
                   help="local worker processes (default 1)")
    d.add_argument("--ray-address", metavar="ADDR",
                   help="run on Ray: 'local' starts one here with --workers CPUs, else the "
                        "address of a running cluster (OUT must be visible to every node)")
    d.add_argument("--seed", type=_count("--seed", 0), help="master seed (overrides the spec's)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--generate", action="store_true",
                   help="also generate video with the model and write generated/ frames")
    d.add_argument("--model", help="local model folder for --generate; default: shipped")
    d.add_argument("--no-amodal", action="store_true",
                   help="skip the per-object renders behind the visibility fractions (faster)")
    d.add_argument("--flow16", action="store_true",
                   help="store flow as float16: half the raw bytes (about 2/3 compressed), "
                        "not exact")
    d.add_argument("--verify", metavar="OUT", type=Path,
                   help="check every file of the data set OUT against its digests, report "
                        "every problem, exit 1 if there is one")
    d.add_argument("--json", action="store_true",
                   help="with --verify: print the report as JSON (ok, clips, files, problems)")
    return p


def _dataset(args: argparse.Namespace) -> int:
    from rendiff.dataset.runner import RunOptions, make_dataset

    if args.json and args.verify is None:
        raise _UsageError("--json goes with --verify OUT")
    if args.verify is not None:
        if args.spec or args.out:
            raise _UsageError("--verify OUT takes no spec and no -o")
        from rendiff.dataset.verify import verify_dataset

        report = verify_dataset(args.verify, progress=not (args.quiet or args.json))
        if args.json:
            print(report.to_json())
            return 0 if report.ok else 1
        for line in report.problems:
            print(f"rendiff: {line}", file=sys.stderr)
        print(f"rendiff: {args.verify}: {report.clips} clips, {report.files} files checked, "
              f"{len(report.problems)} problems")
        return 0 if report.ok else 1
    if not args.spec or args.out is None or args.clips is None:
        raise _UsageError("dataset needs SPEC, -o OUT and --clips N (or --verify OUT)")
    _check_device(args.device)
    from rendiff.dataset.spec import load_dataset_spec

    spec = load_dataset_spec(args.spec)
    if args.quiet:
        from rendiff.engine.physics import init_warp

        init_warp(quiet=True)
    options = RunOptions(clips=args.clips, workers=args.workers, ray_address=args.ray_address,
                         seed=args.seed, generate=args.generate, model=args.model,
                         device=args.device, amodal=not args.no_amodal,
                         flow16=args.flow16,
                         progress=not args.quiet)
    report = make_dataset(spec, args.out, options)
    n = len(report.made) + len(report.kept)
    print(f"rendiff: {spec.name}: {n} clips in {args.out} ({len(report.made)} made, "
          f"{len(report.kept)} kept, {len(report.failed)} failed; "
          f"{report.clips_per_hour:.0f} clips/hour)")
    return 1 if report.failed else 0


def _check_image(path: str, option: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
    except FileNotFoundError:
        raise _UsageError(f"{option} {path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _UsageError(f"{option} {path}: not a readable image ({e})") from None


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


def _check_device(device: str) -> None:
    """``--device cuda`` where there is none: one line, before any work."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise _UsageError("--device cuda: no CUDA device is available here")


def _run(args: argparse.Namespace, generate: bool) -> int:
    from rendiff._threads import choose_threads

    policy = choose_threads()  # before torch loads: OpenMP reads its settings then
    log.debug("thread policy: %s", policy)
    import torch

    import rendiff

    _check_device(args.device)
    if args.out.exists() and not args.out.is_dir():
        raise _UsageError(f"-o {args.out}: exists and is not a folder")
    trajectory_file = args.scene.lower().endswith(".npz")
    scene = None if trajectory_file else _load(args.scene, args)
    if trajectory_file:
        for option in ("frames", "fps"):
            if getattr(args, option, None) is not None:
                raise _UsageError(f"--{option}: a trajectory's frames are simulated already; "
                                  "re-simulate its scene.yaml to change them")
    if generate:  # the model and the options that go with it, before any work
        from rendiff.api import check_model

        check_model(args.model or (scene.generation.model if scene is not None else None),
                    args.maps.split(",") if args.maps else None,
                    entities=[e.name for e in scene.entities] if scene is not None else None)
        if args.reference is not None:
            _check_image(args.reference, "--reference")
    progress = not args.quiet
    if args.quiet:
        from rendiff.engine.physics import init_warp

        init_warp(quiet=True)
    timings: dict[str, float] = {}
    if trajectory_file:  # re-render a run's 3D state without simulating again
        from rendiff.io.trajectory import load_trajectory

        with _stage("load", timings):
            traj = load_trajectory(args.scene).to(args.device)
        if args.size is not None:
            traj.cameras = traj.cameras.resized(*args.size)
    else:
        with _stage("simulate", timings):
            traj = rendiff.simulate(scene, progress=progress, device=args.device)
    with _stage("render", timings):
        layers = rendiff.render(traj, progress=progress)  # on the trajectory's device
    video = None
    provenance: dict = {}
    if generate:
        with _stage("generate", timings):
            maps = args.maps.split(",") if args.maps else None
            video = rendiff.generate(layers, model=args.model, maps=maps, steps=args.steps,
                                     reference=args.reference, device=args.device,
                                     progress=progress, scheduler=args.scheduler,
                                     weights=args.weights, prompt=args.prompt,
                                     negative_prompt=args.negative_prompt,
                                     guidance_scale=args.guidance_scale, keyframes=args.keyframes,
                                     record=provenance,
                                     options=scene.generation if scene is not None else None,
                                     seed=scene.seed if scene is not None else args.seed)
            from rendiff.api import model_inputs

            inputs = model_inputs(layers.to("cpu"), args.model, maps=maps,
                                  options=scene.generation if scene is not None else None)
    with _stage("save", timings):
        written = rendiff.save(args.out, layers, video, scene=scene, trajectory=traj,
                               timings=dict(timings), model_inputs=inputs if generate else None,
                               extra={"threads": {"policy": policy,
                                                  "torch_threads": torch.get_num_threads()},
                                      **({"generation": provenance} if generate else {})})
    if progress:
        total = sum(timings.values())
        name = scene.name if scene is not None else args.scene
        print(f"rendiff: {name}: {len(written)} outputs in {args.out} ({total:.1f} s: "
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
    if getattr(args, "quiet", False):  # nothing but errors: no notices from rendiff's modules
        logging.getLogger("rendiff").setLevel(logging.ERROR)
    try:
        if args.command == "dataset":
            return _dataset(args)
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
    except (_UsageError, FileNotFoundError) as e:
        print(f"rendiff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rendiff: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failure while running: one line, the traceback on request
        if isinstance(e, _input_errors()):
            print(f"rendiff: error: {e}", file=sys.stderr)
            return 2
        if os.environ.get("RENDIFF_DEBUG"):
            raise
        what = str(e) if isinstance(e, _StageFailure) else f"{type(e).__name__}: {e}"
        print(f"rendiff: error: {what} (set RENDIFF_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
