"""Deterministic, atomic ``.npz`` files (ground-truth sidecars, feature caches)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, arrays: Mapping[str, object], compress: bool = True) -> Path:
    """Write ``arrays`` as an ``.npz`` that ``numpy.load`` reads, byte-identical for equal inputs.

    ``numpy.savez`` stamps the current time into the zip entries, so two identical saves differ;
    here every entry gets a fixed timestamp. The file is written under a temporary name and
    renamed, so a killed process never leaves a partial file at ``path``.

    Args:
        path: destination (``.npz`` is not appended).
        arrays: name -> array-like (strings become numpy unicode scalars; no pickling).
        compress: deflate the entries.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(partial, mode="w", compression=method) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
                info.compress_type = method
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
