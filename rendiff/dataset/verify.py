"""``rendiff dataset --verify OUT``: check every byte of a data set.

The chain: ``manifest.json`` (written last by a run, with its own digest) holds the size and
SHA-256 of every top-level file (``dataset.yaml``, ``run.json``, ``classes.json``,
``failures.json``, ``coco.json``, ``index.parquet``) and of each clip's ``metadata.json`` and
``summary.json``; each clip's ``metadata.json`` holds those of the clip's other files. Any file
or folder outside the chain (dotfiles included; ``.lock`` is the run lock) is reported, and so is
a malformed file of the chain. Every problem is reported, one line each, never an exception.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .runner import (
    CLIPS,
    COCO_FILE,
    INDEX_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    SUMMARY_FILE,
    DatasetError,
    manifest_digest,
    sha256_file,
)

__all__ = ["VerifyReport", "verify_dataset"]

_RERUN = "re-run the same command to rebuild it"


@dataclass
class VerifyReport:
    """Problems found, one line each (``path: what is wrong``); ``ok`` when there are none."""

    clips: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=1)


def _read_json(path: Path, report: VerifyReport) -> object | None:
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        report.problems.append(f"{path}: unreadable ({e.strerror})")
    except ValueError as e:
        report.problems.append(f"{path}: not valid JSON ({e})")
    return None


def _file_table(data: object, path: Path, report: VerifyReport) -> dict[str, dict] | None:
    """``data["files"]`` when it is ``{relative path: {"bytes": int, "sha256": str}}``."""
    files = data.get("files") if isinstance(data, dict) else None
    ok = isinstance(files, dict) and all(
        isinstance(k, str) and k and not k.startswith("/") and ".." not in k.split("/")
        and isinstance(v, dict) and isinstance(v.get("bytes"), int)
        and isinstance(v.get("sha256"), str) for k, v in files.items())
    if not ok:
        report.problems.append(f"{path}: malformed (expected 'files': {{path: {{bytes, sha256}}}})")
        return None
    return files


def _check_files(base: Path, files: dict[str, dict], listed_by: str,
                 report: VerifyReport) -> None:
    for rel, rec in sorted(files.items()):
        path = base / rel
        if not path.is_file():
            report.problems.append(f"{path}: missing (listed in {listed_by})")
            continue
        report.files += 1
        size = path.stat().st_size
        if size != rec["bytes"]:
            report.problems.append(f"{path}: {size} bytes, {listed_by} says {rec['bytes']}")
        elif sha256_file(path) != rec["sha256"]:
            report.problems.append(f"{path}: SHA-256 differs from {listed_by}")


def _check_index(out: Path, clips: dict[str, Path], report: VerifyReport) -> None:
    """index.parquet: readable, one row per clip of the manifest, each row agreeing with its
    clip's summary.json on index, seed and path; its coco.json digest matching."""
    import pyarrow.parquet as pq

    index = out / INDEX_FILE
    if not index.is_file():
        return  # reported as missing by the manifest check
    try:
        table = pq.read_table(index)
        rows = table.to_pylist()
        meta = table.schema.metadata or {}
    except Exception as e:  # any damage pyarrow reports
        report.problems.append(f"{index}: unreadable ({type(e).__name__}: {e})")
        return
    by_path = {}
    for k, row in enumerate(rows):
        if not isinstance(row.get("path"), str):
            report.problems.append(f"{index}: row {k} has no clip path")
            continue
        by_path[row["path"]] = row
    for rel in sorted(set(clips) - set(by_path)):
        report.problems.append(f"{out / rel}: complete clip not in {INDEX_FILE} ({_RERUN})")
    for rel in sorted(set(by_path) - set(clips)):
        report.problems.append(f"{out / rel}: listed in {INDEX_FILE}, not in {MANIFEST_FILE}")
    for rel in sorted(set(by_path) & set(clips)):
        summary = clips[rel] / SUMMARY_FILE
        data = _read_json(summary, report) if summary.is_file() else None
        if not isinstance(data, dict):
            continue
        for key in ("index", "seed", "path"):
            if data.get(key) != by_path[rel].get(key):
                report.problems.append(f"{index}: {key} {by_path[rel].get(key)!r} for {rel}, "
                                       f"{summary} says {data.get(key)!r}")
    want = meta.get(b"coco_sha256", b"").decode(errors="replace")
    coco = out / COCO_FILE
    if coco.is_file() and want != sha256_file(coco):
        report.problems.append(f"{coco}: does not match {INDEX_FILE} ({_RERUN})")


def _check_clip(clip: Path, report: VerifyReport) -> set[Path]:
    """The clip's files against its metadata.json; returns every path the clip accounts for."""
    meta_path = clip / "metadata.json"
    known = {meta_path, clip / SUMMARY_FILE}
    if not meta_path.is_file():
        report.problems.append(f"{meta_path}: missing")
        return known
    data = _read_json(meta_path, report)
    files = _file_table(data, meta_path, report) if data is not None else None
    if files is None:  # reported once; the clip's files cannot be checked, nor listed as stray
        return known | set(clip.rglob("*"))
    _check_files(clip, files, f"{clip.name}/metadata.json", report)
    return known | {clip / rel for rel in files}


def _unaccounted(out: Path, known: set[Path], report: VerifyReport) -> None:
    """Reports every file outside the chain, and every folder holding nothing of it (once,
    without its contents)."""
    held = {p for k in known for p in k.parents if p.is_relative_to(out)}
    for top, dirs, names in os.walk(out):
        here = Path(top)
        for d in sorted(dirs):
            if here / d not in held:
                what = "folder not part of the data set (in no manifest)"
                if here.name == CLIPS and d.startswith(".") and ".partial" in d:
                    what = "partial clip of an interrupted run (the next run removes it)"
                elif here.name == CLIPS and d.isdigit():
                    what = ("clip folder not in manifest.json (copied in by hand, or left by "
                            "a run that did not finish)")
                report.problems.append(f"{here / d}/: {what}")
        dirs[:] = sorted(d for d in dirs if here / d in held)
        for name in sorted(names):
            if here / name not in known:
                report.problems.append(f"{here / name}: not part of the data set (in no "
                                       "manifest)")


def verify_dataset(out: str | Path, progress: bool = False) -> VerifyReport:
    """Checks every file of the data set ``out`` against the digest chain (module docstring);
    returns every problem found. Raises :class:`DatasetError` only when ``out`` is not a data
    set at all."""
    from tqdm.auto import tqdm

    out = Path(out)
    if not (out / SPEC_FILE).is_file():
        raise DatasetError(f"{out}: not a rendiff data set (no {SPEC_FILE})")
    report = VerifyReport()
    manifest_path = out / MANIFEST_FILE
    known: set[Path] = {manifest_path, out / LOCK_FILE}
    files: dict[str, dict] = {}
    if not manifest_path.is_file():
        report.problems.append(f"{manifest_path}: missing (the run did not finish, or an older "
                               f"rendiff made the data set; {_RERUN})")
    else:
        data = _read_json(manifest_path, report)
        table = _file_table(data, manifest_path, report) if data is not None else None
        if table is not None:
            if data.get("sha256") != manifest_digest(data):
                report.problems.append(f"{manifest_path}: its own SHA-256 does not match its "
                                       "content (edited or damaged)")
            files = table
            report.files += 1
    known |= {out / rel for rel in files}

    clips: dict[str, Path] = {}
    loose = {}
    for rel, rec in files.items():
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == CLIPS and parts[2] in ("metadata.json",
                                                                   SUMMARY_FILE):
            clips[f"{CLIPS}/{parts[1]}"] = out / CLIPS / parts[1]
        else:
            loose[rel] = rec
    _check_files(out, loose, MANIFEST_FILE, report)
    _check_index(out, clips, report)
    for rel, clip in tqdm(sorted(clips.items()), desc="verify", unit="clip",
                          disable=not progress):
        report.clips += 1
        if not clip.is_dir():
            report.problems.append(f"{clip}: clip missing (listed in {MANIFEST_FILE})")
            continue
        own = {k: v for k, v in files.items() if k.startswith(rel + "/")}
        _check_files(out, own, MANIFEST_FILE, report)
        known |= _check_clip(clip, report)
    _unaccounted(out, known, report)
    return report

