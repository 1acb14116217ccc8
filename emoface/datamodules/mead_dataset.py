"""Window datasets over the feature cache (see docs/data_format.md for the batch keys)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from emoface.emotions import emotion_index
from emoface.geometry.relocation import relocate
from emoface.preprocessing.store import WAVEFORM_SCALE, ClipFileCache

FIELDS: tuple[str, ...] = (
    "audio",
    "waveform",
    "landmarks",
    "normalized_landmarks",
    "pose",
    "gaze",
    "frames",
    "reference",
    "reference_frame",
    "source_frame",
)
"""Field names a stage may ask for (each adds the keys of docs/data_format.md's batch table)."""


@dataclass(frozen=True)
class ClipEntry:
    """A usable clip of the cache."""

    clip_id: str
    actor: str
    emotion: str
    level: int
    path: str
    num_frames: int


def check_fields(fields: Sequence[str]) -> tuple[str, ...]:
    """Validate field names; raises ``ValueError`` naming the unknown ones."""
    unknown = [field for field in fields if field not in FIELDS]
    if unknown:
        raise ValueError(f"unknown fields {unknown}; choose from {', '.join(FIELDS)}")
    return tuple(dict.fromkeys(fields))


class ReferencePicker:
    """Chooses the reference clip of an actor: another clip of the same actor, neutral when there is one."""

    def __init__(self, pool: Sequence[ClipEntry]) -> None:
        self.by_actor: dict[str, list[ClipEntry]] = {}
        for entry in sorted(pool, key=lambda e: e.clip_id):
            self.by_actor.setdefault(entry.actor, []).append(entry)

    def candidates(self, entry: ClipEntry) -> list[ClipEntry]:
        """Neutral clips of the actor other than ``entry``; else any other clip; else ``entry`` itself."""
        others = [e for e in self.by_actor.get(entry.actor, []) if e.clip_id != entry.clip_id]
        neutral = [e for e in others if e.emotion == "neutral"]
        return neutral or others or [entry]


class MEADWindows(Dataset):
    """Windows of ``window`` frames over cached clips.

    An index is either an int (a fixed window of :attr:`items`) or a tuple ``(item, offset)`` from
    :class:`RandomWindowSampler` (the window start moved by ``offset`` frames, clipped to the clip).
    In ``random_reference`` mode the reference clip and frame are drawn from the offset too;
    otherwise they are the first candidate clip's middle frame (deterministic evaluation).
    The ``source_frame`` field (the renderer's self-reconstruction pairs) is a frame of the
    window's own clip: drawn at random in ``random_reference`` mode, else the clip's first frame.

    Args:
        entries: clips to draw from.
        window: frames per item; ``None`` means whole clips (prediction, one clip per item).
        stride: distance between consecutive window starts.
        fields: see :data:`FIELDS`.
        reference_pool: clips references may come from (all usable clips of the cache).
        random_reference: draw reference clip/frame at random (training).
    """

    def __init__(
        self,
        entries: Sequence[ClipEntry],
        window: int | None,
        stride: int,
        fields: Sequence[str],
        reference_pool: Sequence[ClipEntry],
        random_reference: bool = False,
    ) -> None:
        self.entries = list(entries)
        self.window = window
        self.stride = max(1, int(stride))
        self.fields = check_fields(fields)
        self.references = ReferencePicker(reference_pool)
        self.random_reference = random_reference
        self.items: list[tuple[int, int]] = []  # (entry index, start)
        self.skipped = 0
        for k, entry in enumerate(self.entries):
            if window is None:
                self.items.append((k, 0))
                continue
            if entry.num_frames < window:
                self.skipped += 1
                continue
            self.items.extend((k, start) for start in range(0, entry.num_frames - window + 1, self.stride))
        self._files = ClipFileCache()

    def __len__(self) -> int:
        return len(self.items)

    def _reference(self, entry: ClipEntry, draw: int | None) -> tuple[ClipEntry, int]:
        candidates = self.references.candidates(entry)
        if draw is None:
            ref = candidates[0]
            return ref, ref.num_frames // 2
        rng = np.random.default_rng(draw)
        ref = candidates[int(rng.integers(len(candidates)))]
        return ref, int(rng.integers(ref.num_frames))

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, object]:
        draw = None
        if isinstance(index, (tuple, list)):
            index, draw = int(index[0]), int(index[1])
        k, start = self.items[index]
        entry = self.entries[k]
        length = entry.num_frames if self.window is None else self.window
        if draw is not None and self.window is not None:
            start = min(start + draw % self.stride, entry.num_frames - self.window)
        stop = start + length
        clip = self._files.get(entry.path)
        item: dict[str, object] = {
            "emotion": emotion_index(entry.emotion),
            "level": entry.level,
            "clip": entry.clip_id,
            "start": start,
        }
        fields = self.fields
        if "audio" in fields:
            rows = int(clip["audio_rows_per_frame"])
            item["audio"] = torch.from_numpy(np.array(clip["audio"][rows * start : rows * stop], dtype=np.float32))
        if "waveform" in fields:
            per_frame = int(clip["sample_rate"]) // int(clip["fps"])
            wave = np.asarray(clip["waveform"][per_frame * start : per_frame * stop], dtype=np.float32)
            item["waveform"] = torch.from_numpy(wave / WAVEFORM_SCALE)
        for name in ("landmarks", "normalized_landmarks"):
            if name in fields:
                item[name] = torch.from_numpy(np.array(clip[name][start:stop], dtype=np.float32))
        if "pose" in fields:
            for name in ("rotation", "euler", "translation", "scale"):
                item[name] = torch.from_numpy(np.array(clip[name][start:stop], dtype=np.float32))
        if "gaze" in fields:
            item["gaze"] = torch.from_numpy(np.array(clip["gaze"][start:stop], dtype=np.float32))
            item["gaze_confidence"] = torch.from_numpy(np.array(clip["gaze_confidence"][start:stop], dtype=np.float32))
        if "frames" in fields:
            item["frames"] = torch.from_numpy(clip.frames(start, stop)).permute(0, 3, 1, 2).contiguous()
        if "reference" in fields or "reference_frame" in fields:
            seed = None if not self.random_reference or draw is None else draw
            ref_entry, ref_t = self._reference(entry, seed)
            ref = self._files.get(ref_entry.path)
            if "reference" in fields:
                item["ref_landmarks"] = torch.from_numpy(np.array(ref["landmarks"][ref_t], dtype=np.float32))
                item["ref_normalized_landmarks"] = torch.from_numpy(
                    np.array(ref["normalized_landmarks"][ref_t], dtype=np.float32)
                )
            if "reference_frame" in fields:
                item["ref_frame"] = torch.from_numpy(ref.frames(ref_t, ref_t + 1)[0]).permute(2, 0, 1).contiguous()
        if "source_frame" in fields:
            source_t = 0
            if self.random_reference and draw is not None:
                # Its own generator (not the reference's): the source is independent of the reference.
                source_t = int(np.random.default_rng((draw, 1)).integers(entry.num_frames))
            item["source_frame"] = torch.from_numpy(clip.frames(source_t, source_t + 1)[0]).permute(2, 0, 1).contiguous()
            item["source_index"] = source_t
            item["source_euler"] = torch.from_numpy(np.array(clip["euler"][source_t], dtype=np.float32))
            if "landmarks" in fields:
                item["source_landmarks"] = torch.from_numpy(np.array(clip["landmarks"][source_t], dtype=np.float32))
            # The source's landmarks in the relocated form stage 1 produces (68 posed points and
            # the two pupils from its gaze), the reference the landmarks-to-keypoints stage maps from.
            cues = {name: torch.from_numpy(np.array(clip[name][source_t], dtype=np.float32))
                    for name in ("normalized_landmarks", "gaze", "rotation", "translation", "scale")}  # fmt: skip
            item["source_relocated"] = relocate(
                cues["normalized_landmarks"], cues["gaze"], cues["rotation"], cues["translation"], cues["scale"]
            ).points
        return item


class RandomWindowSampler(Sampler):
    """Random training windows, deterministic for a seed and an epoch, independent of the worker count.

    Yields ``(item, draw)`` pairs: the items of :class:`MEADWindows` in a random order, each with a
    random integer ``draw`` that moves the window start by ``draw % stride`` frames and picks the
    reference. Lightning calls :meth:`set_epoch` every epoch; under DDP it wraps this sampler in
    a ``DistributedSamplerWrapper`` that splits the same sequence across ranks.
    """

    def __init__(self, num_items: int, seed: int = 0) -> None:
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1  # a new draw even if nobody calls set_epoch (e.g. a plain loop)
        order = torch.randperm(self.num_items, generator=generator).tolist()
        draws = torch.randint(0, 2**31 - 1, (self.num_items,), generator=generator).tolist()
        return iter(list(zip(order, draws)))


def entries_from_rows(cache_dir: str | Path, rows: Sequence[dict[str, str]]) -> list[ClipEntry]:
    """Manifest rows with status ``ok`` -> :class:`ClipEntry` list (sorted by clip id)."""
    root = Path(cache_dir)
    entries = [
        ClipEntry(
            clip_id=row["clip"],
            actor=row["actor"],
            emotion=row["emotion"],
            level=int(row["level"]),
            path=str(root / row["file"]),
            num_frames=int(row["frames"]),
        )
        for row in rows
        if row["status"] == "ok"
    ]
    return sorted(entries, key=lambda e: e.clip_id)
