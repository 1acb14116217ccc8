"""Finding the clips of a MEAD tree (real MEAD or mini-MEAD) and what does not fit the layout.

MEAD: ``<actor>/video/front/<emotion>/level_<k>/<nnn>.mp4`` with the audio at
``<actor>/audio/<emotion>/level_<k>/<nnn>.m4a`` (mini-MEAD adds a ground-truth sidecar at
``<actor>/groundtruth/<emotion>/level_<k>/<nnn>.npz``). Anything else found under the root
(an empty folder, an unknown emotion, a stray file) becomes a :class:`Problem` that the
manifest records, never an exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emoface.emotions import EMOTIONS, levels_of

_LEVEL = re.compile(r"^level_(\d+)$")
VIDEO_SUFFIXES = (".mp4",)
IGNORED_ROOT_FILES = ("mini_mead.json",)


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the raw tree.

    Attributes:
        actor, emotion, level, name: its labels; ``name`` is the file stem (``"001"``).
        video, audio, groundtruth: absolute paths (the audio/groundtruth files may not exist).
    """

    actor: str
    emotion: str
    level: int
    name: str
    video: str
    audio: str
    groundtruth: str

    @property
    def clip_id(self) -> str:
        """``"<actor>/<emotion>/level_<k>/<nnn>"``, the id used by the manifest and the batches."""
        return f"{self.actor}/{self.emotion}/level_{self.level}/{self.name}"


@dataclass(frozen=True)
class Problem:
    """Something under the raw root that is not a usable clip.

    Attributes:
        path: relative to the root (posix).
        reason: why it was not used.
        actor, emotion, level: what could be parsed from the path (empty / 0 when unknown).
    """

    path: str
    reason: str
    actor: str = ""
    emotion: str = ""
    level: int = 0


def _is_empty_tree(folder: Path) -> bool:
    return not any(path.is_file() for path in folder.rglob("*"))


def scan_mead(
    root: str | os.PathLike,
    view: str = "front",
    actors: Iterable[str] | None = None,
    emotions: Iterable[str] | None = None,
    levels: Iterable[int] | None = None,
) -> tuple[list[ClipSpec], list[Problem]]:
    """List the clips of a MEAD tree and the problems met on the way.

    Args:
        root: the MEAD root (one folder per actor).
        view: camera view folder under ``video`` (MEAD's frontal view by default).
        actors, emotions, levels: keep only these (``None`` keeps all).

    Returns:
        ``(clips, problems)`` both sorted (clips by id, problems by path).

    Raises:
        FileNotFoundError: when ``root`` is not a folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"MEAD root {str(base)!r} is not a folder")
    want_actors = set(actors) if actors else None
    want_emotions = set(emotions) if emotions else None
    want_levels = {int(level) for level in levels} if levels else None
    clips: list[ClipSpec] = []
    problems: list[Problem] = []

    for actor_dir in sorted(base.iterdir()):
        actor = actor_dir.name
        if actor.startswith("."):
            continue
        if want_actors is not None and actor not in want_actors:
            continue
        if actor_dir.is_file():
            if actor not in IGNORED_ROOT_FILES:
                problems.append(Problem(actor, "unexpected file at the root (expected actor folders)"))
            continue
        if _is_empty_tree(actor_dir):
            problems.append(Problem(actor, "empty folder", actor=actor))
            continue
        view_dir = actor_dir / "video" / view
        if not view_dir.is_dir():
            problems.append(Problem(actor, f"unexpected folder: no video/{view} inside", actor=actor))
            continue
        for emotion_dir in sorted(view_dir.iterdir()):
            rel = emotion_dir.relative_to(base).as_posix()
            emotion = emotion_dir.name
            if emotion.startswith("."):
                continue
            if emotion_dir.is_file() or emotion not in EMOTIONS:
                problems.append(Problem(rel, f"unexpected {'file' if emotion_dir.is_file() else 'folder'}: "
                                             f"{emotion!r} is not a MEAD emotion", actor=actor))  # fmt: skip
                continue
            if want_emotions is not None and emotion not in want_emotions:
                continue
            if _is_empty_tree(emotion_dir):
                problems.append(Problem(rel, "empty folder", actor=actor, emotion=emotion))
                continue
            for level_dir in sorted(emotion_dir.iterdir()):
                rel = level_dir.relative_to(base).as_posix()
                match = _LEVEL.match(level_dir.name)
                if level_dir.is_file() or not match or int(match.group(1)) not in levels_of(emotion):
                    problems.append(Problem(rel, f"unexpected {'file' if level_dir.is_file() else 'folder'}: "
                                                 f"not a level of {emotion}", actor=actor, emotion=emotion))  # fmt: skip
                    continue
                level = int(match.group(1))
                if want_levels is not None and level not in want_levels:
                    continue
                found = False
                for video in sorted(level_dir.iterdir()):
                    vrel = video.relative_to(base).as_posix()
                    if video.name.startswith("."):
                        continue
                    if video.is_dir() or video.suffix.lower() not in VIDEO_SUFFIXES:
                        kind = "folder" if video.is_dir() else "file"
                        problems.append(Problem(vrel, f"unexpected {kind} (expected <nnn>.mp4)", actor, emotion, level))
                        continue
                    found = True
                    stem = video.stem
                    sub = Path(emotion) / f"level_{level}"
                    clips.append(
                        ClipSpec(
                            actor=actor,
                            emotion=emotion,
                            level=level,
                            name=stem,
                            video=str(video.resolve()),
                            audio=str((actor_dir / "audio" / sub / f"{stem}.m4a").resolve()),
                            groundtruth=str((actor_dir / "groundtruth" / sub / f"{stem}.npz").resolve()),
                        )
                    )
                if not found:
                    problems.append(Problem(rel, "empty folder: no clips", actor, emotion, level))
    clips.sort(key=lambda clip: clip.clip_id)
    problems.sort(key=lambda problem: problem.path)
    return clips, problems
