"""The command line's thread policy, decided once per run before torch loads (OpenMP reads its
settings then). docs/design-notes.md "Threads" has the measurements behind it.

On 2 cores, torch's OpenMP threads either spin between parallel regions (fast when the cores are
free: 2.6 s for an 8-frame 512x512 render of `dynamic_gaussians`, but 8.5-45 s when another
process holds a core) or sleep (`OMP_WAIT_POLICY=PASSIVE`: 4.5 s beside that process, but 5.3 s
on an idle machine, waking threads for every small operation). So a run looks at the machine
first: with at least 1.5 cores idle it keeps torch's threads and lets them spin briefly before
sleeping (`GOMP_SPINCOUNT=10000`); otherwise it runs on one thread, which no neighbour slows
down. The user's own ``OMP_NUM_THREADS`` or ``GOMP_SPINCOUNT`` always wins.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["busy_cores", "choose_threads"]

#: Spins of libgomp's busy-wait before a thread sleeps, when the cores are free (its own default
#: is 300,000 without a wait policy, 0 with PASSIVE).
SPIN_COUNT = "10000"
#: Idle cores needed to use more than one thread.
FREE_CORES = 1.5


def _cpu_times(stat: str) -> tuple[float, float] | None:
    """(busy, total) jiffies of the aggregate ``cpu`` line of a /proc/stat text."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [float(v) for v in line.split()[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
            total = sum(values[:8])  # guest time is already counted in user
            return total - idle, total
    return None


def busy_cores(sample_s: float = 0.15, stat_path: str = "/proc/stat") -> float | None:
    """How many of the machine's cores other processes keep busy, sampled over ``sample_s``
    (this process sleeps meanwhile). None where /proc/stat cannot be read."""
    try:
        first = _cpu_times(Path(stat_path).read_text())
        time.sleep(sample_s)
        second = _cpu_times(Path(stat_path).read_text())
    except OSError:
        return None
    if first is None or second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def choose_threads(environ: dict | None = None, busy: float | None = None) -> str:
    """Sets the OpenMP environment for a command-line run (see the module docstring) and says
    which policy it chose: ``user``, ``spin`` (torch's threads, short spin), ``one thread``, or
    ``unchanged`` (torch already loaded, or one core)."""
    env = os.environ if environ is None else environ
    if "OMP_NUM_THREADS" in env or "GOMP_SPINCOUNT" in env:
        return "user"
    if "torch" in sys.modules:
        return "unchanged"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cpus or 1) < 2:
        return "unchanged"
    busy = busy_cores() if busy is None else busy
    if busy is None:  # no /proc/stat: the load average instead
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if cpus - busy >= FREE_CORES:
        env["GOMP_SPINCOUNT"] = SPIN_COUNT
        return "spin"
    env["OMP_NUM_THREADS"] = "1"
    return "one thread"
