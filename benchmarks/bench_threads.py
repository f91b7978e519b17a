"""The thread policy: `rendiff render` with default settings against the best thread setting,
on an idle machine and beside a CPU-bound process (the machines are shared).

    python benchmarks/bench_threads.py [--scenes falling_objects walking_human]
                                       [--sizes 128 512] [--frames 16] [--reps 2]
                                       [--command render|run] [--modes default "1 thread"]

Modes, interleaved run by run: ``default`` (rendiff as installed: the CLI's policy,
rendiff/_threads.py: a short spin on a free machine, one thread beside a busy one), ``1 thread``
(OMP_NUM_THREADS=1), ``2 threads passive`` (OMP_WAIT_POLICY=PASSIVE, rendiff's policy in session
5), ``2 threads spinning`` (OMP_WAIT_POLICY=ACTIVE, close to OpenMP's own default). Each run
is a fresh `rendiff render` process; the simulate and render times are read from its
metadata.json. Prints a table (the median of the runs; ratio = default / best mode), writes
benchmarks/results/threads.json with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"
MODES = {"default": {}, "1 thread": {"OMP_NUM_THREADS": "1"},
         "2 threads passive": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2",
                               "GOMP_SPINCOUNT": "0"},
         "2 threads spinning": {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}}
_HOG = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    sum(range(10000))\n"


def _run(scene: str, size: int, frames: int, env: dict[str, str], out: Path,
         command: str = "render") -> float:
    cli = Path(sys.executable).parent / "rendiff"
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                              "OMP_WAIT_POLICY",
                                                              "GOMP_SPINCOUNT")}
    subprocess.run([cli, command, scene, "-o", out, "--frames", str(frames), "--size",
                    f"{size}x{size}", "--quiet"], env={**base, **env}, check=True)
    timings = json.loads((out / "metadata.json").read_text())["timings_s"]
    return timings["simulate"] + timings["render"] + timings.get("generate", 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["falling_objects", "walking_human"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 512])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--loads", nargs="+", default=["idle", "busy"], choices=["idle", "busy"])
    ap.add_argument("--command", choices=["render", "run"], default="render",
                    help="time `rendiff render` (simulate + render) or `rendiff run` (+ generate)")
    ap.add_argument("--out", type=Path, default=None, help="default results/threads[_run].json")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                    help="the modes to time (default: all; 'default' is always among them)")
    args = ap.parse_args(argv)
    modes = {m: MODES[m] for m in MODES if m in args.modes or m == "default"}
    print("| load | scene | size | " + " | ".join(f"{m} s" for m in modes)
          + " | default / best |")
    print("|---|---|---|" + "---|" * (len(modes) + 1))
    if args.out is None:
        args.out = RESULTS / ("threads.json" if args.command == "render" else "threads_run.json")
    before = list(os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.loads:
            hog = subprocess.Popen([sys.executable, "-c", _HOG]) if load == "busy" else None
            try:
                for scene in args.scenes:
                    for size in args.sizes:
                        times: dict[str, list[float]] = {m: [] for m in modes}
                        for _ in range(args.reps):
                            for mode, env in modes.items():
                                times[mode].append(_run(scene, size, args.frames, env,
                                                        Path(tmp) / "out", args.command))
                        med = {m: statistics.median(t) for m, t in times.items()}
                        best = min(med.values())
                        rows.append({"load": load, "scene": scene, "size": size,
                                     "seconds": med, "default_over_best": med["default"] / best,
                                     "load_average": list(os.getloadavg())})
                        print(f"| {load} | {scene} | {size} | "
                              + " | ".join(f"{med[m]:.2f}" for m in modes)
                              + f" | {med['default'] / best:.2f} |", flush=True)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    result = {"command": args.command, "frames": args.frames, "reps": args.reps,
              "modes": modes, "rows": rows,
              "load_average_before": before, "load_average_after": list(os.getloadavg()),
              "machine": machine_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
