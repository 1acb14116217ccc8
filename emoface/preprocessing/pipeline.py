"""Raw MEAD -> feature cache: the resumable, batched, failure-tolerant preprocessing run.

Per clip (see :func:`process_clip`): audio at 16 kHz mono; 3D landmarks from the backend (short
face gaps interpolated); one stable square crop for the clip (or, with ``crop="track"``, for
heads that move a lot, a crop of fixed side per frame that follows the face); frames cropped and resized;
head pose by Umeyama alignment to the mean face and normalized landmarks; gaze per eye from the
cropped image; MFCC + log-filterbank audio features at 100 Hz; video and audio reconciled to the
shorter. The result is one ``clips/<actor>/<emotion>/level_<k>/<nnn>.npz`` (written atomically)
and a ``.json`` record beside it (written after the ``.npz``: a clip counts as done only when
both exist). Failures become records too, so a re-run skips them (``retry_failed`` redoes them).
``manifest.csv`` is rebuilt from the records at the end of every run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from emoface.io import MediaError, iter_video_chunks, read_audio
from emoface.io.arrays import save_npz
from emoface.preprocessing import manifest as mf
from emoface.preprocessing.backends import BACKENDS, Backend, default_backend, make_backend
from emoface.preprocessing.features import (
    CROP_MODES,
    ClipFailure,
    CropBox,
    CropTrack,
    audio_features,
    crop_frames,
    crop_frames_tracked,
    estimate_pose,
    fill_gaps,
    landmarks_to_crop,
    rows_per_frame,
    stable_crop_box,
    tracking_crop_boxes,
)
from emoface.preprocessing.gaze import estimate_gaze
from emoface.preprocessing.layout import ClipSpec, Problem, scan_mead
from emoface.preprocessing.store import WAVEFORM_SCALE, encode_frames
from emoface.progress import ProgressReport

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass(frozen=True)
class PreprocessOptions:
    """Settings of a preprocessing run (those in :attr:`cache_keys` must match an existing cache).

    Attributes:
        backend: ``face_alignment``, ``dlib``, ``groundtruth`` or ``auto`` (resolved by :func:`preprocess`
            to face_alignment when its weights are present, else dlib; the cache records the result).
        fps: video rate after resampling (25).
        size: crop side in pixels (256).
        sample_rate: audio rate (16000).
        crop_scale: crop side / largest face extent over the clip (``crop="track"``: / the
            median face extent).
        crop: ``clip`` (one box per clip, sized for the union of its faces: MEAD's seated
            actors), ``track`` (per frame, one side per clip, following the smoothed face centre:
            heads that turn and move, such as a free-motion mini-MEAD) or ``auto`` (resolved by
            :func:`preprocess`: ``track`` for a free-motion mini-MEAD tree, else ``clip``).
        crop_smoothing: ``track`` only: standard deviation in seconds of the temporal Gaussian
            that smooths the crop's centre. 1 s keeps most of a talking head's translation in
            the crops (motion a renderer must model) while following slow drift over long clips;
            0.2 s centres the face in nearly every frame.
        min_frames: shorter clips fail ("too short").
        max_gap: longest run of face-less frames that is interpolated.
        max_missing: largest fraction of face-less frames.
        device: torch device for the face_alignment backend (``auto``: GPU when present).
        batch_size: frames per network forward (face_alignment).
        chunk_size: frames decoded at a time.
    """

    backend: str = "face_alignment"
    fps: int = 25
    size: int = 256
    sample_rate: int = 16000
    crop_scale: float = 1.6
    crop: str = "auto"
    crop_smoothing: float = 1.0
    min_frames: int = 10
    max_gap: int = 12
    max_missing: float = 0.25
    device: str = "auto"
    batch_size: int = 16
    chunk_size: int = 64

    cache_keys: tuple[str, ...] = field(
        default=("backend", "fps", "size", "sample_rate", "crop_scale", "min_frames", "max_gap", "max_missing"),
        repr=False,
    )

    def cache_config(self) -> dict[str, object]:
        """The settings ``cache.json`` records: :attr:`cache_keys`, and ``crop`` (with
        ``crop_smoothing``) unless it is ``clip`` (so caches made before the option keep their
        settings and stay valid)."""
        values = asdict(self)
        config: dict[str, object] = {"format": CACHE_FORMAT, **{key: values[key] for key in self.cache_keys}}
        if self.crop != "clip":
            config["crop"] = self.crop
            config["crop_smoothing"] = self.crop_smoothing
        return config


@dataclass
class RunSummary:
    """Counts of a run: clips ``done`` now, ``skipped`` (already in the cache), ``failed`` now
    (including unusable folders/files), and ``ok_total`` clips usable in the cache afterwards."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    ok_total: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    @property
    def exit_code(self) -> int:
        """Non-zero only when the cache holds no usable clip."""
        return 0 if self.ok_total > 0 else 1


def _version() -> str:
    from emoface import __version__

    return __version__


def clip_paths(cache_dir: str | os.PathLike, clip: ClipSpec) -> tuple[Path, Path]:
    """``(npz, json record)`` of a clip in the cache."""
    base = Path(cache_dir) / mf.CLIPS_DIR / clip.actor / clip.emotion / f"level_{clip.level}" / clip.name
    return base.with_suffix(".npz"), base.with_suffix(".json")


def _base_row(clip: ClipSpec, options: PreprocessOptions, raw_root: Path | None) -> dict[str, object]:
    source = clip.video
    if raw_root is not None:
        try:
            source = Path(clip.video).relative_to(raw_root).as_posix()
        except ValueError:
            pass
    return {
        "actor": clip.actor,
        "emotion": clip.emotion,
        "level": clip.level,
        "clip": clip.clip_id,
        "backend": options.backend,
        "source": source,
        "version": _version(),
    }


def _decode_and_crop(
    clip: ClipSpec, options: PreprocessOptions, landmarks: np.ndarray
) -> tuple[np.ndarray, CropBox | CropTrack]:
    """Decode the clip's video and crop it as ``options.crop`` says.

    Args:
        landmarks: ``(T, 68, 3)`` source pixels, gaps filled.

    Returns:
        ``(crops (N, size, size, 3) uint8, the box or boxes)``.
    """
    if options.crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES} here (auto is resolved by preprocess()), got {options.crop!r}")
    box: CropBox | CropTrack | None = None
    if options.crop == "clip":
        box = stable_crop_box(landmarks, options.size, options.crop_scale)
    crops, done = [], 0
    for chunk in iter_video_chunks(clip.video, fps=options.fps, chunk_size=options.chunk_size):
        if box is None:  # track: the frame size is known at the first chunk
            box = tracking_crop_boxes(landmarks, options.size, options.crop_scale,
                                      smoothing=options.crop_smoothing * options.fps, frame_size=chunk.shape[1:3])  # fmt: skip
        if isinstance(box, CropTrack):
            crops.append(crop_frames_tracked(chunk, box.frames(done, done + len(chunk))))
        else:
            crops.append(crop_frames(chunk, box))
        done += len(chunk)
    if not crops or box is None:
        raise ClipFailure("video: no frames decoded")
    return np.concatenate(crops), box


def extract_clip(
    clip: ClipSpec, backend: Backend, options: PreprocessOptions
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Compute every cached array of one clip.

    Returns:
        ``(arrays, info)``: the arrays of the cache file (see docs/data_format.md, "Feature
        cache") and the manifest fields (frames, video_frames, audio_frames, trimmed_frames,
        missing_faces, duration).

    Raises:
        ClipFailure: with the manifest reason.
    """
    samples_per_frame = options.sample_rate / options.fps
    try:
        wave = read_audio(clip.audio, sample_rate=options.sample_rate)
    except MediaError as error:
        raise ClipFailure(f"no audio: {error.reason}") from error
    audio_frames = int(len(wave) // samples_per_frame)

    try:
        if backend.needs_frames:
            chunks = iter_video_chunks(clip.video, fps=options.fps, chunk_size=options.chunk_size)
            raw_landmarks, found = backend.landmarks_from_chunks(chunks)
            if len(found) == 0:
                raise ClipFailure("video: no frames decoded")
        else:
            raw_landmarks, found = backend.landmarks(clip)
        landmarks = fill_gaps(raw_landmarks, found, options.max_gap, options.max_missing)
        crops, box = _decode_and_crop(clip, options, landmarks)
    except MediaError as error:
        raise ClipFailure(f"video: {error.reason}") from error

    video_frames = len(crops)
    num = min(video_frames, len(landmarks), audio_frames)
    if num < options.min_frames:
        raise ClipFailure(f"too short: {num} usable frames (video {video_frames}, audio {audio_frames}, "
                          f"minimum {options.min_frames})")  # fmt: skip
    crops, landmarks, found = crops[:num], landmarks[:num], found[:num]
    wave = wave[: round(num * samples_per_frame)]

    if isinstance(box, CropTrack):
        box = box.frames(0, num)
    crop_landmarks = landmarks_to_crop(landmarks, box)
    pose = estimate_pose(crop_landmarks)
    gaze = estimate_gaze(crops, crop_landmarks, pose["rotation"], pose["translation"], pose["scale"])
    features = audio_features(wave, options.sample_rate, num, options.fps)
    blob, offsets = encode_frames(crops)
    arrays: dict[str, np.ndarray] = {
        "landmarks": crop_landmarks,
        "normalized_landmarks": pose["normalized_landmarks"],
        "rotation": pose["rotation"],
        "euler": pose["euler"],
        "translation": pose["translation"],
        "scale": pose["scale"],
        "gaze": gaze["gaze"],
        "gaze_confidence": gaze["gaze_confidence"],
        "pupils": gaze["pupils"],
        "face_found": found.astype(bool),
        "audio": features,
        "waveform": np.clip(np.round(wave * WAVEFORM_SCALE), -32768, 32767).astype(np.int16),
        "frames_jpeg": blob,
        "frames_offsets": offsets,
        "crop_box": box.as_array(),
        "fps": np.int64(options.fps),
        "sample_rate": np.int64(options.sample_rate),
        "audio_rows_per_frame": np.int64(rows_per_frame(options.fps)),
        "actor": np.str_(clip.actor),
        "emotion": np.str_(clip.emotion),
        "level": np.int64(clip.level),
        "clip": np.str_(clip.clip_id),
    }
    info = {
        "frames": num,
        "duration": round(num / options.fps, 4),
        "video_frames": video_frames,
        "audio_frames": audio_frames,
        "trimmed_frames": max(video_frames, audio_frames) - num,
        "missing_faces": int((~found).sum()),
    }
    return arrays, info


def process_clip(
    clip: ClipSpec,
    backend: Backend,
    options: PreprocessOptions,
    cache_dir: str | os.PathLike,
    raw_root: str | os.PathLike | None = None,
) -> dict[str, object]:
    """Extract one clip and write its cache file and record; returns the record (a manifest row).

    Expected failures (unreadable media, no audio, no face, too short) become a ``failed`` record
    with a reason; an unexpected exception is recorded too (reason ``error: <type>: <message>``)
    so that one bad clip never stops a long run.
    """
    npz_path, record_path = clip_paths(cache_dir, clip)
    row = _base_row(clip, options, Path(raw_root).resolve() if raw_root else None)
    try:
        arrays, info = extract_clip(clip, backend, options)
    except ClipFailure as failure:
        row.update(status="failed", reason=failure.reason)
    except Exception as error:
        log.exception("unexpected error on %s", clip.clip_id)
        row.update(status="failed", reason=f"error: {type(error).__name__}: {error}")
    else:
        save_npz(npz_path, arrays, compress=False)
        row.update(status="ok", reason="", file=npz_path.relative_to(cache_dir).as_posix(), **info)
    if row["status"] != "ok":
        npz_path.unlink(missing_ok=True)
    mf.write_record(record_path, row)
    return row


def problem_row(problem: Problem, options: PreprocessOptions) -> dict[str, object]:
    return {
        "actor": problem.actor,
        "emotion": problem.emotion,
        "level": problem.level or "",
        "clip": problem.path,
        "status": "failed",
        "reason": problem.reason,
        "backend": options.backend,
        "source": problem.path,
        "version": _version(),
    }


# ----------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------
_WORKER_BACKEND: Backend | None = None


def _worker_init(options: PreprocessOptions) -> None:
    global _WORKER_BACKEND
    import signal

    import cv2
    import torch

    # Ctrl-C reaches the whole process group: the parent stops the run (one line, exit 130), the
    # workers finish the clip in hand (each is written atomically) instead of printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER_BACKEND = make_backend(options.backend, options.device, options.batch_size)


def _worker_process(clip: ClipSpec, options: PreprocessOptions, cache_dir: str, raw_root: str) -> dict[str, object]:
    assert _WORKER_BACKEND is not None
    return process_clip(clip, _WORKER_BACKEND, options, cache_dir, raw_root)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
def _prepare_cache(cache_dir: Path, raw_root: Path, options: PreprocessOptions) -> None:
    """Create the cache folder, check its settings match, remove partial files of a killed run."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wanted = options.cache_config()
    source_meta = raw_root / "mini_mead.json"
    if source_meta.is_file():
        meta = json.loads(source_meta.read_text())
        wanted["source"] = {"dataset": meta.get("dataset", "mini-MEAD"), "split": meta.get("split", {})}
    else:
        wanted["source"] = {"dataset": "MEAD"}
    existing = mf.read_config(cache_dir)
    if existing:
        keys = (set(wanted) | set(existing)) - {"source"}
        different = {k: (existing.get(k), wanted.get(k)) for k in sorted(keys) if existing.get(k) != wanted.get(k)}
        if different:
            details = ", ".join(f"{k}: cache has {old!r}, asked {new!r}" for k, (old, new) in different.items())
            raise ValueError(f"{cache_dir} was made with other settings ({details}); use another --out")
    else:
        mf.write_text_atomic(cache_dir / mf.CONFIG, json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    for partial in cache_dir.rglob(".*.partial"):
        partial.unlink(missing_ok=True)


def default_crop(raw_root: str | os.PathLike) -> str:
    """``track`` for a free-motion mini-MEAD tree (its ``mini_mead.json`` says so), else ``clip``."""
    meta_file = Path(raw_root) / "mini_mead.json"
    if meta_file.is_file():
        config = json.loads(meta_file.read_text()).get("config", {})
        if isinstance(config, dict) and config.get("free_motion"):
            return "track"
    return "clip"


def preprocess(
    raw_root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    options: PreprocessOptions | None = None,
    workers: int = 0,
    actors: Sequence[str] | None = None,
    emotions: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Preprocess a MEAD tree into a feature cache; resumable and idempotent.

    Args:
        raw_root: MEAD root (real MEAD or mini-MEAD).
        cache_dir: cache root (``manifest.csv``, ``cache.json``, ``clips/``, ``problems/``).
        options: extraction settings.
        workers: processes (``0``: in this process). Each worker holds its own backend.
        actors, emotions, levels: restrict the run.
        retry_failed: redo clips recorded as failed by an earlier run.
        progress: show progress (a bar on a terminal, periodic lines otherwise).

    Returns:
        :class:`RunSummary`.

    Raises:
        FileNotFoundError: the raw root is not a folder.
        ValueError: the cache was made with other settings, or a bad option.
        FaceAlignmentWeightsError: face_alignment weights are missing.
        DlibWeightsError: dlib's predictor file is missing.
    """
    options = options or PreprocessOptions()
    if options.backend == "auto":
        options = replace(options, backend=default_backend())
        log.info("landmark backend: %s", options.backend)
    if options.backend not in BACKENDS:
        raise ValueError(f"unknown backend {options.backend!r}; expected one of {', '.join(BACKENDS)}")
    rows_per_frame(options.fps)
    raw = Path(raw_root).resolve()
    if options.crop == "auto":
        options = replace(options, crop=default_crop(raw))
    if options.crop not in CROP_MODES:
        raise ValueError(f"unknown crop {options.crop!r}; expected auto or one of {', '.join(CROP_MODES)}")
    if options.crop_smoothing < 0:
        raise ValueError(f"crop_smoothing must be >= 0 seconds, got {options.crop_smoothing}")
    cache = Path(cache_dir).resolve()
    clips, problems = scan_mead(raw, actors=actors, emotions=emotions, levels=levels)
    _prepare_cache(cache, raw, options)
    summary = RunSummary()
    start = time.perf_counter()

    for problem in problems:
        record = cache / mf.PROBLEMS_DIR / (problem.path.replace("/", "__") + ".json")
        row = problem_row(problem, options)
        if not record.is_file():
            mf.write_record(record, row)
            summary.failed += 1
            summary.failures.append((problem.path, problem.reason))
        else:
            summary.skipped += 1

    todo: list[ClipSpec] = []
    for clip in clips:
        npz_path, record_path = clip_paths(cache, clip)
        if record_path.is_file():
            status = mf.read_record(record_path).get("status")
            if (status == "ok" and npz_path.is_file()) or (status == "failed" and not retry_failed):
                summary.skipped += 1
                continue
        todo.append(clip)

    def account(row: dict[str, object]) -> None:
        if row["status"] == "ok":
            summary.done += 1
            summary.frames += int(row.get("frames") or 0)
        else:
            summary.failed += 1
            summary.failures.append((str(row["clip"]), str(row["reason"])))

    if todo:
        with ProgressReport("preprocess", total=len(todo), unit="clips", enabled=progress) as report:
            if workers <= 0:
                backend = make_backend(options.backend, options.device, options.batch_size)
                for clip in todo:
                    account(process_clip(clip, backend, options, cache, raw))
                    report.advance()
            else:
                if options.backend == "face_alignment":
                    from emoface.preprocessing.backends import check_face_alignment_weights

                    check_face_alignment_weights()  # fail once, clearly, before starting workers
                elif options.backend == "dlib":
                    from emoface.preprocessing.backends import check_dlib_weights

                    check_dlib_weights()
                context = get_context("spawn")
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                         initargs=(options,)) as pool:  # fmt: skip
                    futures = [pool.submit(_worker_process, clip, options, str(cache), str(raw)) for clip in todo]
                    try:
                        for future in as_completed(futures):
                            account(future.result())
                            report.advance()
                    except KeyboardInterrupt:
                        pool.shutdown(cancel_futures=True)  # the clips not started are not started
                        raise

    rows = mf.collect_records(cache)
    mf.write_manifest(cache, rows)
    summary.ok_total = sum(1 for row in rows if row["status"] == "ok")
    summary.seconds = time.perf_counter() - start
    return summary


def format_summary(summary: RunSummary, cache_dir: str | os.PathLike, limit: int = 30) -> str:
    """Human-readable end-of-run report."""
    lines = [
        (f"done {summary.done}, skipped {summary.skipped} (already in the cache), failed {summary.failed}; "
        f"{summary.ok_total} usable clips in {Path(cache_dir) / mf.MANIFEST} ({summary.seconds:.1f} s)")
    ]
    reasons = Counter(reason.split(":")[0] for _, reason in summary.failures)
    if summary.failures:
        lines.append("failed: " + ", ".join(f"{count} {reason}" for reason, count in reasons.most_common()))
        for clip, reason in summary.failures[:limit]:
            lines.append(f"  {clip}: {reason}")
        if len(summary.failures) > limit:
            lines.append(f"  ... {len(summary.failures) - limit} more in the manifest")
    return "\n".join(lines)


def iter_ok_rows(cache_dir: str | os.PathLike) -> Iterable[dict[str, str]]:
    """Manifest rows with status ``ok``."""
    return mf.read_manifest(cache_dir, status="ok")
