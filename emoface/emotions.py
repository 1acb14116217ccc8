"""The one emotion index order every part of emoface uses.

``EMOTIONS[i]`` is the MEAD folder name of class ``i``. The order is MEAD's alphabetical folder
order; it is fixed and must never change, because checkpoints, caches and metrics store indices.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "angry",
    "contempt",
    "disgusted",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprised",
)
"""MEAD emotion folder names; the position is the class index."""

EMOTION_CODES: tuple[str, ...] = ("ang", "con", "dis", "fea", "hap", "neu", "sad", "sur")
"""Three-letter codes papers use, in the same order as :data:`EMOTIONS`."""

NUM_EMOTIONS: int = len(EMOTIONS)

LEVELS: tuple[int, ...] = (1, 2, 3)
"""MEAD intensity levels; neutral only has level 1."""


def levels_of(emotion: str) -> tuple[int, ...]:
    """Intensity levels MEAD records for ``emotion`` (neutral has level 1 only)."""
    return (1,) if emotion == "neutral" else LEVELS


def emotion_index(name: str) -> int:
    """Class index of an emotion given by MEAD folder name or three-letter code.

    Raises:
        ValueError: naming the unknown emotion and the accepted names.
    """
    key = name.strip().lower()
    if key in EMOTIONS:
        return EMOTIONS.index(key)
    if key in EMOTION_CODES:
        return EMOTION_CODES.index(key)
    raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
