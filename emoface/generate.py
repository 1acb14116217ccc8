"""``emoface generate``: a talking-face video from a speech file, a face photo and an emotion.

    emoface generate --config configs/generate.yaml --audio speech.wav --image face.png --emotion happy -o out.mp4

``configs/generate.yaml`` names the three checkpoints of a trained pipeline (stage 1, stage 2, and
optionally the renderer; by default the renderer stage 2 was trained with) and the defaults; any
option on the command line wins over the file. The work itself is :mod:`emoface.pipeline`.

Every argument is checked first, before torch is imported or anything is decoded or loaded:
the files exist, the emotion and level, ``--batch-size``, ``--precision``, the output name; then
the device (CUDA present, index in range). Bad input is exit code 2 with one line naming the file
or value (also: no face, unreadable or silent audio, mismatched checkpoints); Ctrl-C is one line
and exit code 130.

A transparent photo (RGBA) is composited over white. Frames are encoded as they are rendered, so
memory does not grow with the speech's length. The outputs (the video, and with ``--save-cues``
the cue file and the preview) are written under temporary names and renamed together at the end:
all of them appear, or none (an earlier run's files stay as they were).
"""

from __future__ import annotations

import argparse
import sys
import time
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


class GenerateError(ValueError):
    """A bad argument, found before anything is loaded; the message names the value or file."""


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's settings with the command line's on top.

    Raises:
        GenerateError: unreadable config, or a key it should not have.
    """
    from omegaconf import OmegaConf

    settings = dict(SETTINGS)
    if args.config is not None:
        path = Path(args.config)
        if not path.is_file():
            raise GenerateError(f"{path}: config not found")
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {}
        except Exception as error:  # noqa: BLE001 - any parse failure is the same message
            raise GenerateError(f"{path}: unreadable config ({error})") from error
        if not isinstance(loaded, dict):
            raise GenerateError(f"{path}: a generate config is a mapping of settings")
        unknown = sorted(set(loaded) - set(SETTINGS))
        if unknown:
            raise GenerateError(f"{path}: unknown settings {unknown}; expected some of {sorted(SETTINGS)}")
        settings.update(loaded)
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings


def check_arguments(args: argparse.Namespace, settings: dict[str, Any]) -> tuple[str, int]:
    """Check every argument that needs no heavy import; returns the emotion (folder name) and level.

    Raises:
        GenerateError: the first bad value or missing file, named.
    """
    if not settings["emotion"]:
        raise GenerateError(
            "no emotion: pass --emotion (angry, contempt, disgusted, fear, happy, neutral, sad, surprised)"
        )
    try:
        emotion = EMOTIONS[emotion_index(str(settings["emotion"]))]
    except ValueError as error:
        raise GenerateError(str(error)) from error
    valid = levels_of(emotion)
    try:
        level = int(settings["level"])
    except (TypeError, ValueError) as error:
        raise GenerateError(f"level {settings['level']!r} is not a number; expected one of 1, 2, 3") from error
    if args.level is None and level not in valid and len(valid) == 1:
        level = valid[0]  # no --level: the config's, or the emotion's only level (neutral: 1)
    if level not in valid:
        raise GenerateError(
            f"level {level} is not a level of {emotion!r}; expected one of {', '.join(map(str, valid))}"
        )
    try:
        batch_size = int(settings["batch_size"])
    except (TypeError, ValueError) as error:
        raise GenerateError(f"--batch-size must be a whole number, got {settings['batch_size']!r}") from error
    if batch_size < 1:
        raise GenerateError(f"--batch-size must be at least 1, got {batch_size}")
    if str(settings["precision"]) not in ("32", "bf16"):
        raise GenerateError(f"unknown precision {settings['precision']!r}; expected 32 or bf16")
    if str(settings["landmark_backend"]) not in ("auto", "dlib", "face_alignment"):
        raise GenerateError(f"unknown landmark backend {settings['landmark_backend']!r}; expected auto, dlib or "
                            "face_alignment")  # fmt: skip
    device = str(settings["device"])
    if device != "auto" and device.split(":")[0] not in ("cpu", "cuda", "mps", "xpu"):
        raise GenerateError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N")
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise GenerateError(f"{out}: the output must be an .mp4 file")
    if out.is_dir():
        raise GenerateError(f"{out}: is a directory")
    for key in ("s2l", "l2k"):
        if not settings[key]:
            raise GenerateError(f"no {key} checkpoint: pass --{key} CKPT or a --config that names it")
    inputs = {"audio": args.audio, "image": args.image, "stage-1 (--s2l) checkpoint": settings["s2l"],
              "stage-2 (--l2k) checkpoint": settings["l2k"], "--pose-from video": args.pose_from}  # fmt: skip
    for what, path in inputs.items():
        if path is not None and not Path(path).is_file():
            raise GenerateError(f"{path}: {what} not found")
    # The renderer is a face-vid2vid file or a LivePortrait weights folder.
    if settings["renderer"] is not None and not Path(settings["renderer"]).exists():
        raise GenerateError(f"{settings['renderer']}: renderer (--renderer) checkpoint or weights folder not found")
    return emotion, level


def check_device(device: str) -> None:
    """That ``device`` exists here (imports torch; no model is loaded yet).

    Raises:
        GenerateError: CUDA asked for without CUDA, or a GPU index out of range.
    """
    import torch

    if device == "auto" or device == "cpu":
        return
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise GenerateError(f"unknown device {device!r} ({error})") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise GenerateError(f"--device {device}: CUDA is not available here (use cpu or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise GenerateError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices here")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise GenerateError(f"--device {device}: MPS is not available here")


class OutputSet:
    """Files that appear together or not at all: each is written under a temporary name beside its
    target (:meth:`temporary`) and all are renamed when the ``with`` block ends without error;
    otherwise the temporary files are removed and the targets stay as they were."""

    def __init__(self, targets: list[Path]) -> None:
        self.targets = [Path(target) for target in targets]

    def temporary(self, target: Path) -> Path:
        """The temporary name of ``target`` (same folder and suffix, hidden)."""
        return target.with_name(f".{target.stem}.partial{target.suffix}")

    def __enter__(self) -> OutputSet:
        for target in self.targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, error_type: object, error: object, traceback: object) -> None:
        temporaries = [self.temporary(target) for target in self.targets]
        if error_type is None:
            missing = [str(path) for path in temporaries if not path.is_file()]
            if missing:
                raise RuntimeError(f"outputs not written: {missing}")
            for temporary, target in zip(temporaries, self.targets):
                temporary.replace(target)
        else:
            for temporary in temporaries:
                temporary.unlink(missing_ok=True)


def _backend(name: str, device: str) -> Any:
    from emoface.pipeline import PipelineError
    from emoface.preprocessing.backends import make_backend

    try:
        return make_backend(name, device="cpu" if device == "cpu" else "auto")
    except (FileNotFoundError, ImportError) as error:
        raise PipelineError(f"landmark backend {name!r} unavailable: {error}") from error


def _preview(frames: np.ndarray, track: Any) -> np.ndarray:
    """Side by side: the frames | the same frames with stage 1's landmarks, gaze and pose drawn.

    Args:
        frames: ``(t, S, S, 3)`` uint8, a chunk of the video.
        track: the :class:`~emoface.visualize.CueTrack` of those ``t`` frames, in their pixels.
    """
    from emoface.visualize import annotate_frames, auto_upscale, upscale_frames

    upscale = auto_upscale(frames.shape[1])
    drawn = annotate_frames(frames, track, upscale=upscale)
    return np.concatenate([upscale_frames(frames, upscale), drawn], axis=2)


def _track_slice(track: Any, start: int, stop: int) -> Any:
    """Frames ``start:stop`` of a :class:`~emoface.visualize.CueTrack`."""
    from dataclasses import fields, replace

    return replace(track, **{
        field.name: getattr(track, field.name)[start:stop]
        for field in fields(track) if getattr(track, field.name) is not None
    })  # fmt: skip


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Make the video; returns what was written and the time of each stage (seconds).

    Raises:
        GenerateError: a bad argument (found before anything is loaded).
        PipelineError: bad media or checkpoints (nothing is written then).
    """
    settings = load_settings(args)
    emotion, level = check_arguments(args, settings)
    check_device(str(settings["device"]))  # imports torch, loads nothing

    from emoface.io.arrays import save_npz
    from emoface.io.media import VideoWriter
    from emoface.pipeline import FPS, PipelineError, TalkingFacePipeline, load_image, load_speech, pose_from_video
    from emoface.progress import ProgressReport

    out = Path(args.out)
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

    # Render and encode together (a batch of frames in memory at a time); the outputs appear together.
    start = time.perf_counter()
    targets = {"video": out}
    if args.save_cues:
        targets["cues"] = out.with_name(f"{out.stem}.cues.npz")
        targets["preview"] = out.with_name(f"{out.stem}_preview.mp4")
    with OutputSet(list(targets.values())) as outputs:
        video = VideoWriter(outputs.temporary(out), fps=FPS, audio=speech.waveform)
        preview = (VideoWriter(outputs.temporary(targets["preview"]), fps=FPS, audio=speech.waveform)
                   if args.save_cues else None)  # fmt: skip
        track = None
        try:
            with ProgressReport("generate", total=speech.num_frames, unit="frames", enabled=not args.quiet) as report:
                done = 0
                for chunk in pipeline.iter_frames(photo, cues, progress=report.advance):
                    video.write(chunk)
                    if preview is not None:
                        if track is None:  # in the frames' pixels (LivePortrait draws at twice its crop)
                            from emoface.visualize import track_from_arrays

                            track = track_from_arrays(cues).scaled(chunk.shape[1] / float(cues["size"]))
                        preview.write(_preview(chunk, _track_slice(track, done, done + len(chunk))))
                    done += len(chunk)
            video.close()
            if preview is not None:
                preview.close()
        except BaseException:
            video.discard()
            if preview is not None:
                preview.discard()
            raise
        if args.save_cues:
            save_npz(outputs.temporary(targets["cues"]), cues)
    timed("l2k+renderer+encoding", start)
    return {"written": targets, "timings": timings, "frames": speech.num_frames, "faces": photo.faces_found}


def run(args: argparse.Namespace) -> int:
    """``emoface generate``: 0 on success, 2 on bad input (one line on stderr saying which)."""
    try:
        result = generate(args)
    except GenerateError as error:
        print(f"emoface generate: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # a PipelineError (its module is imported once the arguments are checked)
        pipeline = sys.modules.get("emoface.pipeline")
        if pipeline is None or not isinstance(error, pipeline.PipelineError):
            raise
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
