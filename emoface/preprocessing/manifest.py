"""``CACHE/manifest.csv``: one row per clip (and per unusable folder/file) with its status.

The manifest is rebuilt at the end of every run from the per-clip records (``<clip>.json`` next
to each ``<clip>.npz``, and ``problems/*.json``), sorted, so it is identical whether a run was
interrupted or not.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

MANIFEST = "manifest.csv"
CONFIG = "cache.json"
CLIPS_DIR = "clips"
PROBLEMS_DIR = "problems"

COLUMNS = (
    "actor",
    "emotion",
    "level",
    "clip",
    "status",
    "reason",
    "frames",
    "duration",
    "video_frames",
    "audio_frames",
    "trimmed_frames",
    "missing_faces",
    "backend",
    "file",
    "source",
    "version",
)
"""Manifest columns. ``frames``: frames kept (video and audio reconciled to the shorter);
``video_frames`` / ``audio_frames``: what each stream held (audio in 25 fps frames);
``trimmed_frames``: frames dropped to reconcile; ``missing_faces``: frames interpolated;
``file``: the cache file relative to the cache root; ``source``: the raw video relative to the
raw root; ``version``: emoface version that wrote the row."""


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary name next to ``path``, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_record(path: str | os.PathLike, row: Mapping[str, object]) -> None:
    """Atomically write one clip/problem record (a manifest row) as JSON."""
    write_text_atomic(path, json.dumps({key: row.get(key, "") for key in COLUMNS}, sort_keys=True) + "\n")


def read_record(path: str | os.PathLike) -> dict[str, object]:
    return json.loads(Path(path).read_text())


def collect_records(cache_dir: str | os.PathLike) -> list[dict[str, object]]:
    """Every clip and problem record of a cache, sorted by (status of problems last, clip id)."""
    root = Path(cache_dir)
    rows = [read_record(path) for path in sorted((root / CLIPS_DIR).rglob("*.json"))]
    rows += [read_record(path) for path in sorted((root / PROBLEMS_DIR).glob("*.json"))]
    rows.sort(key=lambda row: (str(row["clip"]), str(row["status"])))
    return rows


def write_manifest(cache_dir: str | os.PathLike, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write ``CACHE/manifest.csv`` atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key, "") for key in COLUMNS})
    path = Path(cache_dir) / MANIFEST
    write_text_atomic(path, buffer.getvalue())
    return path


def read_manifest(cache_dir: str | os.PathLike, status: str | None = None) -> list[dict[str, str]]:
    """Rows of ``CACHE/manifest.csv`` (optionally only those with ``status``).

    Raises:
        FileNotFoundError: when the cache has no manifest.
    """
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: run `emoface preprocess --root RAW --out {cache_dir}`")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row for row in rows if status is None or row["status"] == status]


def read_config(cache_dir: str | os.PathLike) -> dict[str, object]:
    """``CACHE/cache.json`` (settings the cache was made with), ``{}`` when absent."""
    path = Path(cache_dir) / CONFIG
    return json.loads(path.read_text()) if path.is_file() else {}
