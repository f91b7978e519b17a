"""Make a data set: sample, simulate, render and write many clips, in-process, in worker
processes, or on a Ray cluster; resume where a previous run stopped.

Output folder::

    OUT/dataset.yaml        the spec the clips were drawn from (with the master seed)
    OUT/run.json            what else decides a clip's content (base scene hash, amodal,
                            generate, model, rendiff version): a resume must match it
    OUT/classes.json        the data set's semantic class and COCO category tables
    OUT/clips/000012/       one folder per complete clip (see docs/datasets.md)
    OUT/failures.json       clips that failed and are not complete: index, seed, error
    OUT/coco.json           COCO annotations of all complete clips
    OUT/index.parquet       one row per complete clip (its metadata holds the SHA-256 of
                            coco.json)
    OUT/manifest.json       written last: size and SHA-256 of every top-level file and of each
                            clip's metadata.json and summary.json (each metadata.json covers its
                            clip's other files), and the manifest's own digest: the chain
                            ``rendiff dataset --verify`` checks

A clip is made in a hidden folder ``clips/.000012.partial-*`` and renamed when every file of it
is written, so a clip folder under its final name is always complete; a run that is killed
leaves only hidden partial folders, which the next run removes and redoes. One run at a time
holds ``OUT/.lock``. The COCO file, the failure list and the index are rewritten at the end of
every run (also after Ctrl-C or SIGTERM) from the clips on disk, so they only ever list complete
clips.

Every clip is computed with one torch thread whatever the mode, so in-process, worker and Ray
runs give byte-identical clips (float reductions depend on the thread count).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
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

__all__ = [
    "DatasetError",
    "RunOptions",
    "RunReport",
    "make_clip",
    "make_dataset",
    "clip_name",
    "complete_clips",
    "write_index",
]

CLIPS = "clips"
SPEC_FILE = "dataset.yaml"
RUN_FILE = "run.json"
CLASSES_FILE = "classes.json"
INDEX_FILE = "index.parquet"
COCO_FILE = "coco.json"
FAILURES_FILE = "failures.json"
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
#: Top-level files the manifest covers (those present).
TOP_LEVEL_FILES = (SPEC_FILE, RUN_FILE, CLASSES_FILE, FAILURES_FILE, COCO_FILE, INDEX_FILE)


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
    flow16: bool = False  # flow stored as float16 (half the raw bytes) instead of float32
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
        if (
            p.is_dir()
            and not p.name.startswith(".")
            and p.name.isdigit()
            and (p / SUMMARY_FILE).is_file()
        ):
            found[int(p.name)] = p
    return found


def incomplete_clips(out: str | Path) -> list[Path]:
    """Clip folders under a final name without their summary (an interrupted copy, a
    non-atomic rename on a network file system): redone by the next run."""
    d = _clips_dir(Path(out))
    if not d.is_dir():
        return []
    return sorted(
        p
        for p in d.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and p.name.isdigit()
        and not (p / SUMMARY_FILE).is_file()
    )


def _clean(out: Path) -> None:
    """Removes what an interrupted run left: partial clip folders, incomplete clip folders
    and temporary files of the top-level outputs. Only called while holding the lock."""
    d = _clips_dir(out)
    if d.is_dir():
        for p in d.iterdir():
            if p.name.startswith(".") and ".partial" in p.name:
                shutil.rmtree(p, ignore_errors=True)
        for p in incomplete_clips(out):
            shutil.rmtree(p, ignore_errors=True)
    for p in out.glob(".*.partial*"):
        p.unlink(missing_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # rewritten last, when the run ends


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One run at a time per output folder (a second would delete the first's partial clips)."""
    import fcntl

    f = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(
                f"{out}: another `rendiff dataset` run is using this folder "
                "(wait for it to finish, or stop it)"
            ) from None
        yield
    finally:
        f.close()


# --------------------------------------------------------------------------------------------
# One clip


def make_clip(
    spec: DatasetSpec,
    out: str | Path,
    index: int,
    *,
    generate: bool = False,
    model: str | None = None,
    device: str = "cpu",
    amodal: bool = True,
    flow16: bool = False,
) -> dict:
    """Samples, simulates, renders and writes clip ``index`` of ``spec`` into
    ``out/clips/<index>``; returns its index row. Raises on failure (nothing is left under the
    clip's final name)."""
    import torch

    import rendiff

    from .sample import dataset_categories, dataset_classes, sample_clip
    from .writers import write_clip

    out = Path(out)
    final = _clips_dir(out) / clip_name(index)
    tmp = _clips_dir(out) / f".{clip_name(index)}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # byte-identical clips whatever the mode (see module docstring)
    try:
        t0 = time.perf_counter()
        draw = sample_clip(spec, index)
        traj = rendiff.simulate(draw.scene, progress=False, device=device)
        t1 = time.perf_counter()
        layers = rendiff.render(traj, progress=False)
        t2 = time.perf_counter()
        video = None
        provenance: dict | None = None
        if generate:
            provenance = {}
            video = rendiff.generate(
                layers,
                model=model,
                device=device,
                progress=False,
                record=provenance,
                options=draw.scene.generation,
                seed=draw.scene.seed,
            )
        t3 = time.perf_counter()
        traj, layers = traj.to("cpu"), layers.to("cpu")  # the writers work on the CPU
        tmp.mkdir(parents=True)
        name = f"{CLIPS}/{clip_name(index)}"
        row = write_clip(
            tmp,
            traj,
            layers,
            scene=draw.scene,
            index=index,
            seed=draw.seed,
            params=draw.params,
            generated=video,
            amodal=amodal,
            name=name,
            classes=dataset_classes(spec),
            categories=dataset_categories(spec),
            flow16=flow16,
            generation=provenance,
        )
        t4 = time.perf_counter()
        # timings vary run to run: kept out of the clip's files (byte-identical clips), returned
        stable = {k: v for k, v in row.items() if not k.startswith("time_")}
        stable.update({"index": index, "seed": draw.seed, "path": name})
        write_text(tmp / SUMMARY_FILE, json.dumps(stable, sort_keys=True, indent=1) + "\n")
        if final.exists():
            raise FileExistsError(f"{final} appeared while this clip was being made")
        os.replace(tmp, final)
        row = dict(stable)
        row.update(
            {
                "time_simulate_s": t1 - t0,
                "time_render_s": t2 - t1,
                "time_generate_s": t3 - t2,
                "time_write_s": t4 - t3,
            }
        )
        return row
    finally:
        torch.set_num_threads(threads)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _failure(spec: DatasetSpec, index: int, error: str, tb: list[str] | None = None) -> dict:
    from .sample import clip_seed

    return {
        "index": index,
        "seed": clip_seed(spec.seed, index),
        "error": error,
        "traceback": tb or [],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _clip_task(
    spec: DatasetSpec,
    out: str,
    index: int,
    generate: bool,
    model: str | None,
    device: str,
    amodal: bool,
    flow16: bool = False,
) -> dict:
    """make_clip that never raises: a failure comes back as a dict with ``error``."""
    marker = os.environ.get("RENDIFF_TEST_KILL_WORKER_AT")
    if marker and index == 1 and not os.path.exists(marker):  # tests: a worker dies once
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        return make_clip(
            spec,
            out,
            index,
            generate=generate,
            model=model,
            device=device,
            amodal=amodal,
            flow16=flow16,
        )
    except Exception as e:  # logged with its seed by the caller, never silently dropped
        tb = traceback.format_exc().strip().splitlines()
        # one line (a pydantic error spans several), a few hundred characters at most
        text = " ".join(f"{type(e).__name__}: {e}".split())
        return _failure(spec, index, text[:300] + ("..." if len(text) > 300 else ""), tb[-6:])


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    with contextlib.suppress(Exception):  # Linux: die with the parent, never linger
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    import torch

    torch.set_num_threads(1)
    from rendiff.engine.physics import init_warp

    init_warp(quiet=True)  # the parent has said it once if the run is not quiet


# --------------------------------------------------------------------------------------------
# Executors: each yields task results as they finish


def _run_inprocess(task: Callable[[int], dict], todo: list[int]) -> Iterator[dict]:
    for i in todo:
        yield task(i)


def _run_processes(args: tuple, todo: list[int], workers: int) -> Iterator[dict]:
    """Local worker processes. A worker that dies (killed, out of memory) breaks the pool:
    the clips it was running are retried once in a new pool, then logged as failed."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    spec = args[0]
    ctx = mp.get_context("spawn")  # Warp, torch's OpenMP pool and Ray do not survive a fork
    pending = list(todo)
    broken_once: set[int] = set()
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
        futures = {pool.submit(_clip_task, spec, args[1], i, *args[2:]): i for i in pending}
        retry: list[int] = []
        try:
            live = set(futures)
            while live:
                done, live = wait(live, return_when=FIRST_COMPLETED)
                for f in done:
                    i = futures[f]
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        if i in broken_once:
                            yield _failure(
                                spec,
                                i,
                                "worker process died twice while making "
                                "this clip (killed or out of memory)",
                            )
                        else:
                            broken_once.add(i)
                            retry.append(i)
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        pending = sorted(retry)


def _terminate(pool) -> None:
    """Stops a process pool now: queued clips are cancelled, running workers terminated."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


def _probe_ray(address: str) -> None:
    """Fails fast (one line) when a Ray address cannot be reached, instead of Ray's minutes of
    retries."""
    if address in ("local", "auto") or ":" not in address:
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"--ray-address {address}: cannot reach a Ray cluster there ({type(e).__name__}: {e})"
        ) from None


def _run_ray(args: tuple, todo: list[int], address: str, workers: int) -> Iterator[dict]:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a dependency
        raise DatasetError(f"--ray-address needs the 'ray' package: {e}") from None
    spec = args[0]
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}}
        if address == "local":
            # Ray starts its workers at nice 15; on a machine doing anything else they would
            # then get a fraction of their CPU (measured: 4x slower than local workers)
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env=env,
            )
        else:
            try:
                ray.init(
                    address=address, log_to_driver=False, configure_logging=False, runtime_env=env
                )
            except Exception as e:
                raise DatasetError(
                    f"--ray-address {address}: cannot connect to Ray: {type(e).__name__}: {e}"
                ) from None
        started = True
    refs: dict = {}
    try:
        # a lost worker or node is retried once (clips are deterministic); errors inside a
        # clip come back as failure dicts and are not retried
        remote = ray.remote(num_cpus=1, max_retries=1)(_clip_task)
        spec_ref = ray.put(spec)
        refs = {remote.remote(spec_ref, args[1], i, *args[2:]): i for i in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=min(len(pending), 16), timeout=1.0)
            for ref in done:
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as e:
                    yield _failure(
                        spec,
                        refs[ref],
                        f"Ray: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                    )
    except BaseException:
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------
# The run


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run_record(spec: DatasetSpec, options: RunOptions) -> dict:
    """What decides a clip's content beyond the spec file itself."""
    from importlib.metadata import version

    rec = {
        "generate": options.generate,
        "model": options.model if options.generate else None,
        "amodal": options.amodal,
        "flow16": options.flow16,
        "rendiff": version("rendiff"),
        "base_sha256": None,
    }
    if spec.base is not None:
        rec["base_sha256"] = sha256_file(Path(spec.base))
    return rec


def _check_out(out: Path, spec: DatasetSpec, record: dict) -> None:
    """A folder that already holds a data set must have been made from the same spec (and
    base scene, options and rendiff version)."""
    from .spec import load_dataset_spec

    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    existing = out / SPEC_FILE
    if existing.exists():
        try:
            old = load_dataset_spec(existing)
        except Exception as e:
            raise DatasetError(
                f"{existing}: cannot be read back ({e}); was its base scene "
                "moved? Put it back, or use a new output folder"
            ) from None
        a, b = old.model_dump(mode="json"), spec.model_dump(mode="json")
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise DatasetError(
                f"{out} holds a data set made from a different spec "
                f"(differs in: {', '.join(diff)}); use a new output folder"
            )
        run = out / RUN_FILE
        if run.is_file():
            old_rec = json.loads(run.read_text())
            old_rec.setdefault("flow16", False)  # run.json written before the option existed
            diff = sorted(k for k in record if old_rec.get(k) != record[k])
            if diff:
                what = ", ".join(f"{k}: {old_rec.get(k)!r} then, {record[k]!r} now" for k in diff)
                raise DatasetError(
                    f"{out}: clips there were made with other settings "
                    f"({what}); resume with the same ones or use a new folder"
                )
    elif out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise DatasetError(
            f"{out} exists and is not a rendiff data set (no {SPEC_FILE}); "
            "use a new or empty output folder"
        )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's preemption, ``timeout``) stops the run like Ctrl-C does: workers
    are stopped and the index is written."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def make_dataset(spec: DatasetSpec, out: str | Path, options: RunOptions) -> RunReport:
    """Makes clips ``0 .. options.clips - 1`` of ``spec`` in ``out``, keeping the complete
    ones already there; rewrites the COCO file, the failure list and the index (which lists
    every complete clip in ``out``)."""
    from tqdm.auto import tqdm

    from .sample import dataset_categories, dataset_classes

    if options.clips < 1:
        raise DatasetError(f"--clips must be >= 1, got {options.clips}")
    if options.workers < 1:
        raise DatasetError(f"--workers must be >= 1, got {options.workers}")
    if options.seed is not None:
        spec = spec.model_copy(update={"seed": options.seed})
    if options.generate:
        from rendiff.api import check_model

        check_model(options.model)
    if options.ray_address:
        _probe_ray(options.ray_address)
    out = Path(out).resolve()  # workers (and Ray nodes) get an absolute path
    record = _run_record(spec, options)
    _check_out(out, spec, record)
    out.mkdir(parents=True, exist_ok=True)
    report = RunReport(out=out)
    with _locked(out), _sigterm_as_interrupt():
        write_text(out / SPEC_FILE, spec.to_yaml())
        write_text(out / RUN_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        write_text(
            out / CLASSES_FILE,
            json.dumps(
                {"semantic": dataset_classes(spec), "categories": dataset_categories(spec)},
                indent=1,
            )
            + "\n",
        )
        _clean(out)
        done = complete_clips(out)
        todo = [i for i in range(options.clips) if i not in done]
        report.kept = sorted(i for i in done if i < options.clips)
        args = (
            spec,
            str(out),
            options.generate,
            options.model,
            options.device,
            options.amodal,
            options.flow16,
        )
        if options.ray_address:
            results: Iterable[dict] = _run_ray(args, todo, options.ray_address, options.workers)
        elif options.workers > 1 and len(todo) > 1:
            results = _run_processes(args, todo, options.workers)
        else:
            results = _run_inprocess(lambda i: _clip_task(spec, str(out), i, *args[2:]), todo)

        t0 = time.perf_counter()
        bar = tqdm(
            total=len(todo),
            unit="clip",
            desc=f"dataset {spec.name}",
            disable=not options.progress or not todo,
            dynamic_ncols=True,
        )
        try:
            for r in results:
                if "error" in r:
                    report.failed.append(r)
                    msg = f"clip {r['index']} (seed {r['seed']}) failed: {r['error']}"
                    if options.progress:
                        bar.write(f"rendiff: {msg}", file=sys.stderr)
                    else:
                        print(f"rendiff: {msg}", file=sys.stderr)
                else:
                    report.made.append(r["index"])
                bar.update(1)
                elapsed = time.perf_counter() - t0
                bar.set_postfix_str(
                    f"{60 * bar.n / max(elapsed, 1e-9):.1f} clips/min, {len(report.failed)} failed"
                )
        finally:
            bar.close()
            report.seconds = time.perf_counter() - t0
            _finish(out, spec, report, attempted=set(todo))
    return report


def _finish(out: Path, spec: DatasetSpec, report: RunReport, attempted: set[int]) -> None:
    """COCO file, failure list, the index and, last, the manifest, from the complete clips on
    disk. Workers are stopped by now: what they left half-made (a SIGTERM or Ctrl-C) goes."""
    _clean(out)
    clips = sorted(complete_clips(out).items())
    _write_coco(out, clips)
    # failures: this run's, plus earlier ones that were not retried and are still incomplete
    done = {i for i, _ in clips}
    old = []
    if (out / FAILURES_FILE).is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            old = json.loads((out / FAILURES_FILE).read_text())["failed"]
    failed = {r["index"]: r for r in old if r["index"] not in attempted}
    failed.update({r["index"]: r for r in report.failed})
    failed = {i: r for i, r in failed.items() if i not in done}
    write_text(
        out / FAILURES_FILE,
        json.dumps({"spec": spec.name, "failed": [failed[i] for i in sorted(failed)]}, indent=1)
        + "\n",
    )
    rows = [json.loads((p / SUMMARY_FILE).read_text()) for _, p in clips]
    write_index(
        out / INDEX_FILE,
        rows,
        metadata={"coco_sha256": sha256_file(out / COCO_FILE), "clips": str(len(rows))},
    )
    write_manifest(out, [p for _, p in clips])


def _file_record(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of a manifest without its own ``sha256`` field (canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def write_manifest(out: Path, clips: list[Path]) -> None:
    """``manifest.json``, written last: size and SHA-256 of every top-level file and of each
    clip's ``metadata.json`` (which covers the clip's other files) and ``summary.json``, plus
    its own digest, so that ``--verify`` sees every byte of the data set."""
    files = {name: _file_record(out / name) for name in TOP_LEVEL_FILES if (out / name).is_file()}
    for clip in clips:
        for name in ("metadata.json", SUMMARY_FILE):
            files[f"{CLIPS}/{clip.name}/{name}"] = _file_record(clip / name)
    manifest = {"format": 1, "files": dict(sorted(files.items()))}
    manifest["sha256"] = manifest_digest(manifest)
    write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")


def _write_coco(out: Path, clips: list[tuple[int, Path]]) -> None:
    """The data set's COCO file, streamed clip by clip (memory: one clip, whatever the data
    set's size), with the fixed category table and the stable ids of ``merge_coco(keys=...)``."""
    import tempfile

    from .coco import COCO_INFO, coco_category, merge_coco

    categories = json.loads((out / CLASSES_FILE).read_text())["categories"]
    cat_ids = {name: k + 1 for k, name in enumerate(categories)}
    sep = (",", ":")
    with (
        atomic_path(out / COCO_FILE) as tmp,
        tempfile.TemporaryFile("w+", encoding="utf-8", dir=out) as fa,
    ):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(
                '{"info":' + json.dumps(COCO_INFO, separators=sep) + ',"licenses":[],'
                '"categories":'
                + json.dumps([coco_category(n, k) for n, k in cat_ids.items()], separators=sep)
                + ',"images":['
            )
            first_img = first_ann = True
            for i, p in clips:
                src = p / COCO_FILE
                if not src.exists():
                    continue
                merged = merge_coco([json.loads(src.read_text())], keys=[i])
                names = {c["id"]: c["name"] for c in merged["categories"]}
                for img in merged["images"]:
                    f.write(("" if first_img else ",") + json.dumps(img, separators=sep))
                    first_img = False
                for ann in merged["annotations"]:
                    ann["category_id"] = cat_ids[names[ann["category_id"]]]
                    fa.write(("" if first_ann else ",") + json.dumps(ann, separators=sep))
                    first_ann = False
            f.write('],"annotations":[')
            fa.seek(0)
            shutil.copyfileobj(fa, f)
            f.write("]}\n")


def write_index(path: Path, rows: list[dict], metadata: dict[str, str] | None = None) -> None:
    """One Parquet row per clip; keys missing from a row (parameters of another generator)
    are null; ``metadata`` goes into the file's schema metadata."""
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
            values = [
                None if v is None else v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                for v in values
            ]
        columns[k] = values
    table = pa.table(columns) if rows else pa.table({"index": pa.array([], pa.int64())})
    if metadata:
        table = table.replace_schema_metadata(
            {
                **(table.schema.metadata or {}),
                **{k.encode(): v.encode() for k, v in metadata.items()},
            }
        )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
