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

import mmap
import os
import zipfile
from collections import OrderedDict
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


def _member_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Memory-map every stored member of an uncompressed ``.npz``; deflated members are loaded.

    The file is mapped once and every member is a read-only view of that one map: a map holds a file
    descriptor while it lives (one per ``np.memmap``), and with one map per member the open clips of
    a few data modules (the stage-1 benchmark keeps every trained run's) exhausted the process's
    descriptors ("Too many open files").
    """
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        mapped: mmap.mmap | None = None
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            handle.seek(info.header_offset)
            local = handle.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            data_start = info.header_offset + 30 + name_len + extra_len
            handle.seek(data_start)
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
            if dtype.hasobject:
                raise ValueError(f"{path}: member {name} holds Python objects")
            count = int(np.prod(shape)) if shape else 1
            if count == 0 or not shape:
                handle.seek(offset)
                data = np.frombuffer(handle.read(count * dtype.itemsize), dtype=dtype).reshape(shape)
                arrays[name] = data
                continue
            if mapped is None:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            arrays[name] = np.ndarray(shape, dtype=dtype, buffer=mapped, offset=offset, order="F" if fortran else "C")
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
