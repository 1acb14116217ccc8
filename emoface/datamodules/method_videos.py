"""Pairing another method's videos with the MEAD test clips, and the benchmark's data module.

A method is a folder of videos (or of frame folders) whose file names carry the clip's actor,
emotion, level and sentence number. A *pattern* names those fields, e.g.
``"{src}_{actor}_{emotion}_{level}_{clip}.mp4"`` for EAT's ``M003_M003_ang_3_026.mp4``; the
emotion may be a MEAD name or a 3-letter code and is mapped **by name** to
:data:`emoface.emotions.EMOTIONS` (never by an index of another project's label order).
:data:`PATTERNS` ships the conventions of the public MEAD evaluations (see REFERENCES.md).

:class:`BenchmarkDataModule` is the :class:`~emoface.datamodules.MEADDataModule` with a method
list: its test loader yields one whole test clip per batch with, for each method, that method's
decoded video (or why there is none). Each video is decoded once, in the loader's workers, and
feeds every metric. Clips are sharded across ranks without padding (:class:`ShardSampler`), so
no clip is scored twice and the table is the same on 1 or N processes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from emoface.datamodules.mead import MEADDataModule
from emoface.datamodules.mead_dataset import ClipEntry, MEADWindows
from emoface.emotions import EMOTIONS, emotion_index
from emoface.preprocessing import manifest as mf

log = logging.getLogger(__name__)

PATTERNS: dict[str, str] = {
    # EAT (yuangan/EAT_code): source identity first, 3-letter emotion code.
    "eat": "{src}_{actor}_{emotion}_{level}_{clip}.mp4",
    # Audio2Head, Wav2Lip, ATVG and the ground-truth folders of EAT's evaluation.
    "mead": "{actor}_{emotion}_{level}_{clip}.mp4",
    "makeittalk": "{actor}_{emotion}_{level}_{clip}_x.mp4",
    # PC-AVS writes one folder per clip holding G_Pose_Driven_.mp4.
    "pcavs": "{actor}_{emotion}_{level}_{clip}/G_Pose_Driven_.mp4",
    # A folder of frame images per clip (EAMM-style outputs; numbered images, sorted by name).
    "frames": "{actor}_{emotion}_{level}_{clip}",
    # emoface's own videos: `emoface predict --config configs/l2k.yaml` writes <clip id>.mp4.
    "emoface": "{actor}/{emotion}/{level}/{clip}.mp4",
}
"""Shipped file-name patterns; a method's ``pattern`` is one of these keys or a pattern string."""

_FIELD_REGEX = {
    "actor": r"(?P<actor>[A-Za-z]\d{3})",
    "emotion": r"(?P<emotion>[A-Za-z]+)",
    "level": r"(?:level_)?(?P<level>\d)",
    "clip": r"(?P<clip>\d+)",
    "src": r"[^/]+?",
}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SANITY_ROWS = ("ground_truth", "source_frame")
"""Built-in rows: the ground truth itself, and the clip's first frame held still (ground-truth audio)."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A regex for a file-name pattern with ``{actor}``, ``{emotion}``, ``{level}``, ``{clip}``
    (required) and ``{src}`` (ignored) fields; the rest is literal. Matched against the path
    relative to the method folder, with ``/`` separators."""
    pattern = PATTERNS.get(pattern, pattern)
    parts = re.split(r"(\{[a-z]+\})", pattern)
    out = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name not in _FIELD_REGEX:
                raise ValueError(f"unknown field {part} in pattern {pattern!r}; use {sorted(_FIELD_REGEX)}")
            out.append(_FIELD_REGEX[name])
        else:
            out.append(re.escape(part))
    missing = [f for f in ("actor", "emotion", "level", "clip") if "{" + f + "}" not in pattern]
    if missing:
        raise ValueError(f"pattern {pattern!r} lacks the fields {missing}")
    return re.compile("".join(out))


def clip_id_of(actor: str, emotion: str, level: int | str, clip: int | str) -> str:
    """emoface's clip id ``"<actor>/<emotion>/level_<k>/<nnn>"`` (emotion by name or code)."""
    return f"{actor.upper()}/{EMOTIONS[emotion_index(emotion)]}/level_{int(level)}/{int(clip):03d}"


def parse_name(relative: str, pattern: str | re.Pattern[str]) -> str | None:
    """The clip id a method's file (path relative to its folder) stands for, ``None`` if it does not match.

    Raises:
        ValueError: the name matches but its emotion is not a MEAD emotion.
    """
    regex = compile_pattern(pattern) if isinstance(pattern, str) else pattern
    match = regex.fullmatch(relative)
    if match is None:
        return None
    return clip_id_of(match["actor"], match["emotion"], match["level"], match["clip"])


class BenchmarkConfigError(ValueError):
    """A benchmark setting that cannot work (a method entry, a clip list), found before any decoding.

    ``emoface test`` prints its one-line message and exits with status 2 (:attr:`exit_code`),
    having written nothing.
    """

    exit_code = 2


@dataclass
class MethodSpec:
    """One row of the table: a folder of another method's outputs.

    Attributes:
        name: row name.
        folder: the method's output folder.
        pattern: a key of :data:`PATTERNS` or a pattern string.
        audio: ``"ground_truth"`` (default: LSE with the clip's own audio, as EAT does) or
            ``"own"`` (the video's audio track).
    """

    name: str
    folder: str
    pattern: str = "mead"
    audio: str = "ground_truth"

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | MethodSpec, index: int = 0) -> MethodSpec:
        """A spec from a config entry, checked before any work.

        Raises:
            BenchmarkConfigError: not a mapping, an unknown or missing key, a pattern that is neither
                a shipped name (listed in the message) nor a valid pattern string, a bad ``audio``
                value or a reserved name; the message names the entry and the value.
        """
        if isinstance(value, MethodSpec):
            return value
        if not isinstance(value, Mapping):
            raise BenchmarkConfigError(f"methods[{index}]: expected a mapping {{name, folder, pattern, audio}}, "
                                       f"got {value!r}")  # fmt: skip
        keys = [f.name for f in fields(cls)]
        label = f"methods[{index}]" + (f" ({value['name']})" if "name" in value else "")
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise BenchmarkConfigError(f"{label}: unknown key {unknown[0]!r}; the keys are {', '.join(keys)}")
        absent = [k for k in ("name", "folder") if not value.get(k)]
        if absent:
            raise BenchmarkConfigError(f"{label}: missing key {absent[0]!r}; the keys are {', '.join(keys)}")
        spec = cls(**{k: str(v) for k, v in value.items()})
        if spec.audio not in ("ground_truth", "own"):
            raise BenchmarkConfigError(f"{label}: audio must be 'ground_truth' or 'own', got {spec.audio!r}")
        if spec.name in SANITY_ROWS:
            raise BenchmarkConfigError(f"{label}: method name {spec.name!r} is reserved for a sanity row")
        if spec.pattern not in PATTERNS:
            if "{" not in spec.pattern:
                raise BenchmarkConfigError(f"{label}: unknown pattern {spec.pattern!r}; shipped patterns: "
                                           f"{', '.join(PATTERNS)} (or a pattern string with {{actor}}, {{emotion}}, "
                                           "{level}, {clip})")  # fmt: skip
            try:
                compile_pattern(spec.pattern)
            except ValueError as error:
                raise BenchmarkConfigError(f"{label}: bad pattern: {error}") from None
        return spec


@dataclass
class Pairing:
    """A method folder matched against the test clips.

    Attributes:
        paths: clip id -> video file or frame folder.
        missing: test clips without a video.
        extra: files that parse to clips outside the test list.
        unparsed: video files / folders the pattern does not match (or with an unknown emotion).
        duplicates: clip ids claimed by several files (the first in sorted order is used).
        error: why the whole folder is unusable (``None`` when it is usable).
    """

    paths: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    error: str | None = None


def _candidates(folder: Path) -> Iterator[tuple[str, Path]]:
    """Video files and folders of images under ``folder`` (relative posix path, path)."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            yield rel, path
        elif path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            yield rel, path


def pair_method(spec: MethodSpec, clip_ids: Sequence[str]) -> Pairing:
    """Match ``spec``'s folder to the test clips; never raises for a bad folder (see :attr:`Pairing.error`)."""
    out = Pairing()
    folder = Path(spec.folder).expanduser()
    wanted = set(clip_ids)
    try:
        regex = compile_pattern(spec.pattern)
        if not folder.is_dir():
            raise FileNotFoundError(f"no folder {folder}")
        found: dict[str, Path] = {}
        for rel, path in _candidates(folder):
            try:
                clip_id = parse_name(rel, regex)
            except ValueError:
                clip_id = None
            if clip_id is None:
                out.unparsed.append(rel)
            elif clip_id not in wanted:
                out.extra.append(rel)
            elif clip_id in found:
                out.duplicates.append(rel)
            else:
                found[clip_id] = path
    except (OSError, ValueError) as error:
        out.error = str(error)
        out.missing = sorted(wanted)
        return out
    out.paths = found
    out.missing = sorted(wanted - set(found))
    return out


def evenly_spaced(length: int, count: int) -> np.ndarray:
    """``count`` evenly spaced indices into ``length`` frames (first and last kept; EAT's alignment)."""
    return np.linspace(0, length - 1, count).round().astype(np.int64)


def read_frame_folder(folder: Path) -> np.ndarray:
    """Images of a folder sorted by name, ``(T, H, W, 3)`` uint8 RGB."""
    import cv2

    from emoface.io import MediaError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    frames = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(path, "corrupt or truncated", "image could not be decoded")
        frames.append(image[..., ::-1])
    if not frames or len({f.shape for f in frames}) != 1:
        raise MediaError(folder, "corrupt or truncated", "no images or images of different sizes")
    return np.ascontiguousarray(np.stack(frames))


def load_method_video(path: Path, fps: float, want_audio: bool, sample_rate: int) -> dict[str, Any]:
    """Decode one method video at ``fps``.

    Returns:
        ``{"frames": (T, 3, H, W) uint8, "source_fps": float | None, "audio": (S,) float32 | None,
        "landmarks": (T, 68, D) float32 | None}``; landmarks come from an optional ``.npz``
        sidecar (same name as the video or frame folder, key ``landmarks`` in its pixels).

    Raises:
        emoface.io.MediaError: unreadable file (or missing audio track when ``want_audio``).
    """
    from emoface.io import media

    source_fps = None
    if path.is_dir():
        frames = read_frame_folder(path)
    else:
        info = media.probe(path)
        source_fps = info.fps
        frames = media.read_video(path, fps=fps).frames
    audio = None
    if want_audio:
        audio = torch.from_numpy(media.read_audio(path, sample_rate))
    sidecar = path.with_suffix(".npz") if path.is_file() else path.parent / f"{path.name}.npz"
    landmarks = None
    if sidecar.is_file():
        with np.load(sidecar) as data:
            landmarks = torch.from_numpy(np.asarray(data["landmarks"], np.float32))
    return {
        "frames": torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
        "source_fps": source_fps,
        "audio": audio,
        "landmarks": landmarks,
    }


def read_clip_list(path: str | Path) -> list[str]:
    """Clip ids listed in a text file, one per line: ``M003/angry/level_3/001`` or a ``mead``-pattern
    name like ``M003_ang_3_001`` (extension optional); ``#`` starts a comment."""
    return parse_clip_lines(Path(path).read_text().splitlines(), path)


def parse_clip_lines(lines: Sequence[str], path: str | Path) -> list[str]:
    """Clip ids of clip-list lines (see :func:`read_clip_list`); ``path`` names the list in errors.

    Raises:
        ValueError: a line that is not a clip.
    """
    regex = compile_pattern("{actor}_{emotion}_{level}_{clip}")
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        suffix = Path(line).suffix
        stem = line[: -len(suffix)] if suffix.lower() in VIDEO_SUFFIXES else line
        parts = stem.split("/")
        if len(parts) == 4:
            try:
                out.append(clip_id_of(parts[0], parts[1], parts[2].removeprefix("level_"), parts[3]))
            except ValueError:
                raise ValueError(f"{path}: cannot read clip {line!r} (expected M003/angry/level_3/001 or "
                                 "M003_ang_3_001)") from None  # fmt: skip
            continue
        try:
            clip_id = parse_name(stem, regex)
        except ValueError:
            clip_id = None
        if clip_id is None:
            raise ValueError(f"{path}: cannot read clip {line!r} (expected M003/angry/level_3/001 or M003_ang_3_001)")
        out.append(clip_id)
    return out


def mead100_clips(entries: Sequence[ClipEntry], per_actor: int = 25) -> list[ClipEntry]:
    """The 100-clip protocol's selection from the test clips: per actor, each non-neutral emotion at
    level 3 and neutral at level 1, taken in turns (emotions in :data:`EMOTIONS` order, sentences
    by number) until ``per_actor`` clips (25: 100 over MEAD's 4 test actors).

    The field names the set (REFERENCES.md: "each non-neutral emotion at level 3, neutral at
    level 1") but its clip ids are not published; this rule is emoface's, deterministic and
    balanced: 3 sentences of every group, then one more from the first groups. An actor with
    fewer such clips gives all it has (a smaller cache, e.g. mini-MEAD, gives a smaller set;
    protocol.json records the count). For an exact published set, give its list file.
    """
    by_actor: dict[str, dict[str, list[ClipEntry]]] = {}
    for entry in entries:
        wanted_level = 1 if entry.emotion == "neutral" else 3
        if entry.level == wanted_level:
            by_actor.setdefault(entry.actor, {}).setdefault(entry.emotion, []).append(entry)
    out: list[ClipEntry] = []
    for actor in sorted(by_actor):
        groups = [sorted(by_actor[actor][e], key=lambda x: x.clip_id) for e in EMOTIONS if e in by_actor[actor]]
        picked: list[ClipEntry] = []
        for k in range(max(len(g) for g in groups)):
            picked += [g[k] for g in groups if k < len(g)]
        out += picked[:per_actor]
    return out


def eat_full_clips(entries: Sequence[ClipEntry]) -> list[ClipEntry]:
    """EAT's full MEAD test set (985 clips on MEAD): every test clip with a non-neutral emotion at level 3
    or neutral at level 1."""
    return [e for e in entries if e.level == (1 if e.emotion == "neutral" else 3)]


def eat100_clip_ids() -> list[str]:
    """EAT's 100 clips (its ``rand_sample_ours_mead100.npy``), in its order, from the package data file
    ``emoface/data/eat_mead100.txt``."""
    from importlib import resources

    text = resources.files("emoface").joinpath("data", "eat_mead100.txt").read_text()
    return parse_clip_lines(text.splitlines(), "eat_mead100.txt")


BUILTIN_CLIP_LISTS: dict[str, Any] = {"mead100": mead100_clips, "eat_full": eat_full_clips, "eat100": eat100_clip_ids}
"""Clip lists selectable by name instead of a file: ``mead100`` (emoface's rule), ``eat_full`` (EAT's
985-clip set, a rule on the test clips) and ``eat100`` (EAT's exact 100 clips, shipped)."""
LISTED_BUILTINS = ("eat100",)
"""Built-in lists that name clips (checked like a file) rather than select them by a rule."""


class ShardSampler(DistributedSampler):
    """Clip ``i`` goes to rank ``i % world``, with no padding or duplicates.

    Lightning keeps a :class:`DistributedSampler` as it is; the default one pads the last ranks
    with repeated clips, which would count them twice in the table.
    """

    def __init__(self, dataset: Dataset) -> None:
        initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
        world = torch.distributed.get_world_size() if initialised else 1
        rank = torch.distributed.get_rank() if initialised else 0
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))  # type: ignore[arg-type]


def _first(batch: list[Any]) -> Any:
    return batch[0]


class BenchmarkClips(Dataset):
    """One item per test clip: the ground truth's cached arrays and every method's decoded video.

    Item: ``{"clip", "emotion", "level", "clip_path" (the cached clip file), "num_frames",
    "waveform" (S,), "landmarks" (T, 68, 3), "methods": {name: {"status": "ok" | reason, "frames",
    "audio", "landmarks", "source_fps"}}}``. The ground-truth frames are not decoded here: the
    benchmark decodes them only when its ground-truth cache lacks the clip.
    """

    def __init__(
        self,
        entries: Sequence[ClipEntry],
        pool: Sequence[ClipEntry],
        methods: Sequence[MethodSpec],
        pairings: Mapping[str, Pairing],
        fps: float,
        sample_rate: int,
    ) -> None:
        self.clips = MEADWindows(entries, None, 1, ["waveform", "landmarks"], pool)
        self.methods = list(methods)
        self.pairings = dict(pairings)
        self.fps = fps
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from emoface.io import MediaError

        item = self.clips[index]
        entry = self.clips.entries[self.clips.items[index][0]]
        item["clip_path"], item["num_frames"] = entry.path, entry.num_frames
        methods: dict[str, dict[str, Any]] = {}
        for spec in self.methods:
            path = self.pairings[spec.name].paths.get(item["clip"])
            if path is None:
                methods[spec.name] = {"status": "missing"}
                continue
            try:
                video = load_method_video(path, self.fps, spec.audio == "own", self.sample_rate)
            except MediaError as error:
                methods[spec.name] = {"status": f"unreadable: {error.reason}", "path": str(path)}
                continue
            methods[spec.name] = {"status": "ok", "path": str(path), **video}
        item["methods"] = methods
        return item


class BenchmarkDataModule(MEADDataModule):
    """The MEAD test clips paired with other methods' videos, for :class:`emoface.lightning_modules.Benchmark`.

    Args:
        methods: ``[{name, folder, pattern, audio}]`` (see :class:`MethodSpec`).
        sanity: built-in rows among :data:`SANITY_ROWS`.
        clip_list: a text file of clip ids (:func:`read_clip_list`) restricting the test clips of
            ``split`` (``speaker``: every clip of the test actors; ``official``: per utterance), or
            a built-in list's name (:data:`BUILTIN_CLIP_LISTS`: ``mead100``, see :func:`mead100_clips`).
        fps: rate every method's video is decoded at (MEAD's 25).
        strict: a missing clip of any method is an error instead of a smaller row.
        **kwargs: :class:`MEADDataModule` arguments (cache, split, actors, emotions, levels ...).
    """

    def __init__(
        self,
        methods: list[dict[str, Any]] | None = None,
        sanity: list[str] = list(SANITY_ROWS),  # noqa: B006 - jsonargparse needs a list default
        clip_list: str | None = None,
        fps: float = 25.0,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("fields", ["waveform", "landmarks", "pose", "gaze", "frames"])
        super().__init__(**kwargs)
        if methods is not None and not isinstance(methods, Sequence):
            raise BenchmarkConfigError(f"methods: expected a list of {{name, folder, pattern, audio}}, got {methods!r}")
        self.methods = [MethodSpec.from_config(m, i) for i, m in enumerate(methods or [])]
        names = [m.name for m in self.methods]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise BenchmarkConfigError(f"methods: the name {doubles[0]!r} is used twice; names must be unique")
        unknown = [s for s in sanity if s not in SANITY_ROWS]
        if unknown:
            raise BenchmarkConfigError(f"sanity: unknown row {unknown[0]!r}; choose from {', '.join(SANITY_ROWS)}")
        self.sanity = list(sanity)
        self.clip_list = clip_list
        self.listed = self._read_listed(clip_list)
        if (self.cache_dir / mf.MANIFEST).is_file():  # an existing cache: check the list against it now
            everything, _ = self._entries()
            self._select(everything, self.split_entries()["test"])
        self.fps = fps
        self.strict = strict
        self.pairings: dict[str, Pairing] = {}
        self.test_entries: list[ClipEntry] = []

    @property
    def row_names(self) -> list[str]:
        """Table rows in order: sanity rows, then methods."""
        return self.sanity + [m.name for m in self.methods]

    @staticmethod
    def _read_listed(clip_list: str | None) -> list[str] | None:
        """The clip ids a list names (a file or :data:`LISTED_BUILTINS`), ``None`` for a rule or no list.

        Raises:
            BenchmarkConfigError: a missing, unreadable, malformed or empty file.
        """
        if clip_list is None or (clip_list in BUILTIN_CLIP_LISTS and clip_list not in LISTED_BUILTINS):
            return None
        if clip_list in LISTED_BUILTINS:
            return BUILTIN_CLIP_LISTS[clip_list]()
        path = Path(clip_list).expanduser()
        if not path.is_file():
            raise BenchmarkConfigError(
                f"clip_list {clip_list}: no such file (built-in lists: {', '.join(BUILTIN_CLIP_LISTS)})"
            )
        try:
            listed = read_clip_list(path)
        except (OSError, UnicodeDecodeError) as error:
            raise BenchmarkConfigError(f"clip_list {clip_list}: unreadable ({type(error).__name__}: {error})") from None
        except ValueError as error:
            raise BenchmarkConfigError(f"clip_list {error}") from None
        if not listed:
            raise BenchmarkConfigError(f"clip_list {clip_list}: names no clip")
        return listed

    def _select(self, everything: Sequence[ClipEntry], test: Sequence[ClipEntry]) -> list[ClipEntry]:
        """The test clips the clip list keeps (all of ``test`` without one).

        Raises:
            BenchmarkConfigError: listed clips absent from the cache, or outside the split's test clips
                (the first few named), or a rule that keeps nothing.
        """
        if self.clip_list in BUILTIN_CLIP_LISTS and self.listed is None:
            chosen = BUILTIN_CLIP_LISTS[self.clip_list](test)
            if not chosen:
                raise BenchmarkConfigError(f"clip_list {self.clip_list}: no test clip of the cache fits it")
            return list(chosen)
        if self.listed is None:
            return list(test)
        by_id = {e.clip_id: e for e in everything}
        absent = [c for c in self.listed if c not in by_id]
        if absent:
            raise BenchmarkConfigError(f"clip_list {self.clip_list}: {len(absent)} of {len(self.listed)} clips are "
                                       f"not in the cache {self.cache_dir}, e.g. {', '.join(absent[:3])}")  # fmt: skip
        in_split = {e.clip_id for e in test}
        outside = [c for c in self.listed if c not in in_split]
        if outside:
            raise BenchmarkConfigError(f"clip_list {self.clip_list}: {len(outside)} clips are outside the test clips "
                                       f"of the {self.split} split, e.g. {', '.join(outside[:3])}")  # fmt: skip
        return [by_id[c] for c in dict.fromkeys(self.listed)]

    def setup(self, stage: str | None = None) -> None:
        """Choose the test clips and pair every method folder with them."""
        everything, _ = self._entries()
        test = self._select(everything, self.split_entries()["test"])
        self.test_entries = sorted(test, key=lambda e: e.clip_id)
        ids = [e.clip_id for e in self.test_entries]
        self.pairings = {spec.name: pair_method(spec, ids) for spec in self.methods}
        if self.strict:
            bad = {n: p.error or f"{len(p.missing)} missing: {p.missing[:5]}" for n, p in self.pairings.items()
                   if p.error or p.missing}  # fmt: skip
            if bad:
                raise RuntimeError(f"strict benchmark: methods lack test clips: {bad}")
        self.datasets = {
            "test": BenchmarkClips(  # type: ignore[dict-item]
                self.test_entries, everything, self.methods, self.pairings, self.fps, 16000
            )
        }

    def test_dataloader(self) -> DataLoader:
        dataset = self.datasets["test"]
        return DataLoader(
            dataset,
            batch_size=1,
            sampler=ShardSampler(dataset),
            num_workers=self.num_workers,
            collate_fn=_first,
            persistent_workers=False,
        )
