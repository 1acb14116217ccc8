"""``emoface generate``: a talking-face video from a speech file, a face photo and an emotion.

    emoface generate --config configs/generate.yaml --audio speech.wav --image face.png --emotion happy -o out.mp4

``configs/generate.yaml`` names the three checkpoints of a trained pipeline (stage 1, stage 2, and
optionally the renderer; by default the renderer stage 2 was trained with) and the defaults; any
option on the command line wins over the file. The work itself is :mod:`emoface.pipeline`.

Bad input is exit code 2 with one line naming the file or value (no face, unreadable or silent
audio, unknown emotion or level, missing or mismatched checkpoints); nothing is written at the
output path unless the whole video was made.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from emoface.emotions import EMOTIONS, emotion_index, levels_of

HELP = "Make a talking-face video (mp4 with the speech) from an audio file, a face photo and an emotion."

SETTINGS: dict[str, Any] = {
    "s2l": None,
    "l2k": None,
    "renderer": None,
    "emotion": None,
    "level": 3,
    "landmark_backend": "auto",
    "device": "auto",
    "batch_size": 8,
    "precision": "32",
    "seed": 0,
}
"""Keys of a generate config file and their defaults (command-line options of the same names win)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emoface generate``."""
    parser.add_argument(
        "--audio", required=True, help="speech: any audio or video file FFmpeg reads, any rate and length"
    )
    parser.add_argument("--image", required=True, help="a photo with a face (the largest face is used)")
    parser.add_argument("--emotion", default=None, help="angry, contempt, disgusted, fear, happy, neutral, sad, "
                                                        "surprised (or ang, con, ...)")  # fmt: skip
    parser.add_argument(
        "--level", type=int, default=None, help="intensity 1-3 (neutral: 1; default 3, or the config's)"
    )
    parser.add_argument("-o", "--out", required=True, help="the output .mp4")
    parser.add_argument(
        "--config", default=None, help="a generate config (configs/generate.yaml): checkpoints and defaults"
    )
    parser.add_argument("--s2l", default=None, help="stage-1 (SpeechToLandmarks) checkpoint")
    parser.add_argument("--l2k", default=None, help="stage-2 (LandmarksToKeypoints) checkpoint")
    parser.add_argument(
        "--renderer",
        default=None,
        help="renderer: FaceRenderer .ckpt, a face-vid2vid file (.pth.tar, SadTalker .safetensors) or a "
        "LivePortrait weights folder, of the family stage 2 was trained for; default: stage 2's own",
    )
    parser.add_argument("--pose-from", default=None, help="a video whose head motion replaces stage 1's")
    parser.add_argument("--seed", type=int, default=None, help="random seed of stage 1's generation")
    parser.add_argument("--device", default=None, help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per renderer call")
    parser.add_argument("--precision", choices=("32", "bf16"), default=None, help="renderer precision (bf16: GPU)")
    parser.add_argument("--landmark-backend", default=None, choices=("auto", "dlib", "face_alignment"),
                        help="finds the face and its landmarks in the photo (auto: face_alignment when its weights "
                             "are present, else dlib)")  # fmt: skip
    parser.add_argument(
        "--save-cues",
        action="store_true",
        help="also write OUT.cues.npz (stage-1 file) and OUT_preview.mp4 (landmarks over the frames)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's settings with the command line's on top.

    Raises:
        PipelineError: unreadable config, or a key it should not have.
    """
    from omegaconf import OmegaConf

    from emoface.pipeline import PipelineError

    settings = dict(SETTINGS)
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise PipelineError(f"{path}: config not found")
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
        except Exception as error:  # noqa: BLE001 - any parse failure is the same message
            raise PipelineError(f"{path}: unreadable config ({error})") from error
        if not isinstance(loaded, dict):
            raise PipelineError(f"{path}: a generate config is a mapping of settings")
        unknown = sorted(set(loaded) - set(SETTINGS))
        if unknown:
            raise PipelineError(f"{path}: unknown settings {unknown}; expected some of {sorted(SETTINGS)}")
        settings.update(loaded)
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    for key in ("s2l", "l2k"):
        if not settings[key]:
            raise PipelineError(f"no {key} checkpoint: pass --{key} CKPT or a --config that names it")
    if not settings["emotion"]:
        raise PipelineError(
            "no emotion: pass --emotion (angry, contempt, disgusted, fear, happy, neutral, sad, surprised)"
        )
    return settings


def _backend(name: str, device: str) -> Any:
    from emoface.pipeline import PipelineError
    from emoface.preprocessing.backends import make_backend

    try:
        return make_backend(name, device="cpu" if device == "cpu" else "auto")
    except (FileNotFoundError, ImportError) as error:
        raise PipelineError(f"landmark backend {name!r} unavailable: {error}") from error


def _preview(frames: np.ndarray, cues: dict[str, np.ndarray], render_size: int) -> np.ndarray:
    """Side by side: the frames | the same frames with stage 1's landmarks, gaze and pose drawn
    (``render_size``: the frames' side, twice the crop for LivePortrait)."""
    from emoface.visualize import annotate_frames, auto_upscale, track_from_arrays, upscale_frames

    track = track_from_arrays(cues).scaled(render_size / float(cues["size"]))
    upscale = auto_upscale(frames.shape[1])
    drawn = annotate_frames(frames, track, upscale=upscale)
    return np.concatenate([upscale_frames(frames, upscale), drawn], axis=2)


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Make the video; returns what was written and the time of each stage (seconds).

    Raises:
        PipelineError: any bad input (nothing is written then).
    """
    from emoface.io.arrays import save_npz
    from emoface.io.media import write_video
    from emoface.pipeline import (
        FPS,
        PipelineError,
        TalkingFacePipeline,
        check_emotion,
        load_image,
        load_speech,
        pose_from_video,
    )
    from emoface.progress import ProgressReport

    settings = load_settings(args)
    emotion, level = settings["emotion"], int(settings["level"])
    if args.level is None:  # no --level: the config's, or the emotion's only level (neutral: 1)
        with suppress(ValueError):  # an unknown emotion is reported by check_emotion below
            valid = levels_of(EMOTIONS[emotion_index(emotion)])
            if level not in valid and len(valid) == 1:
                level = valid[0]
    check_emotion(emotion, level)  # before any heavy work
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise PipelineError(f"{out}: the output must be an .mp4 file")
    if out.is_dir():
        raise PipelineError(f"{out}: is a directory")
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    start = time.perf_counter()
    speech = load_speech(args.audio)
    image = load_image(args.image)
    timed("inputs", start)

    start = time.perf_counter()
    pipeline = TalkingFacePipeline.from_checkpoints(
        settings["s2l"], settings["l2k"], settings["renderer"], device=str(settings["device"]),
        batch_size=int(settings["batch_size"]), precision=str(settings["precision"]),
    )  # fmt: skip
    timed("load", start)

    start = time.perf_counter()
    backend = _backend(str(settings["landmark_backend"]), str(settings["device"]))
    try:
        photo = pipeline.prepare_photo(image, backend)
    except PipelineError as error:
        raise PipelineError(f"{args.image}: {error}") from error
    if photo.faces_found > 1:
        print(f"emoface generate: {args.image} has {photo.faces_found} faces; using the largest "
              f"(box {np.round(photo.face_box[:4]).astype(int).tolist()})", file=sys.stderr)  # fmt: skip
    pose = pose_from_video(args.pose_from, backend, speech.num_frames) if args.pose_from else None
    timed("landmarks", start)

    start = time.perf_counter()
    cues = pipeline.cues(speech, photo, emotion, level, seed=int(settings["seed"]), pose=pose)
    timed("s2l", start)

    start = time.perf_counter()
    with ProgressReport("generate", total=speech.num_frames, unit="frames", enabled=not args.quiet) as report:
        frames = pipeline.frames(photo, cues, progress=report.advance)
    timed("l2k+renderer", start)

    start = time.perf_counter()
    written = {"video": write_video(out, frames, fps=FPS, audio=speech.waveform)}
    if args.save_cues:
        written["cues"] = save_npz(out.with_name(f"{out.stem}.cues.npz"), cues)
        written["preview"] = write_video(out.with_name(f"{out.stem}_preview.mp4"),
                                         _preview(frames, cues, frames.shape[1]), fps=FPS, audio=speech.waveform)  # fmt: skip
    timed("encoding", start)
    return {"written": written, "timings": timings, "frames": speech.num_frames, "faces": photo.faces_found}


def run(args: argparse.Namespace) -> int:
    """``emoface generate``: 0 on success, 2 on bad input (one line on stderr saying which)."""
    from emoface.pipeline import PipelineError

    try:
        result = generate(args)
    except PipelineError as error:
        print(f"emoface generate: error: {error}", file=sys.stderr)
        return 2
    frames = result["frames"]
    total = sum(result["timings"].values())
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["timings"].items())
    print(f"wrote {result['written']['video']} ({frames} frames, {frames / 25:.2f} s) in {total:.1f} s: {stages}")
    for kind in ("cues", "preview"):
        if kind in result["written"]:
            print(f"wrote {result['written'][kind]}")
    return 0
