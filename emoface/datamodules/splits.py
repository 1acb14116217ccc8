"""MEAD train/val/test splits: by speaker (EAT and followers) or the official per-utterance split."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

DEFAULT_TEST_ACTORS: tuple[str, ...] = ("M003", "M030", "W009", "W015")
"""Test speakers of the speaker split used by EAT and its followers (real MEAD)."""

OFFICIAL_TEST_COUNT = {"neutral": 10}
OFFICIAL_TEST_COUNT_OTHER = 6
SPLITS = ("speaker", "official")


def speaker_split(
    actors: Sequence[str],
    test_actors: Sequence[str] | None = None,
    val_actors: Sequence[str] | None = None,
    source_split: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """Actors of each split.

    Defaults: real MEAD (all of :data:`DEFAULT_TEST_ACTORS` present) tests on those four and
    validates on the last remaining actor (sorted); mini-MEAD uses the split it records
    (``source_split``, from ``mini_mead.json``); otherwise the last actor tests and the one
    before validates. With fewer than three actors every split uses all of them.

    Args:
        actors: every actor of the cache.
        test_actors, val_actors: explicit choices (override the defaults).
        source_split: ``{"train": [...], "val": [...], "test": [...]}`` recorded by the data source.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (sorted lists).

    Raises:
        ValueError: a requested actor is not in the cache.
    """
    actors = sorted(set(actors))
    for name, chosen in (("test_actors", test_actors), ("val_actors", val_actors)):
        unknown = sorted(set(chosen or ()) - set(actors))
        if unknown:
            raise ValueError(f"{name} {unknown} not in the cache (actors: {', '.join(actors)})")
    if test_actors is None and val_actors is None and len(actors) < 3:
        return {"train": list(actors), "val": list(actors), "test": list(actors)}
    if test_actors is None:
        if set(DEFAULT_TEST_ACTORS) <= set(actors):
            test_actors = list(DEFAULT_TEST_ACTORS)
        elif source_split and source_split.get("test") and set(source_split["test"]) <= set(actors):
            test_actors = list(source_split["test"])
        else:
            test_actors = [actors[-1]]
    rest = [actor for actor in actors if actor not in set(test_actors)]
    if val_actors is None:
        if source_split and source_split.get("val") and set(source_split["val"]) <= set(rest):
            val_actors = list(source_split["val"])
        else:
            val_actors = rest[-1:] if len(rest) > 1 else list(test_actors)
    train = [actor for actor in rest if actor not in set(val_actors)]
    return {"train": train, "val": sorted(val_actors), "test": sorted(test_actors)}


def official_split(clips: Sequence[tuple[str, str, int, str]], val_per_group: int = 1) -> dict[str, str]:
    """The official per-utterance split: in each (actor, emotion, level), the last 10 neutral or the
    last 6 other-emotion sentences are test; the last ``val_per_group`` of the rest validate.

    Groups smaller than the official test count (mini-MEAD) put their last third (at least one
    clip) in test; a group keeps at least one training clip before giving any to validation.

    Args:
        clips: ``(clip_id, actor, emotion, level)`` per clip; the sentence order is the clip id order.

    Returns:
        clip id -> ``"train"`` | ``"val"`` | ``"test"``.
    """
    groups: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for clip_id, actor, emotion, level in clips:
        groups[(actor, emotion, int(level))].append(clip_id)
    assignment: dict[str, str] = {}
    for (_, emotion, _), ids in groups.items():
        ids = sorted(ids)
        count = OFFICIAL_TEST_COUNT.get(emotion, OFFICIAL_TEST_COUNT_OTHER)
        if len(ids) <= count:
            count = max(1, len(ids) // 3)
        test, rest = ids[len(ids) - count :], ids[: len(ids) - count]
        val_count = min(val_per_group, max(0, len(rest) - 1))
        val = rest[len(rest) - val_count :] if val_count else []
        for clip_id in ids:
            assignment[clip_id] = "test" if clip_id in test else "val" if clip_id in val else "train"
    return assignment
