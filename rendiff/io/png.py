"""PNG files written fast: every row "Up"-filtered (its difference from the row above) and
deflated by ISA-L (:mod:`rendiff.io.npz` says why ISA-L).

On a run's contact sheet this is ~20x faster than Pillow's encoder at its default level (which
tries zlib level 6 over adaptively filtered rows) for a file about a third larger: 17 MP of
512x512 maps took Pillow 0.26 s. Any PNG reader opens the result (8-bit RGB or grey, no
interlacing, no ancillary chunks, so the bytes depend on the pixels alone).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

__all__ = ["png_bytes"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type "Up"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png_bytes(image: np.ndarray, level: int = 2) -> bytes:
    """A uint8 image [H, W, 3] (RGB) or [H, W] (grey) as PNG bytes, deflated by ISA-L at
    ``level`` (0-3)."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"png_bytes: need uint8 [H, W, 3] or [H, W], got {a.dtype} "
                         f"{tuple(a.shape)}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"png_bytes: empty image {tuple(a.shape)}")
    rows = a.reshape(h, -1)
    raw = np.empty((h, rows.shape[1] + 1), dtype=np.uint8)
    raw[:, 0] = _UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # modulo 256, as the filter is defined
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if a.ndim == 3 else 0, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", isal_zlib.compress(raw, level)) + _chunk(b"IEND", b""))
