"""Make a data set: sample, simulate, render and write many clips, in-process, in worker
processes, or on a Ray cluster; resume where a previous run stopped.

Output folder::

    OUT/dataset.yaml        the spec the clips were drawn from (with the master seed)
    OUT/clips/000012/       one folder per complete clip (see docs/datasets.md)
    OUT/failures.json       clips that failed: index, seed, error (never silently dropped)
    OUT/index.parquet       one row per complete clip: seed, paths, stats, drawn parameters
    OUT/coco.json           COCO annotations of all complete clips

A clip is made in a hidden folder ``clips/.000012.partial-*`` and renamed when every file of it
is written, so a clip folder under its final name is always complete; a run that is killed
leaves only hidden partial folders, which the next run removes and redoes. The index and the COCO
file are rewritten at the end of every run from the clips on disk, so they only ever list
complete clips.

Every clip is computed with one torch thread whatever the mode, so in-process, worker and Ray
runs give byte-identical clips (float reductions depend on the thread count).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rendiff.io.atomic import atomic_path, write_text

if TYPE_CHECKING:
    from .spec import DatasetSpec

__all__ = ["DatasetError", "RunOptions", "RunReport", "make_clip", "make_dataset",
           "clip_name", "complete_clips", "write_index"]

CLIPS = "clips"
SPEC_FILE = "dataset.yaml"
INDEX_FILE = "index.parquet"
COCO_FILE = "coco.json"
FAILURES_FILE = "failures.json"
SUMMARY_FILE = "summary.json"


class DatasetError(ValueError):
    """Bad input for a data-set run (spec, output folder, options): one line, exit code 2."""


@dataclass
class RunOptions:
    """How clips are made. ``workers`` > 1 runs local processes; ``ray_address`` runs on Ray
    (``"local"`` starts a local Ray with ``workers`` CPUs)."""

    clips: int
    workers: int = 1
    ray_address: str | None = None
    seed: int | None = None  # overrides the spec's master seed
    generate: bool = False  # also run the video model and write generated frames
    model: str | None = None
    device: str = "cpu"
    amodal: bool = True  # visibility fractions from per-object renders
    progress: bool = True


@dataclass
class RunReport:
    """What a run did."""

    out: Path
    made: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # complete before this run (resumed)
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clips_per_hour(self) -> float:
        return 3600.0 * len(self.made) / self.seconds if self.seconds > 0 else 0.0


def clip_name(index: int) -> str:
    return f"{index:06d}"


def _clips_dir(out: Path) -> Path:
    return Path(out) / CLIPS


def complete_clips(out: str | Path) -> dict[int, Path]:
    """Index -> folder of every complete clip in ``out`` (partial folders are hidden)."""
    found: dict[int, Path] = {}
    d = _clips_dir(Path(out))
    if not d.is_dir():
        return found
    for p in d.iterdir():
        if p.is_dir() and not p.name.startswith(".") and p.name.isdigit() \
                and (p / SUMMARY_FILE).is_file():
            found[int(p.name)] = p
    return found


def _clean_partials(out: Path) -> int:
    d = _clips_dir(out)
    n = 0
    if d.is_dir():
        for p in d.iterdir():
            if p.name.startswith(".") and ".partial" in p.name:
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


# --------------------------------------------------------------------------------------------
# One clip


def make_clip(spec: DatasetSpec, out: str | Path, index: int, *, generate: bool = False,
              model: str | None = None, device: str = "cpu", amodal: bool = True) -> dict:
    """Samples, simulates, renders and writes clip ``index`` of ``spec`` into
    ``out/clips/<index>``; returns its index row. Raises on failure (nothing is left under the
    clip's final name)."""
    import torch

    import rendiff

    from .sample import sample_clip
    from .writers import write_clip

    out = Path(out)
    final = _clips_dir(out) / clip_name(index)
    tmp = _clips_dir(out) / f".{clip_name(index)}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # byte-identical clips whatever the mode (see module docstring)
    try:
        t0 = time.perf_counter()
        draw = sample_clip(spec, index)
        traj = rendiff.simulate(draw.scene, progress=False)
        t1 = time.perf_counter()
        layers = rendiff.render(traj, progress=False)
        t2 = time.perf_counter()
        video = None
        if generate:
            video = rendiff.generate(layers, model=model, device=device, progress=False)
        t3 = time.perf_counter()
        tmp.mkdir(parents=True)
        name = f"{CLIPS}/{clip_name(index)}"
        row = write_clip(tmp, traj, layers, index=index, seed=draw.seed, params=draw.params,
                         generated=video, amodal=amodal, name=name)
        t4 = time.perf_counter()
        # timings vary run to run: kept out of the clip's files (byte-identical clips), returned
        stable = {k: v for k, v in row.items() if not k.startswith("time_")}
        stable.update({"index": index, "seed": draw.seed, "path": name})
        write_text(tmp / SUMMARY_FILE, json.dumps(stable, sort_keys=True, indent=1) + "\n")
        if final.exists():
            raise FileExistsError(f"{final} appeared while this clip was being made")
        os.replace(tmp, final)
        row = dict(stable)
        row.update({"time_simulate_s": t1 - t0, "time_render_s": t2 - t1,
                    "time_generate_s": t3 - t2, "time_write_s": t4 - t3})
        return row
    finally:
        torch.set_num_threads(threads)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _clip_task(spec: DatasetSpec, out: str, index: int, generate: bool, model: str | None,
               device: str, amodal: bool) -> dict:
    """make_clip that never raises: a failure comes back as a dict with ``error``."""
    try:
        return make_clip(spec, out, index, generate=generate, model=model, device=device,
                         amodal=amodal)
    except Exception as e:  # logged with its seed by the caller, never silently dropped
        from .sample import clip_seed

        tb = traceback.format_exc().strip().splitlines()
        return {"index": index, "seed": clip_seed(spec.seed, index),
                "error": f"{type(e).__name__}: {e}", "traceback": tb[-6:]}


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------
# Executors: each yields task results as they finish


def _run_inprocess(task: Callable[[int], dict], todo: list[int]) -> Iterator[dict]:
    for i in todo:
        yield task(i)


def _run_processes(args: tuple, todo: list[int], workers: int) -> Iterator[dict]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: Warp, torch's OpenMP pool and Ray do not survive a fork
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=_worker_init) as pool:
        futures = [pool.submit(_clip_task, *args[:2], i, *args[2:]) for i in todo]
        try:
            for f in as_completed(futures):
                yield f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _run_ray(args: tuple, todo: list[int], address: str, workers: int) -> Iterator[dict]:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a dependency
        raise DatasetError(f"--ray-address needs the 'ray' package: {e}") from None
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": {
                         "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}})
        else:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except Exception as e:
                raise DatasetError(f"--ray-address {address}: cannot connect to Ray: "
                                   f"{type(e).__name__}: {e}") from None
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_clip_task)
        spec_ref = ray.put(args[0])
        pending = [remote.remote(spec_ref, args[1], i, *args[2:]) for i in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------
# The run


def _check_out(out: Path, spec: DatasetSpec) -> None:
    """A folder that already holds a data set must have been made from the same spec."""
    from .spec import load_dataset_spec

    existing = out / SPEC_FILE
    if existing.exists():
        try:
            old = load_dataset_spec(existing)
        except Exception as e:
            raise DatasetError(f"{existing}: not a rendiff data-set spec ({e}); "
                               "choose another output folder") from None
        a, b = old.model_dump(mode="json"), spec.model_dump(mode="json")
        a.pop("base", None)
        b.pop("base", None)
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise DatasetError(f"{out} holds a data set made from a different spec "
                               f"(differs in: {', '.join(diff)}); use a new output folder")
    elif out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise DatasetError(f"{out} exists and is not a rendiff data set (no {SPEC_FILE}); "
                           "use a new or empty output folder")


def make_dataset(spec: DatasetSpec, out: str | Path, options: RunOptions) -> RunReport:
    """Makes clips ``0 .. options.clips - 1`` of ``spec`` in ``out``, keeping the complete
    ones already there; rewrites the index, the COCO file and the failure list."""
    from tqdm.auto import tqdm

    if options.clips < 1:
        raise DatasetError(f"--clips must be >= 1, got {options.clips}")
    if options.workers < 1:
        raise DatasetError(f"--workers must be >= 1, got {options.workers}")
    if options.seed is not None:
        spec = spec.model_copy(update={"seed": options.seed})
    out = Path(out)
    _check_out(out, spec)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / SPEC_FILE, spec.to_yaml())
    _clean_partials(out)
    done = complete_clips(out)
    todo = [i for i in range(options.clips) if i not in done]
    report = RunReport(out=out, kept=sorted(i for i in done if i < options.clips))
    args = (spec, str(out), options.generate, options.model, options.device, options.amodal)
    if options.ray_address:
        results: Iterable[dict] = _run_ray(args, todo, options.ray_address, options.workers)
    elif options.workers > 1 and len(todo) > 1:
        results = _run_processes(args, todo, options.workers)
    else:
        results = _run_inprocess(lambda i: _clip_task(spec, str(out), i, *args[2:]), todo)

    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="clip", desc=f"dataset {spec.name}",
               disable=not options.progress or not todo, dynamic_ncols=True)
    try:
        for r in results:
            if "error" in r:
                report.failed.append(r)
                msg = f"clip {r['index']} (seed {r['seed']}) failed: {r['error']}"
                if options.progress:
                    bar.write(msg)
                else:
                    print(f"rendiff: {msg}", file=sys.stderr)
            else:
                report.made.append(r["index"])
            bar.update(1)
            elapsed = time.perf_counter() - t0
            bar.set_postfix_str(f"{60 * bar.n / max(elapsed, 1e-9):.1f} clips/min, "
                                f"{len(report.failed)} failed")
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
        _finish(out, spec, report)
    return report


def _finish(out: Path, spec: DatasetSpec, report: RunReport) -> None:
    """Index, COCO file and failure list from the complete clips on disk."""
    clips = complete_clips(out)
    rows = [json.loads((p / SUMMARY_FILE).read_text()) for _, p in sorted(clips.items())]
    write_index(out / INDEX_FILE, rows)
    from .coco import merge_coco

    cocos = []
    for _, p in sorted(clips.items()):
        f = p / COCO_FILE
        if f.exists():
            cocos.append(json.loads(f.read_text()))
    write_text(out / COCO_FILE, json.dumps(merge_coco(cocos), separators=(",", ":")))
    failed = sorted(report.failed, key=lambda r: r["index"])
    failed = [r for r in failed if r["index"] not in clips]
    write_text(out / FAILURES_FILE, json.dumps({"spec": spec.name, "failed": failed},
                                               indent=1) + "\n")


def write_index(path: Path, rows: list[dict]) -> None:
    """One Parquet row per clip; keys missing from a row (parameters of another generator)
    are null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    front = [k for k in ("index", "seed", "path") if k in seen]
    keys = front + sorted(k for k in keys if k not in front)
    columns = {}
    for k in keys:
        values = [r.get(k) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float} and float in kinds:
            values = [None if v is None else float(v) for v in values]
        elif len(kinds) > 1 or kinds & {list, dict, tuple}:  # mixed: one text column
            values = [None if v is None else v if isinstance(v, str)
                      else json.dumps(v, sort_keys=True) for v in values]
        columns[k] = values
    table = pa.table(columns) if rows else pa.table({"index": pa.array([], pa.int64())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
