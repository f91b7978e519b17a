"""``rendiff dataset --verify OUT``: check every clip of a data set against its index and its own
file list (size and SHA-256 of every file, written into the clip's ``metadata.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .runner import (
    COCO_FILE,
    INDEX_FILE,
    SPEC_FILE,
    DatasetError,
    _sha256,
    complete_clips,
    incomplete_clips,
)
from .writers import verify_clip

__all__ = ["VerifyReport", "verify_dataset"]


@dataclass
class VerifyReport:
    """Problems found, one line each (``path: what is wrong``); ``ok`` when there are none."""

    clips: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(out: str | Path, progress: bool = False) -> VerifyReport:
    """Checks ``out``: the index lists exactly the complete clips; each listed clip has its
    metadata, every file it lists with the right size and SHA-256, no unlisted files, and the
    seed the index says."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    out = Path(out)
    if not (out / SPEC_FILE).is_file():
        raise DatasetError(f"{out}: not a rendiff data set (no {SPEC_FILE})")
    report = VerifyReport()
    index_path = out / INDEX_FILE
    if not index_path.is_file():
        report.problems.append(f"{index_path}: missing (the run never finished; re-run it)")
        return report
    table = pq.read_table(index_path).to_pylist()
    listed = {int(r["index"]): r for r in table if r.get("index") is not None}
    on_disk = complete_clips(out)
    for p in incomplete_clips(out):
        report.problems.append(f"{p}: incomplete clip (no summary.json); the next run of the "
                               "same command redoes it")
    meta = pq.read_schema(index_path).metadata or {}
    want = meta.get(b"coco_sha256", b"").decode()
    coco = out / COCO_FILE
    if coco.is_file() and want and _sha256(coco) != want:
        report.problems.append(f"{coco}: does not match {INDEX_FILE} (written by another "
                               "run, or damaged); re-run the same command to rebuild it")
    for i in sorted(set(on_disk) - set(listed)):
        report.problems.append(f"{on_disk[i]}: complete clip not in {INDEX_FILE} "
                               "(re-run the same command to rebuild the index)")
    for _i, row in tqdm(sorted(listed.items()), desc="verify", unit="clip",
                        disable=not progress):
        clip = out / str(row.get("path", ""))
        report.clips += 1
        if not clip.is_dir():
            report.problems.append(f"{clip}: listed in {INDEX_FILE} but missing")
            continue
        problems = verify_clip(clip)
        report.problems.extend(problems)
        if problems:
            continue
        meta = json.loads((clip / "metadata.json").read_text())
        report.files += len(meta["files"]) + 1
        if int(meta["seed"]) != int(row["seed"]) or int(meta["index"]) != int(row["index"]):
            report.problems.append(f"{clip}: index/seed {meta['index']}/{meta['seed']} in "
                                   f"metadata.json, {row['index']}/{row['seed']} in "
                                   f"{INDEX_FILE}")
    if not (out / COCO_FILE).is_file():
        report.problems.append(f"{out / COCO_FILE}: missing")
    return report
