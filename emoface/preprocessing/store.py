"""The per-clip cache file: one uncompressed ``.npz`` per clip, read by memory mapping.

Why this format (see docs/data_format.md, "Feature cache"):

* **One file per clip**, written atomically (:func:`emoface.io.arrays.save_npz`: temporary name,
  then rename), byte-identical for identical inputs, so a killed run leaves no partial file and
  an interrupted-then-resumed run ends with the same cache as an uninterrupted one.
* **Stored (not deflated) members**: every array sits at a fixed offset of the file, so
  :class:`ClipFile` memory-maps it and a window of ``T`` frames reads only those rows.
* **Frames as JPEG bytes** (quality 95, one blob plus offsets): a 256x256 crop is ~10-25 kB
  instead of 196 kB raw (MEAD's ~3.6 M front frames: ~60 GB instead of ~700 GB), and a window
  decodes only its own frames (~1 ms per frame with OpenCV), unlike a compressed video that
  must be decoded from the previous key frame.
"""

from __future__ import annotations

import functools
import mmap
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY = 95
WAVEFORM_SCALE = 32767.0
"""The waveform is stored as int16; ``float = int16 / WAVEFORM_SCALE``."""


def encode_frames(frames: np.ndarray, quality: int = JPEG_QUALITY) -> tuple[np.ndarray, np.ndarray]:
    """JPEG-encode RGB frames into one byte blob.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB.
        quality: JPEG quality (deterministic for a given OpenCV build).

    Returns:
        ``blob`` uint8 ``(N,)`` and ``offsets`` int64 ``(T + 1,)``; frame ``t`` is
        ``blob[offsets[t]:offsets[t + 1]]``.
    """
    pieces = []
    for frame in frames:
        ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        pieces.append(buffer.reshape(-1))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pieces])
    blob = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
    return blob.astype(np.uint8, copy=False), offsets


def decode_frames(blob: np.ndarray, offsets: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Decode frames ``start .. stop - 1`` of a JPEG blob into uint8 ``(stop - start, H, W, 3)`` RGB."""
    out = []
    for t in range(start, stop):
        image = cv2.imdecode(np.asarray(blob[offsets[t] : offsets[t + 1]]), cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f"corrupt JPEG frame {t} in the cache")
        out.append(image[..., ::-1])
    return np.stack(out)


@dataclass(frozen=True)
class _StoredMember:
    """Where an uncompressed ``.npz`` member's array lies in its file."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # of the array's first byte


# A layout is ~1.3 KB (a mini-MEAD clip's 22 members, pickled): 4096 of them are a few MB per process.
# With more clips than that (full MEAD has ~30k), the least recent are parsed again on reopening.
@functools.lru_cache(maxsize=4096)
def _member_layout(
    path: str, inode: int, mtime_ns: int, size: int
) -> tuple[tuple[_StoredMember, ...], tuple[str, ...]]:
    """The stored members of an ``.npz`` (parsed zip and ``.npy`` headers) and its deflated members' names.

    Memoized per file version (``inode``, ``mtime_ns`` and ``size`` are part of the key, so a
    rewritten file, which :func:`emoface.io.arrays.save_npz` renames into place, is parsed again):
    a training epoch reopens each clip many times (the open-file LRU holds a few hundred), and
    parsing its ~20 headers (``ast.literal_eval`` each) cost about as much as decoding the window's
    JPEG frames.
    """
    stored: list[_StoredMember] = []
    deflated: list[str] = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                deflated.append(info.filename)
                continue
            handle.seek(info.header_offset)
            local = handle.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            handle.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            if dtype.hasobject:
                raise ValueError(f"{path}: member {name} holds Python objects")
            stored.append(_StoredMember(name, tuple(shape), dtype, bool(fortran), handle.tell()))
    return tuple(stored), tuple(deflated)


def _member_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Memory-map every stored member of an uncompressed ``.npz``; deflated members are loaded.

    The file is mapped once and every member is a read-only view of that one map: a map holds a file
    descriptor while it lives (one per ``np.memmap``), and with one map per member the open clips of
    a few data modules (the stage-1 benchmark keeps every trained run's) exhausted the process's
    descriptors ("Too many open files").
    """
    arrays: dict[str, np.ndarray] = {}
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())  # the version opened, mapped below
        stored, deflated = _member_layout(os.fspath(path), status.st_ino, status.st_mtime_ns, status.st_size)
        mapped: mmap.mmap | None = None
        for member in stored:
            count = int(np.prod(member.shape)) if member.shape else 1
            if count == 0 or not member.shape:
                handle.seek(member.offset)
                data = handle.read(count * member.dtype.itemsize)
                arrays[member.name] = np.frombuffer(data, dtype=member.dtype).reshape(member.shape)
                continue
            if mapped is None:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            arrays[member.name] = np.ndarray(member.shape, dtype=member.dtype, buffer=mapped, offset=member.offset,
                                             order="F" if member.fortran else "C")  # fmt: skip
    if deflated:
        with zipfile.ZipFile(path) as archive:
            for filename in deflated:
                with archive.open(filename) as data:
                    arrays[filename.removesuffix(".npy")] = np.lib.format.read_array(data, allow_pickle=False)
    return arrays


class ClipFile:
    """Random access to one cached clip (memory-mapped arrays).

    Attributes:
        arrays: member name -> array (memory-mapped where the member is stored uncompressed).
        num_frames: ``T``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.arrays = _member_arrays(self.path)
        self.num_frames = int(self.arrays["landmarks"].shape[0])

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def frames(self, start: int, stop: int) -> np.ndarray:
        """uint8 ``(stop - start, H, W, 3)`` RGB crops."""
        return decode_frames(self.arrays["frames_jpeg"], self.arrays["frames_offsets"], start, stop)


class ClipFileCache:
    """A small per-process LRU of open :class:`ClipFile` objects (each worker keeps its own)."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._open: OrderedDict[str, ClipFile] = OrderedDict()

    def get(self, path: str | os.PathLike) -> ClipFile:
        key = str(path)
        clip = self._open.get(key)
        if clip is None:
            clip = ClipFile(key)
            self._open[key] = clip
            if len(self._open) > self.capacity:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(key)
        return clip

    def __getstate__(self) -> dict:  # memmaps are not sent to worker processes
        return {"capacity": self.capacity, "_open": OrderedDict()}
