"""Atomic file output: write to a hidden temporary name in the same folder, then rename.

A run that fails part-way leaves no half-written file under a final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "build_folder", "folder_tool_main", "remove_leftovers", "write_bytes",
           "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so writers that look at the
    extension still work); renames it onto ``path`` when the block succeeds, removes it if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp_path, 0o666 & ~mask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_leftovers(folder: str | Path, subfolders: tuple[str, ...] = ()) -> list[Path]:
    """Removes the temporary files of :func:`atomic_path` that a killed process left in
    ``folder`` (and in its ``subfolders``); returns what was removed. Call it only when no other
    process writes into ``folder``."""
    removed = []
    for d in (Path(folder), *(Path(folder) / s for s in subfolders)):
        if d.is_dir():
            for p in sorted(d.glob(".*.partial*")):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def build_folder(out: str | Path, fill: Callable[[Path], object], overwrite: bool = False) -> Path:
    """Makes the folder ``out`` atomically: ``fill(tmp)`` writes it under a hidden name beside
    ``out``, which is then renamed (replacing ``out`` only when ``overwrite``); a failure leaves
    nothing under ``out``. Raises FileExistsError when ``out`` exists and not ``overwrite``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True / --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def folder_tool_main(description: str, write: Callable[[Path, int, bool], object],
                     argv: list[str] | None = None) -> int:
    """The command line of a tool that writes one folder (``tools/make_tiny_*.py``):
    ``OUT [--seed N] [--overwrite]``; ``write(out, seed, overwrite)`` builds it. Prints the
    folder's size and the time taken; an existing folder without ``--overwrite`` is exit 2."""
    import argparse
    import sys
    import time

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("out", type=Path, help="folder to create")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    try:
        write(args.out, args.seed, args.overwrite)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB) in {time.perf_counter() - t:.1f} s")
    return 0
