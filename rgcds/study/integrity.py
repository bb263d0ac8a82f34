"""Is a stored DICOM file whole? A cheap check of the pixel data's extent, without decoding.

pydicom reads a file that ends early without complaint: a header cut short gives a dataset
with fewer elements, pixel data cut short is found only when it is decoded. A file on disk
can be cut short (a disk that filled, a copy interrupted, a damaged block), and a series
with a missing slice must not be analysed as if it were whole. :func:`truncation` reads the
Pixel Data element's header where the header parse stopped and checks that the file holds
all of its bytes (native) or every fragment up to the sequence delimiter (encapsulated).
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

from pydicom.uid import UID

#: Pixel Data, Float Pixel Data, Double Float Pixel Data (little endian tag bytes).
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_UNDEFINED = 0xFFFFFFFF
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_END = (0xFFFE, 0xE0DD)
#: Fragments read before giving up on an encapsulated element (a bound on the work).
_MAX_FRAGMENTS = 100_000


def _is_image_class(ds: Any) -> bool:
    uid = ds.get("SOPClassUID") or getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", "")
    try:
        return str(UID(str(uid)).name).endswith("Image Storage")
    except Exception:  # an unknown or malformed UID: no claim about what it should hold
        return False


def truncation(fh: BinaryIO, ds: Any) -> str | None:
    """Why the file is cut short, else ``None``.

    Parameters
    ----------
    fh
        The file, positioned where ``pydicom.dcmread(fh, stop_before_pixels=True)`` left it
        (at the pixel data element, or at the end of the file).
    ds
        That dataset.

    Returns
    -------
    str or None
        A sentence without PHI ("it ends 5000 bytes into its 8192 bytes of pixel data"),
        or ``None`` when the file holds its whole pixel data (or has none to hold).
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax = UID(str(syntax)) if syntax else UID("1.2.840.10008.1.2")
    if syntax.is_deflated or not syntax.is_little_endian:
        return None  # positions in a deflated stream (or big endian): not checked here
    start = fh.tell()
    size = os.fstat(fh.fileno()).st_size if hasattr(fh, "fileno") else _size(fh)
    head = fh.read(12)
    if len(head) < 8:
        if _is_image_class(ds):
            return f"it ends after {start} bytes, before its pixel data"
        return None
    group, element = struct.unpack("<HH", head[:4])
    if (group, element) not in _PIXEL_TAGS:
        return None  # not at pixel data: a dataset stopped elsewhere, nothing to check
    if not syntax.is_implicit_VR and head[4:6].isalpha():
        if len(head) < 12:
            return f"it ends after {size} bytes, inside the pixel data header"
        length = struct.unpack("<I", head[8:12])[0]
        offset = start + 12
    else:
        length = struct.unpack("<I", head[4:8])[0]
        offset = start + 8
    if length != _UNDEFINED:
        if offset + length > size:
            return f"it ends {size - offset} bytes into its {length} bytes of pixel data"
        return None
    return _fragments_truncated(fh, offset, size)


def _size(fh: BinaryIO) -> int:
    here = fh.tell()
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    fh.seek(here)
    return end


def _fragments_truncated(fh: BinaryIO, offset: int, size: int) -> str | None:
    """Walk the encapsulated fragments up to the sequence delimiter."""
    fh.seek(offset)
    for n in range(_MAX_FRAGMENTS):
        item = fh.read(8)
        if len(item) < 8:
            return f"its compressed pixel data ends after {n} fragments, without the end marker"
        group, element, length = struct.unpack("<HHI", item)
        if (group, element) == _SEQUENCE_END:
            return None
        if (group, element) != _ITEM or length == _UNDEFINED:
            return None  # not a fragment: malformed, which decoding reports in its words
        if fh.tell() + length > size:
            return f"its compressed pixel data ends inside fragment {n + 1}"
        fh.seek(length, os.SEEK_CUR)
    return None


__all__ = ["truncation"]
