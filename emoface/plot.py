"""``emoface plot``: draw a clip's or a cue file's landmarks, gaze and head pose as an mp4 and a PNG grid.

Inputs (docs/data_format.md):

* a feature-cache clip ``CACHE/clips/<actor>/<emotion>/level_<k>/<nnn>.npz``: its crops, cues and audio;
* a stage-1 cue file (``emoface predict``): relocated landmarks, pupils, gaze and pose, drawn on a
  blank canvas or over ``--frames`` (a cache clip, a video or an image in the same crop pixels);
* a mini-MEAD video ``<actor>/video/front/<emotion>/level_<k>/<nnn>.mp4`` or its ground-truth
  sidecar ``<actor>/groundtruth/.../<nnn>.npz`` (the other one is found beside it).

The drawing itself is :mod:`emoface.visualize`.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELP = "Draw a clip or a cue file (landmarks, gaze arrows, head-pose axes) as an mp4 with audio and a PNG grid."

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DRAWABLE = ("landmarks", "gaze", "pose")


class PlotInputError(ValueError):
    """An input file cannot be drawn; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


@dataclass
class PlotSource:
    """What one input provides.

    Attributes:
        arrays: per-clip arrays with the cues (see :func:`emoface.visualize.track_from_arrays`).
        frames: ``(T, H, W, 3)`` uint8 frames the cues are in the pixels of, or ``None``.
        audio: float32 mono waveform, or ``None``.
        sample_rate: of ``audio``.
        fps: frame rate.
        title: a label such as ``"M005/happy/level_2/001 (real)"``.
        generated: the cues are a model's (drawn in :data:`~emoface.visualize.GENERATED_COLOR`).
    """

    arrays: dict[str, np.ndarray]
    frames: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int = 16000
    fps: float = 25.0
    title: str = ""
    generated: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emoface plot``."""
    parser.add_argument("input", help="a cache clip .npz, a stage-1 cue .npz, or a mini-MEAD .mp4 / ground-truth .npz")
    parser.add_argument("-o", "--out", default=None,
                        help="output path without suffix (OUT.mp4 and OUT.png); default: the input's name in the "
                             "current directory")  # fmt: skip
    parser.add_argument("--frames", default=None,
                        help="frames to draw a cue file over: a cache clip .npz, a video or an image (crop pixels)")
    parser.add_argument("--audio", default=None,
                        help="audio to put in the mp4 (any file FFmpeg reads); default: the input's own, if any")
    parser.add_argument("--size", type=int, default=None,
                        help="canvas side for a cue file without --frames (default: fitted to the landmarks)")
    parser.add_argument("--upscale", type=int, default=None,
                        help="integer resize before drawing (default: frames reach at least 256 px)")
    parser.add_argument("--draw", nargs="+", choices=DRAWABLE, default=list(DRAWABLE), help="what to draw")
    parser.add_argument("--grid-frames", type=int, default=8, help="frames in the PNG grid (evenly spaced)")
    parser.add_argument("--columns", type=int, default=4, help="frames per row of the PNG grid")
    parser.add_argument("--no-video", action="store_true", help="write only the PNG grid")
    parser.add_argument("--no-grid", action="store_true", help="write only the mp4")


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise PlotInputError(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise PlotInputError(path, f"not a readable .npz ({error})") from error


def _scalar(arrays: dict[str, np.ndarray], key: str, default: object = "") -> object:
    if key not in arrays:
        return default
    value = arrays[key]
    return value.item() if value.ndim == 0 else value


def _read_video(path: Path, fps: float | None = None) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Frames, the audio track (``None`` when there is none) and the frame rate of a video."""
    from emoface.io.media import MediaError, probe, read_audio, read_video

    try:
        clip = read_video(path, fps=fps)
        audio = read_audio(path) if probe(path).has_audio else None
    except MediaError as error:
        raise PlotInputError(path, f"cannot read the video ({error.reason})") from error
    return clip.frames, audio, clip.fps


def _mini_mead_pair(path: Path, kind: str) -> Path | None:
    """The sidecar of a mini-MEAD video (``kind="groundtruth"``) or the video of a sidecar (``"video"``)."""
    parts = path.parts  # <actor>/video/front/<emotion>/level_<k>/<nnn>.mp4, <actor>/groundtruth/<emotion>/...
    if kind == "groundtruth" and len(parts) >= 5 and parts[-5:-3] == ("video", "front"):
        candidate = Path(*parts[:-5], "groundtruth", *parts[-3:]).with_suffix(".npz")
    elif kind == "video" and len(parts) >= 4 and parts[-4] == "groundtruth":
        candidate = Path(*parts[:-4], "video", "front", *parts[-3:]).with_suffix(".mp4")
    else:
        return None
    return candidate if candidate.is_file() else None


def _clip_title(arrays: dict[str, np.ndarray], path: Path, what: str) -> str:
    clip = str(_scalar(arrays, "clip", ""))
    if not clip:
        actor = str(_scalar(arrays, "actor", ""))
        clip = "/".join(p for p in (actor, path.parent.parent.name, path.parent.name, path.stem) if p)
    emotion = _scalar(arrays, "emotion", "")
    if clip and emotion and str(emotion) not in clip:
        clip += f" ({emotion})"
    return f"{clip} {what}".strip()


def load_source(path: str | Path) -> PlotSource:
    """Read one input of ``emoface plot``.

    Raises:
        PlotInputError: a missing, unreadable or unrecognised file (the message names it).
    """
    from emoface.preprocessing.store import WAVEFORM_SCALE, decode_frames

    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise PlotInputError(path, "no such file")
        sidecar = _mini_mead_pair(path, "groundtruth")
        if sidecar is None:
            raise PlotInputError(path, "no cues for this video: plot its cache clip (emoface preprocess) or a cue "
                                       "file with --frames VIDEO; only mini-MEAD videos carry a ground-truth sidecar")  # fmt: skip
        arrays = _load_npz(sidecar)
        frames, audio, fps = _read_video(path, fps=float(_scalar(arrays, "fps", 25)))
        return PlotSource(arrays, frames, audio, 16000, fps, _clip_title(arrays, path, "(ground truth)"))
    if path.suffix.lower() != ".npz":
        raise PlotInputError(path, "expected a .npz (cache clip or cue file) or a mini-MEAD video")
    arrays = _load_npz(path)
    fps = float(_scalar(arrays, "fps", 25))
    if "frames_jpeg" in arrays:  # a cache clip
        try:
            offsets = arrays["frames_offsets"]
            frames = decode_frames(arrays["frames_jpeg"], offsets, 0, len(offsets) - 1)
        except (KeyError, RuntimeError) as error:
            raise PlotInputError(path, f"cache clip with unreadable frames ({error})") from error
        audio = arrays["waveform"].astype(np.float32) / WAVEFORM_SCALE if "waveform" in arrays else None
        rate = int(_scalar(arrays, "sample_rate", 16000))
        return PlotSource(arrays, frames, audio, rate, fps, _clip_title(arrays, path, "(cache)"))
    if "relocated" in arrays or "normalized_landmarks" in arrays and "landmarks" not in arrays:  # a cue file
        return PlotSource(arrays, None, None, 16000, fps, _clip_title(arrays, path, "(generated)"), generated=True)
    if "landmarks" in arrays:  # a mini-MEAD sidecar: its video is the frames
        video = _mini_mead_pair(path, "video")
        frames, audio, fps = _read_video(video, fps=fps) if video is not None else (None, None, fps)
        return PlotSource(arrays, frames, audio, 16000, fps, _clip_title(arrays, path, "(ground truth)"))
    raise PlotInputError(path, "not a cache clip, a stage-1 cue file or a mini-MEAD ground-truth file "
                               f"(its keys: {', '.join(sorted(arrays)) or 'none'})")  # fmt: skip


def load_frames(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Frames (and their audio, if any) for ``--frames``: a cache clip, a video or an image."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise PlotInputError(path, "no such file")
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))[None], None, 16000
        except (OSError, UnidentifiedImageError) as error:
            raise PlotInputError(path, f"not a readable image ({error})") from error
    source = load_source(path) if suffix == ".npz" else None
    if source is not None:
        if source.frames is None:
            raise PlotInputError(path, "has no frames (a cue file cannot serve as --frames)")
        return source.frames, source.audio, source.sample_rate
    if suffix in VIDEO_SUFFIXES:
        frames, audio, _ = _read_video(path, fps=25.0)
        return frames, audio, 16000
    raise PlotInputError(path, "--frames wants a cache clip .npz, a video or an image")


# ----------------------------------------------------------------------------------------------
# Drawing and writing
# ----------------------------------------------------------------------------------------------
def fit_audio(audio: np.ndarray, num_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Trim or zero-pad ``audio`` to the video's duration."""
    samples = int(round(num_frames / fps * sample_rate))
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)[:samples]
    return np.pad(audio, (0, samples - len(audio)))


def render(source: PlotSource, draw: tuple[str, ...] | list[str] = DRAWABLE, size: int | None = None,
           upscale: int | None = None) -> np.ndarray:  # fmt: skip
    """The annotated frames ``(T, H', W', 3)`` uint8 of a :class:`PlotSource`."""
    from emoface.visualize import (
        GENERATED_COLOR,
        LANDMARK_COLOR,
        annotate_frames,
        auto_upscale,
        blank_frames,
        canvas_size,
        even_frames,
        track_from_arrays,
    )

    track = track_from_arrays(source.arrays)
    frames = source.frames
    if frames is None:
        side = size or canvas_size(track)
        frames = blank_frames(1, side)
    factor = upscale or auto_upscale(min(frames.shape[1:3]))
    labels = [f"{source.title}  {t}/{len(track)}" if t == 0 else f"{t}/{len(track)}" for t in range(len(track))]
    color = GENERATED_COLOR if source.generated else LANDMARK_COLOR
    return even_frames(annotate_frames(frames, track, upscale=factor, color=color, draw=tuple(draw), labels=labels))


def run(args: argparse.Namespace) -> int:
    """Draw the input; exit code 0, or 2 for a bad input or option (the message names the file)."""
    from PIL import Image

    from emoface.io.media import MediaError, read_audio, write_video
    from emoface.visualize import image_grid, pick_frames

    def fail(message: str) -> int:
        print(f"emoface plot: error: {message}", file=sys.stderr)
        return 2

    if args.no_video and args.no_grid:
        return fail("--no-video and --no-grid leave nothing to write")
    if (args.upscale is not None and args.upscale < 1) or (args.size is not None and args.size < 16) \
            or args.grid_frames < 1 or args.columns < 1:  # fmt: skip
        return fail("--upscale >= 1, --size >= 16, --grid-frames >= 1, --columns >= 1")
    try:
        source = load_source(args.input)
        if args.frames is not None:
            frames, frames_audio, frames_rate = load_frames(args.frames)
            source.frames = frames
            if source.audio is None and frames_audio is not None:
                source.audio, source.sample_rate = frames_audio, frames_rate
        if args.audio is not None:
            try:
                source.audio, source.sample_rate = read_audio(args.audio, sample_rate=16000), 16000
            except MediaError as error:
                raise PlotInputError(args.audio, f"cannot read the audio ({error.reason})") from error
        try:
            video = render(source, args.draw, args.size, args.upscale)
        except KeyError as error:
            raise PlotInputError(args.input, str(error.args[0] if error.args else error)) from error
    except PlotInputError as error:
        return fail(str(error))

    input_path = Path(args.input)
    out = Path(args.out) if args.out else Path(input_path.stem)
    if out.suffix.lower() in (".mp4", ".png"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if not args.no_video:
        audio = None
        if source.audio is not None:
            audio = fit_audio(source.audio, len(video), source.fps, source.sample_rate)
        path = write_video(out.with_name(out.name + ".mp4"), video, source.fps, audio=audio, sample_rate=source.sample_rate)
        written.append(f"{path} ({len(video)} frames at {source.fps:g} fps, {'with' if audio is not None else 'no'} audio)")
    if not args.no_grid:
        grid = image_grid(video[pick_frames(len(video), args.grid_frames)], columns=args.columns)
        path = out.with_name(out.name + ".png")
        Image.fromarray(grid).save(path)
        written.append(f"{path} ({grid.shape[1]}x{grid.shape[0]})")
    for line in written:
        print(f"wrote {line}")
    return 0
