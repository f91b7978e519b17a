"""The command line's thread policy (rendiff/_threads.py): spin briefly on a free machine, one
thread beside a busy one, the user's settings untouched, decided before torch loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rendiff._threads import _cpu_times, busy_cores, choose_threads

STAT = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"


def test_cpu_times_reads_the_aggregate_line():
    assert _cpu_times(STAT) == (150.0, 1000.0)  # idle 800 + iowait 50 of 1000
    assert _cpu_times("intr 1 2 3\n") is None


def test_busy_cores_from_two_samples(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    samples = iter([STAT, "cpu  400 0 50 1100 50 0 0 0 0 0\n"])  # +300 busy of +600

    def read_text(self, *a, **kw):
        return next(samples)

    monkeypatch.setattr(Path, "read_text", read_text)
    busy = busy_cores(0.0, str(stat))
    assert busy is not None and abs(busy - 0.5 * (os.cpu_count() or 1)) < 1e-9


def test_policy_by_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as if torch were not loaded yet
    free: dict = {}
    assert choose_threads(free, busy=0.2) == "spin" and free == {"GOMP_SPINCOUNT": "10000"}
    loaded: dict = {}
    assert choose_threads(loaded, busy=1.0) == "one thread" and loaded == {"OMP_NUM_THREADS": "1"}
    mine = {"OMP_NUM_THREADS": "2"}
    assert choose_threads(mine, busy=1.9) == "user" and mine == {"OMP_NUM_THREADS": "2"}


def test_policy_leaves_a_loaded_torch_alone():
    import torch  # noqa: F401

    env: dict = {}
    assert choose_threads(env, busy=1.9) == "unchanged" and env == {}


def test_a_cli_run_records_its_policy(tmp_path):
    """A fresh `rendiff render` decides before torch loads and says what it chose."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    out = tmp_path / "out"
    cli = Path(sys.executable).parent / "rendiff"
    subprocess.run([str(cli), "render", "falling_objects", "-o", str(out), "--frames", "2",
                    "--size", "32x32", "--quiet"], env=env, check=True, timeout=300)
    threads = json.loads((out / "metadata.json").read_text())["threads"]
    assert threads["policy"] in ("spin", "one thread")
    assert threads["torch_threads"] == (1 if threads["policy"] == "one thread"
                                        else len(os.sched_getaffinity(0)))
