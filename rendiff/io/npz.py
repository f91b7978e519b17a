"""``.npz`` files written fast and reproducibly.

An ``.npz`` is a zip of ``.npy`` files; ``np.load`` reads entries stored or deflated. rendiff
deflates them with ISA-L (Intel's Intelligent Storage Acceleration Library, through the
``isal`` package): the same deflate format, 5-8x faster than zlib's fastest level on rendiff's
float layers for files about a tenth larger (a 16-frame 1280x720 ``layers.npz``, 1.18 GB of
arrays: ISA-L level 2 0.9 s and 143 MB, zlib level 1 4.5-7 s and 130 MB, numpy's
``np.savez_compressed`` at zlib level 6 19 s and 106 MB; benchmarks/bench_save.py). Compressing
the layers was most of a save's time with zlib.

The zip container is written here (local headers, data descriptors, a zip64 central directory:
PKWARE's APPNOTE 6.3) rather than through :mod:`zipfile`, which can only deflate with zlib.
Entries carry a fixed date (1980-01-01), so the bytes depend on the arrays alone (with one ISA-L
build; as with zlib, another build may pick other matches); each array is streamed through the
compressor, never copied whole.
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO

import numpy as np
from isal import isal_zlib

__all__ = ["LEVEL", "write_npz"]

#: ISA-L level (0-3). 2 is as fast as 0 and 1 on float layers and compresses best of the three;
#: 3 is 2.5x slower for no gain there.
LEVEL = 2

_CHUNK = 1 << 24  # bytes handed to the compressor at a time
_DOS_DATE = (1 << 5) | 1  # 1980-01-01 (time 00:00:00 is 0)
_VERSION = 45  # zip64
_FLAGS = 0x08  # sizes and CRC in a data descriptor after the data


class _Counting:
    """A binary file's writes, counted (the zip's offsets; the file need not be seekable)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.pos = f, 0

    def write(self, data: bytes | memoryview) -> None:
        self.f.write(data)
        self.pos += len(data)


def _npy_header(a: np.ndarray) -> bytes:
    """The .npy header ``np.save`` writes for ``a`` (format 1.0; 2.0 past 64 KiB of header)."""
    d = np.lib.format.header_data_from_array_1_0(a)
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def _entry(out: _Counting, name: bytes, a: np.ndarray, level: int) -> tuple[int, int, int]:
    """One deflated entry: returns its (CRC-32, compressed size, size)."""
    out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, _FLAGS, 8, 0, _DOS_DATE, 0,
                          0xFFFFFFFF, 0xFFFFFFFF, len(name), 20) + name
              + struct.pack("<HHQQ", 1, 16, 0, 0))
    comp = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    crc = size = csize = 0
    data = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
    for part in (memoryview(_npy_header(a)),
                 *(memoryview(data[i:i + _CHUNK]) for i in range(0, data.size, _CHUNK))):
        crc = isal_zlib.crc32(part, crc)
        size += part.nbytes
        packed = comp.compress(part)
        csize += len(packed)
        out.write(packed)
    packed = comp.flush()
    csize += len(packed)
    out.write(packed)
    out.write(struct.pack("<IIQQ", 0x08074B50, crc, csize, size))
    return crc, csize, size


def write_npz(file: str | os.PathLike | BinaryIO, arrays: dict[str, np.ndarray],
              level: int = LEVEL) -> None:
    """Writes ``arrays`` (sorted by name) as an ``np.load``-readable ``.npz`` into ``file`` (a
    path or a binary file object), each deflated by ISA-L at ``level``."""
    if not 0 <= level <= 3:
        raise ValueError(f"write_npz: ISA-L level must be 0-3, got {level}")
    items = []
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
            a = a.copy(order="C")
        if a.dtype.hasobject:
            raise ValueError(f"write_npz: array {name!r} holds Python objects ({a.dtype})")
        items.append((f"{name}.npy".encode(), a))
    own = isinstance(file, (str, os.PathLike))
    f = open(file, "wb") if own else file  # noqa: SIM115
    try:
        out = _Counting(f)
        central = []
        for name, a in items:
            offset = out.pos
            crc, csize, size = _entry(out, name, a, level)
            central.append(
                struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | _VERSION, _VERSION,
                            _FLAGS, 8, 0, _DOS_DATE, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 28,
                            0, 0, 0, 0o644 << 16, 0xFFFFFFFF)
                + name + struct.pack("<HHQQQ", 1, 24, size, csize, offset))
        start = out.pos
        for record in central:
            out.write(record)
        end = out.pos
        n = len(central)
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | _VERSION, _VERSION, 0, 0,
                              n, n, end - start, start))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                              0xFFFFFFFF, 0xFFFFFFFF, 0))
    finally:
        if own:
            f.close()
